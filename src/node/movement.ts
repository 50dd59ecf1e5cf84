// Joins, decommissions and removals: how data follows the ring when members come and go
// (Dynamo §4.9, Cassandra's bootstrap / decommission / removenode).
//
// The move itself is a state machine in core/move.ts (confirm -> settle -> stream -> flip, and
// why that order is safe); this file carries out its actions and feeds their results back as
// events: ring-state rounds to every member (confirm, and a look at the moves others see), pauses
// on the node's clock, pages streamed from a source to a receiver, saves of the move's state in
// the store (the persisted plan is that state: a restart loads it and redoes what it was doing),
// and status flips. A move runs in the background; `progress` is a read-only view of it for
// /admin/move, the dashboard and readiness.
// Which replicas a range is streamed from (core/move.ts's planTasks; placement.ts's vocabulary):
//   - a new member joining: from the displaced replica (it held everything the new one must hold,
//     Cassandra's "consistent range movement"), or, when that one is down, from every other replica;
//   - a member coming back with an empty data directory (same id: a replaced volume): from every
//     other replica of the range, since its own copy, which the others counted on, is gone;
//   - decommission: from the leaving member itself to each member gaining the range;
//   - removenode of a dead member: from every other replica to each member gaining the range.
// Also here, outside the state machine: a node with a fresh data directory first looks at the
// cluster (hello probes): if members exist, it joins; if every candidate is as fresh as itself, or
// none answers within the formation grace, it starts a new cluster (status normal at once: there
// is no data yet). And the streaming source: the pages this node serves to others' moves.

import { type Clock, sleep } from '../core/clock';
import { TUNING } from '../core/defaults';
import { isToken, tokenOf } from '../core/hash';
import type { Logger } from '../core/log';
import type { MemberEntry, MemberStatus } from '../core/membership';
import type { Message, ReplyOf, StreamCursor, StreamRangeMessage } from '../core/messages';
import {
  joinsAlone,
  type MoveAction,
  type MoveConfig,
  type MoveEvent,
  type MoveKind,
  type MoveState,
  type MoveTask,
  type Moving,
  newMove,
  parseMoveState,
  phaseLabel,
  planTasks,
  step,
} from '../core/move';
import { jittered, type Random } from '../core/random';
import { isPurgeable, isStoredRecord, type StoredRecord } from '../core/record';
import type { Counter, Metrics } from '../metrics';
import type { Transport } from '../net/transport';
import type { Store } from '../storage/store';
import { byteBatches, recordBytes } from './batches';
import { BadMessageError } from './errors';
import type { Membership } from './membership';

export type { MoveKind } from '../core/move';

export interface MovementConfig {
  requestTimeoutMs: number;
  tombstoneGraceMs: number;
  /** Records per streamed page at most. */
  pageRecords: number;
  /** Bytes (JSON) per streamed page at most; one record always goes, whatever its size. */
  pageBytes: number;
  /** Ranges streamed at once. */
  concurrentRanges: number;
  /** Pause between two confirmation rounds, and between retries of a failed page. */
  retryMs: number;
  /** A fresh node that reaches no established member for this long starts a new cluster. */
  formationGraceMs: number;
  /** `join` discovery: the node always joins an existing cluster, however long it waits. */
  mustJoin: boolean;
  /** How long a move waits for other members' moves to finish before it goes ahead anyway. */
  moveWaitMs: number;
}

export interface MovementDeps {
  clock: Clock;
  random: Random;
  transport: Transport;
  store: Store;
  log: Logger;
  membership: Membership;
  /** The replica write path: stores a record if it is newer. */
  apply(key: string, record: StoredRecord): Promise<boolean>;
  /** Persists this node's own status (the node's meta). */
  saveStatus(status: MemberEntry['status'], extra?: { memberSince?: number }): Promise<void>;
  metrics?: Metrics | undefined;
}

export type MovePhase = 'probe' | 'confirm' | 'settle' | 'stream' | 'finish' | 'done' | 'failed';

/** What /admin/move, the dashboard and readiness show of the move: a view, computed when read. */
export interface MoveProgress {
  readonly kind: MoveKind | undefined;
  readonly target: string | undefined;
  readonly phase: MovePhase | undefined;
  readonly replacing: boolean;
  readonly startedAtMs: number | undefined;
  readonly finishedAtMs: number | undefined;
  readonly rangesTotal: number;
  readonly rangesDone: number;
  readonly recordsStreamed: number;
  readonly bytesStreamed: number;
  /** What the move waits for, when it waits (a member that has not confirmed, a source that is down). */
  readonly waitingFor: string | undefined;
  readonly error: string | undefined;
}

export class MoveRefused extends Error {}

const IDLE: MoveProgress = {
  kind: undefined,
  target: undefined,
  phase: undefined,
  replacing: false,
  startedAtMs: undefined,
  finishedAtMs: undefined,
  rangesTotal: 0,
  rangesDone: 0,
  recordsStreamed: 0,
  bytesStreamed: 0,
  waitingFor: undefined,
  error: undefined,
};

export const PLAN_META = 'move';

/** The executor's own record of a run: what the state machine does not hold. */
interface Run {
  state: MoveState;
  /** Whether the stream phase was reached in this run (ranges are shown from then on). */
  streaming: boolean;
  recordsStreamed: number;
  bytesStreamed: number;
  finishedAtMs: number | undefined;
  error: string | undefined;
}

export class Movement {
  private run: Run | undefined;
  /** A fresh node looking at the cluster (bootstrap): when it began, and what it waits for. */
  private probing: { startedAtMs: number; waitingFor: string | undefined } | undefined;
  private current: Promise<void> | undefined;
  private running = true;
  private readonly streamed: Counter | undefined;
  private readonly moveConfig: MoveConfig;

  constructor(
    private readonly config: MovementConfig,
    private readonly deps: MovementDeps,
  ) {
    this.streamed = deps.metrics?.counter(
      'quorumkv_streamed_records_total',
      'Records streamed by joins, decommissions and removals, by direction',
      ['direction'],
    );
    this.moveConfig = {
      requestTimeoutMs: config.requestTimeoutMs,
      concurrentRanges: config.concurrentRanges,
      retryMs: config.retryMs,
      moveWaitMs: config.moveWaitMs,
      moveWaitLogMs: TUNING.moveWaitLogMs,
      saveEveryMs: TUNING.movePlanSaveMs,
      startJitterMs: TUNING.moveStartJitterMs,
    };
  }

  /** The move under way or last run on this node, as /admin/move shows it. */
  get progress(): MoveProgress {
    if (this.probing) return { ...IDLE, phase: 'probe', startedAtMs: this.probing.startedAtMs, waitingFor: this.probing.waitingFor };
    const r = this.run;
    if (!r) return IDLE;
    const s = r.state;
    const tasks = r.streaming ? (s.tasks ?? []) : [];
    return {
      kind: s.kind,
      target: s.target,
      phase: r.error !== undefined ? 'failed' : phaseLabel(s.phase),
      replacing: s.replacing,
      startedAtMs: s.startedAtMs,
      finishedAtMs: r.finishedAtMs,
      rangesTotal: tasks.length,
      rangesDone: tasks.filter((t) => t.done).length,
      recordsStreamed: r.recordsStreamed,
      bytesStreamed: r.bytesStreamed,
      waitingFor: r.error !== undefined ? undefined : s.waitingFor,
      error: r.error,
    };
  }

  stop(): void {
    this.running = false;
    this.stopped();
  }

  private stopped: () => void = () => {};
  private readonly stopSignal = new Promise<void>((resolve) => {
    this.stopped = resolve;
  });

  /** Waits `ms`, or less if the node stops meanwhile (then throws: the move resumes at the next start). */
  private async pause(ms: number): Promise<void> {
    await Promise.race([sleep(this.deps.clock, ms), this.stopSignal]);
    this.checkRunning();
  }

  /** A move under way on this node (its own join or leave, or a removal it runs). */
  busy(): boolean {
    return this.current !== undefined;
  }

  private self(): string {
    return this.deps.membership.table.selfId;
  }

  // ---- entry points ------------------------------------------------------------------------------

  /**
   * A node with a fresh data directory: look at the cluster, then start a new one (normal at once)
   * or join it. Resolves once the node has announced itself; the join goes on in the background.
   */
  async bootstrap(): Promise<{ joining: boolean }> {
    const { membership, clock, log } = this.deps;
    const started = clock.nowMs();
    const probing = { startedAtMs: started, waitingFor: undefined as string | undefined };
    this.probing = probing;
    this.run = undefined;
    let delay = 200;
    try {
      for (;;) {
        if (!this.running) throw new Error('stopped');
        const p = await membership.probe();
        log.debug({ entries: p.entries.map((e) => `${e.id}:${e.status}`), undecided: p.undecided, unanswered: p.unanswered }, 'probe');
        const established = p.entries.filter((e) => e.id !== this.self() && e.status !== 'removed');
        if (established.length > 0) {
          const earlier = p.entries.find((e) => e.id === this.self());
          const replacing = earlier !== undefined && earlier.status !== 'removed';
          await membership.learn(p.entries.filter((e) => e.id !== this.self()));
          // one move at a time where it can be helped: two joins at once leave the ranges both
          // take with a single stable replica (reads and writes there fail until one is done)
          const moving = established.filter((e) => e.status === 'joining' || e.status === 'leaving');
          if (moving.length > 0 && clock.nowMs() - started < this.config.moveWaitMs) {
            probing.waitingFor = `another move to finish: ${moving.map((e) => `${e.id} ${e.status}`).join(', ')}`;
            await this.pause(jittered(this.deps.random, this.config.retryMs * 2));
            continue;
          }
          log.info(
            { members: established.length, replacing },
            replacing ? 'joining the cluster again with an empty data directory' : 'joining the cluster',
          );
          await this.announce('joining', replacing);
          this.probing = undefined;
          const move = newMove({
            kind: 'join',
            target: this.self(),
            replacing,
            startedAtMs: clock.nowMs(),
            othersAtStart: this.othersStatuses(),
          });
          this.start(move, { type: 'start', nowMs: clock.nowMs(), targetStatus: 'joining' });
          return { joining: true };
        }
        const alone = p.unanswered.length === 0;
        const graceOver = clock.nowMs() - started >= this.config.formationGraceMs;
        // Own name unresolvable: the discovery settings are wrong, and "nobody found" means nothing.
        if (!this.config.mustJoin && p.selfProblem === undefined && (alone || graceOver)) {
          log.info(
            { undecidedPeers: p.undecided, unanswered: p.unanswered },
            alone
              ? 'no established cluster found: starting a new one'
              : 'no established member answered within the formation grace: starting a new cluster',
          );
          await this.announce('normal', false);
          this.probing = undefined;
          return { joining: false };
        }
        probing.waitingFor =
          p.selfProblem ?? (p.unanswered.length > 0 ? `candidates not answering: ${p.unanswered.join(', ')}` : 'candidates');
        await this.pause(jittered(this.deps.random, delay));
        delay = Math.min(delay * 2, 1000);
      }
    } catch (err) {
      if (this.probing === probing) this.probing = undefined;
      throw err;
    }
  }

  private async announce(status: 'joining' | 'normal', replacing: boolean): Promise<void> {
    const entry = await this.deps.membership.setStatus(status);
    await this.deps.saveStatus(status, { memberSince: entry.generation });
    if (replacing) this.deps.log.warn({}, 'this id was a member before: its ranges are rebuilt from every other replica');
  }

  /** After a restart: a move that was under way goes on from its saved state. */
  resume(): void {
    const { store, membership, clock, log } = this.deps;
    const saved = store.getMeta<unknown>(PLAN_META);
    const status = membership.table.self().status;
    if (saved !== undefined && saved !== null) {
      const parsed = parseMoveState(saved);
      if ('error' in parsed) {
        // a plan saved by another version: said loudly, and shown in /admin/move; never guessed at
        log.error({ err: parsed.error }, 'cannot resume the move that was under way');
        const kind: MoveKind = status === 'leaving' ? 'leave' : 'join';
        this.run = {
          state: newMove({ kind, target: this.self(), replacing: false, startedAtMs: clock.nowMs() }),
          streaming: false,
          recordsStreamed: 0,
          bytesStreamed: 0,
          finishedAtMs: clock.nowMs(),
          error: parsed.error,
        };
        return;
      }
      const state = parsed.state;
      if (state.kind === 'remove' || state.target === this.self()) {
        log.info({ kind: state.kind, target: state.target }, 'resuming a move that was under way');
        this.start(state, { type: 'restarted', nowMs: clock.nowMs(), targetStatus: this.statusOf(state.target) });
        return;
      }
    }
    if (status === 'joining' || status === 'leaving') {
      const kind: MoveKind = status === 'joining' ? 'join' : 'leave';
      this.start(newMove({ kind, target: this.self(), replacing: false, startedAtMs: clock.nowMs() }), {
        type: 'start',
        nowMs: clock.nowMs(),
        targetStatus: status,
      });
    }
  }

  /** Decommission: stream this node's ranges to their next owners, then leave. */
  decommission(): Promise<void> {
    const self = this.deps.membership.table.self();
    if (this.current && this.progress.kind === 'leave') return this.current;
    if (this.current) throw new MoveRefused(`a ${this.progress.kind} of ${this.progress.target} is under way on this node`);
    if (self.status !== 'normal') throw new MoveRefused(`this node is ${self.status}; only a normal member can be decommissioned`);
    const others = this.deps.membership.table.members().filter((m) => m.id !== self.id && m.status === 'normal');
    if (others.length === 0) throw new MoveRefused('this is the last member: there is nobody to hand its data to');
    const now = this.deps.clock.nowMs();
    return this.start(newMove({ kind: 'leave', target: self.id, replacing: false, startedAtMs: now }), {
      type: 'start',
      nowMs: now,
      targetStatus: self.status,
    });
  }

  /** removenode: a member that is gone for good; its ranges are rebuilt from the other replicas. */
  removeNode(id: string, force: boolean): Promise<void> {
    const { membership } = this.deps;
    const target = membership.table.get(id);
    if (this.current && this.progress.kind === 'remove' && this.progress.target === id) return this.current;
    if (this.current) throw new MoveRefused(`a ${this.progress.kind} of ${this.progress.target} is under way on this node`);
    if (!target) throw new MoveRefused(`no member ${JSON.stringify(id)}`);
    if (id === this.self()) throw new MoveRefused('a node cannot remove itself: decommission it instead');
    if (target.status === 'removed') throw new MoveRefused(`${id} was already removed`);
    if (membership.liveness(id) !== 'down' && !force) {
      throw new MoveRefused(`${id} is not down (it is ${membership.liveness(id)}): decommission it, or stop it first`);
    }
    const now = this.deps.clock.nowMs();
    return this.start(newMove({ kind: 'remove', target: id, replacing: false, startedAtMs: now }), {
      type: 'start',
      nowMs: now,
      targetStatus: target.status,
    });
  }

  private start(state: MoveState, first: MoveEvent): Promise<void> {
    this.current = this.execute(state, first).finally(() => {
      this.current = undefined;
    });
    // the caller may not wait (a join runs in the background): never an unhandled rejection
    this.current.catch(() => {});
    return this.current;
  }

  // ---- the executor -----------------------------------------------------------------------------

  /**
   * Runs the state machine from `state`: steps it with each event, carries out the actions it
   * returns, and feeds their results back, one event at a time, until the move is done. Rejects
   * when an action fails in a way the protocol does not expect (the move stops, `failed`), or
   * when the node stops (it resumes from its saved state at the next start).
   */
  private execute(state: MoveState, first: MoveEvent): Promise<void> {
    const run: Run = { state, streaming: false, recordsStreamed: 0, bytesStreamed: 0, finishedAtMs: undefined, error: undefined };
    this.run = run;
    return new Promise<void>((resolve, reject) => {
      let over = false;
      const queue: MoveEvent[] = [];
      let stepping = false;
      let saving: Promise<void> = Promise.resolve();
      const fail = (err: unknown) => {
        if (over) return;
        over = true;
        run.error = String(err instanceof Error ? err.message : err);
        run.finishedAtMs = this.deps.clock.nowMs();
        if (this.running)
          this.deps.log.error({ kind: run.state.kind, target: run.state.target, err: run.error }, `${run.state.kind} stopped`);
        reject(err);
      };
      const feed = (event: MoveEvent) => {
        if (over) return;
        queue.push(event);
        if (stepping) return;
        stepping = true;
        try {
          for (let e = queue.shift(); e && !over; e = queue.shift()) {
            const r = step(run.state, e, this.moveConfig);
            run.state = r.state;
            if (r.state.phase.name === 'stream') run.streaming = true;
            for (const a of r.actions) perform(a);
            if (r.state.phase.name === 'done') {
              over = true;
              run.finishedAtMs = r.state.phase.finishedAtMs;
              resolve();
            }
          }
        } catch (err) {
          fail(err);
        } finally {
          stepping = false;
        }
      };
      const later = (work: () => Promise<MoveEvent>) => {
        work().then((e) => feed(e), fail);
      };
      const now = () => this.deps.clock.nowMs();
      const perform = (a: MoveAction) => {
        switch (a.type) {
          case 'log':
            this.deps.log[a.level](a.fields, a.msg);
            return;
          case 'progress':
            if (run.state.target === this.self()) this.deps.membership.setProgress(a.share);
            return;
          case 'save': {
            // saves go to the store in the order they were asked for
            const done = saving.then(() => this.deps.store.putMeta(PLAN_META, a.state));
            saving = done.catch(() => {});
            done.then(
              () => feed({ type: 'saved', nowMs: now(), seq: a.seq }),
              (err: unknown) =>
                feed({ type: 'save-failed', nowMs: now(), seq: a.seq, error: String(err instanceof Error ? err.message : err) }),
            );
            return;
          }
          case 'pause':
            later(async () => {
              const ms =
                a.jitter === 'none' ? a.ms : a.jitter === 'spread' ? this.deps.random.next() * a.ms : jittered(this.deps.random, a.ms);
              await this.pause(ms);
              return { type: 'timer', nowMs: now() };
            });
            return;
          case 'poll-moves':
            later(async () => {
              // ask the others what moves they see (an empty ring-state round): the local table may
              // not know yet of a move another member has just announced
              await this.poll(run.state, []);
              const target = run.state.target;
              return { type: 'moves-seen', nowMs: now(), moving: this.movingExcept(target), targetStatus: this.statusOf(target) };
            });
            return;
          case 'confirm-round':
            later(async () => {
              const { membership } = this.deps;
              this.checkRunning();
              const mine = membership.placement.checksum();
              const s = run.state;
              const entries = [membership.table.self(), ...(s.kind === 'remove' ? [membership.table.get(s.target) as MemberEntry] : [])];
              const pending = await this.poll(s, entries);
              const placementChanged = membership.placement.checksum() !== mine;
              return { type: 'confirm-result', nowMs: now(), pending, placementChanged, moving: this.movingExcept(this.self()) };
            });
            return;
          case 'set-status':
            later(async () => {
              this.checkRunning();
              await this.setStatus(run.state, a.of, a.status, a.broadcast);
              return { type: 'status-set', nowMs: now() };
            });
            return;
          case 'plan':
            later(async () => {
              const s = run.state;
              const { membership } = this.deps;
              const others = this.othersStatuses();
              if (s.kind === 'join' && !joinsAlone(s, membership.placement, this.self(), others)) {
                this.deps.log.info(
                  { replacing: s.replacing },
                  'join: other moves around this one, streaming each range from every other replica',
                );
              }
              return { type: 'planned', nowMs: now(), tasks: planTasks(s, membership.placement, this.self(), others) };
            });
            return;
          case 'stream-page':
            later(() => this.streamPage(run, a.task, a.source, a.after));
            return;
          case 'retry-page':
            later(async () => {
              await this.pause(jittered(this.deps.random, a.ms));
              const task = run.state.tasks?.[a.task] as MoveTask;
              const sourceDown = this.livenessOf(a.source) === 'down';
              return { type: 'retry', nowMs: now(), task: a.task, source: a.source, sourceDown, alternatives: this.fallbackSources(task) };
            });
            return;
        }
      };
      feed(first);
    });
  }

  /** One page of a task from one source, delivered to its receiver; the result as an event. */
  private async streamPage(run: Run, index: number, source: string, after: StreamCursor | undefined): Promise<MoveEvent> {
    const { membership, clock } = this.deps;
    this.checkRunning();
    const task = run.state.tasks?.[index] as MoveTask;
    if (task.to !== this.self() && membership.table.get(task.to)?.status === 'removed') {
      const instead = membership.placement.replicasForToken(task.hi).pending.filter((id) => id !== task.to);
      return { type: 'receiver-gone', nowMs: clock.nowMs(), task: index, instead };
    }
    try {
      const page = await this.fetchPage(source, task, after);
      if (page.records.length > 0) await this.deliver(run, task.to, page.records);
      return { type: 'page', nowMs: clock.nowMs(), task: index, source, next: page.next };
    } catch (err) {
      this.checkRunning();
      return {
        type: 'page-failed',
        nowMs: clock.nowMs(),
        task: index,
        source,
        why: String(err instanceof Error ? err.message : err),
        sourceState: this.livenessOf(source),
        receiverState: this.livenessOf(task.to),
      };
    }
  }

  private livenessOf(id: string): string {
    return id === this.self() ? 'alive' : this.deps.membership.liveness(id);
  }

  private statusOf(id: string): MemberStatus | undefined {
    return id === this.self() ? this.deps.membership.table.self().status : this.deps.membership.table.get(id)?.status;
  }

  /** The members other than `except` that are joining or leaving. */
  private movingExcept(except: string): Moving[] {
    return this.deps.membership.table
      .members()
      .filter((m) => m.id !== except && (m.status === 'joining' || m.status === 'leaving'))
      .map((m) => ({ id: m.id, status: m.status }));
  }

  /** A status flip of this node (persisted with its meta) or of a removed member, then broadcast if asked. */
  private async setStatus(s: MoveState, of: string, status: MemberStatus, broadcast: boolean): Promise<void> {
    const { membership } = this.deps;
    if (of === this.self()) {
      if (!(status === 'leaving' && membership.table.self().status === 'leaving')) {
        await membership.setStatus(status, status === 'leaving' ? 0 : undefined);
        await this.deps.saveStatus(status);
      }
    } else if (status === 'leaving' || status === 'removed') {
      if (!(status === 'leaving' && membership.table.get(of)?.status === 'leaving')) await membership.setStatusOf(of, status);
    } else {
      throw new Error(`a removal sets another member's status to leaving or removed, not ${status}`);
    }
    if (broadcast) await this.broadcast(s, (of === this.self() ? membership.table.self() : membership.table.get(of)) as MemberEntry);
  }

  /** Sends an entry to every member now (best effort; gossip carries it anyway). */
  private async broadcast(s: MoveState, entry: MemberEntry): Promise<void> {
    await Promise.all(
      this.confirmers(s).map((m) =>
        this.deps.transport
          .send(m.address, { type: 'ring-state', from: this.self(), entries: [entry] }, this.config.requestTimeoutMs)
          .catch(() => undefined),
      ),
    );
  }

  /** The members that must see the new placement before data moves: all of them but a removed target. */
  private confirmers(s: MoveState): MemberEntry[] {
    const self = this.self();
    return this.deps.membership.table.members().filter((m) => m.id !== self && !(s.kind === 'remove' && m.id === s.target));
  }

  /**
   * One ring-state round: sends `entries` to every member, learns the moves they see, and returns
   * the members that do not (yet) compute this node's placement, with why.
   */
  private async poll(s: MoveState, entries: MemberEntry[]): Promise<string[]> {
    const { membership, transport } = this.deps;
    const pending: string[] = [];
    await Promise.all(
      this.confirmers(s).map(async (m) => {
        try {
          const r = await transport.send(m.address, { type: 'ring-state', from: this.self(), entries }, this.config.requestTimeoutMs);
          if (Array.isArray(r.moving)) await membership.learn(r.moving);
          if (r.placement !== membership.placement.checksum()) pending.push(`${m.id} (sees ${r.placement})`);
        } catch (err) {
          pending.push(`${m.id} (${membership.liveness(m.id)}: ${String(err instanceof Error ? err.message : err)})`);
        }
      }),
    );
    return pending;
  }

  /** The other members and their statuses, as one comparable string. */
  private othersStatuses(): string {
    const self = this.self();
    return this.deps.membership.table
      .all()
      .filter((m) => m.id !== self)
      .map((m) => `${m.id}:${m.status}`)
      .join(',');
  }

  private fallbackSources(task: MoveTask): string[] {
    const r = this.deps.membership.placement.replicasForToken(task.hi);
    return [...r.stable, ...r.displaced].filter((id) => id !== task.to && this.deps.membership.liveness(id) !== 'down');
  }

  private async fetchPage(source: string, task: MoveTask, after: StreamCursor | undefined): Promise<ReplyOf<StreamRangeMessage>> {
    const msg: StreamRangeMessage = {
      type: 'stream-range',
      lo: task.lo,
      hi: task.hi,
      ...(after === undefined ? {} : { after }),
      maxRecords: this.config.pageRecords,
      maxBytes: this.config.pageBytes,
    };
    if (source === this.self()) return this.onStreamRange(msg);
    return this.send(source, msg, this.config.requestTimeoutMs * 5);
  }

  private async deliver(run: Run, to: string, records: Array<[string, StoredRecord]>): Promise<void> {
    for (const [key, r] of records) {
      if (!isStoredRecord(r)) throw new BadMessageError(`a streamed record of ${JSON.stringify(key)} is malformed`);
    }
    // each record's size is measured once: for the progress figures, and to cut batches
    let bytes = 0;
    const sized = ([key, record]: [string, StoredRecord]) => {
      const size = recordBytes(key, record);
      bytes += size;
      return size;
    };
    if (to === this.self()) {
      records.forEach(sized);
      await Promise.all(records.map(([key, record]) => this.deps.apply(key, record)));
      this.streamed?.inc({ direction: 'received' }, records.length);
    } else {
      // a page from another source may have been cut to a larger byte budget than a peer takes
      for (const chunk of byteBatches(records, sized)) {
        await this.send(to, { type: 'write-batch', records: chunk }, this.config.requestTimeoutMs * 5);
      }
      this.streamed?.inc({ direction: 'sent' }, records.length);
    }
    run.recordsStreamed += records.length;
    run.bytesStreamed += bytes;
  }

  private send<M extends Message>(id: string, msg: M, timeoutMs: number): Promise<ReplyOf<M>> {
    const address = this.deps.membership.addressOf(id);
    if (!address) return Promise.reject(new Error(`unknown member ${id}`));
    return this.deps.transport.send(address, msg, timeoutMs);
  }

  private checkRunning(): void {
    if (!this.running) throw new Error('the node is stopping: the move resumes when it starts again');
  }

  // ---- the source side --------------------------------------------------------------------------

  /** One page of a range, in ring order, ending at a token boundary (the cursor is a token). */
  onStreamRange(msg: StreamRangeMessage): ReplyOf<StreamRangeMessage> {
    if (!isToken(msg.lo) || !isToken(msg.hi) || (msg.after !== undefined && !isToken(msg.after))) {
      throw new BadMessageError('stream-range needs lo, hi (and after) tokens from 0 to 2^32-1');
    }
    const maxRecords = Math.max(1, Math.min(Number(msg.maxRecords) || 1, 10_000));
    const maxBytes = Math.max(1, Number(msg.maxBytes) || 1);
    if (msg.after === msg.hi) return { records: [] };
    const from = msg.after ?? msg.lo;
    const now = this.deps.clock.nowMs();
    const records: Array<[string, StoredRecord]> = [];
    let bytes = 0;
    let lastToken: number | undefined;
    for (const [key, record] of this.deps.store.range(from, msg.hi)) {
      const token = tokenOf(key);
      if (isPurgeable(record, now, this.config.tombstoneGraceMs)) {
        lastToken = token;
        continue;
      }
      // stop before a record would take the page past its budget (one record always goes), and
      // only between tokens, so that the cursor can be a token
      const size = recordBytes(key, record);
      const full = records.length >= maxRecords || (records.length > 0 && bytes + size > maxBytes);
      if (full && token !== lastToken) return { records, next: lastToken as number };
      lastToken = token;
      records.push([key, record]);
      bytes += size;
    }
    return { records };
  }
}
