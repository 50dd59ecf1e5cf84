// Joins, decommissions and removals: how data follows the ring when members come and go
// (Dynamo §4.9, Cassandra's bootstrap / decommission / removenode).
//
// A move changes a member's status (core/membership.ts), which changes the placement every node
// computes (core/placement.ts): a joining member takes writes for the ranges it will own but is not
// read from; a leaving one takes no new writes. The mover then:
//   1. confirms: sends its new entry to every member and waits until each computes the same
//      placement (a member that is down blocks the move until it is back, or is removed: a node
//      that kept the old view would read and write the old replicas);
//   2. settles: waits one request deadline, so that writes coordinated under the old view finish;
//   3. streams each range it gains or loses, page by page, resumably (progress is kept in the store);
//   4. flips: joining -> normal, leaving -> removed; no confirmation needed (placement.ts says why).
// Which replicas a range is streamed from (see placement.ts for the vocabulary):
//   - a new member joining: from the displaced replica (it held everything the new one must hold,
//     Cassandra's "consistent range movement"), or, when that one is down, from every other replica;
//   - a member coming back with an empty data directory (same id: a replaced volume): from every
//     other replica of the range, since its own copy, which the others counted on, is gone;
//   - decommission: from the leaving member itself to each member gaining the range;
//   - removenode of a dead member: from every other replica to each member gaining the range.
// A node with a fresh data directory first looks at the cluster (hello probes): if members exist,
// it joins; if every candidate is as fresh as itself, or none answers within the formation grace,
// it starts a new cluster (status normal at once: there is no data yet).

import { type Clock, sleep } from '../core/clock';
import { TUNING } from '../core/defaults';
import { isToken, tokenOf } from '../core/hash';
import type { Logger } from '../core/log';
import type { MemberEntry } from '../core/membership';
import type { Message, ReplyOf, StreamCursor, StreamRangeMessage } from '../core/messages';
import { jittered, type Random } from '../core/random';
import { isPurgeable, isStoredRecord, type StoredRecord } from '../core/record';
import type { Counter, Metrics } from '../metrics';
import type { Transport } from '../net/transport';
import type { Store } from '../storage/store';
import { byteBatches, recordBytes } from './batches';
import { BadMessageError } from './errors';
import type { Membership } from './membership';

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

export type MoveKind = 'join' | 'leave' | 'remove';
export type MovePhase = 'probe' | 'confirm' | 'settle' | 'stream' | 'finish' | 'done' | 'failed';

/** One range to stream: from each of `from` (ids) to `to`, with where each source got to. */
export interface MoveTask {
  lo: number;
  hi: number;
  to: string;
  from: string[];
  /** Per source: the cursor reached, or true when that source is done. */
  cursors: Record<string, StreamCursor | true>;
  done: boolean;
}

export interface MovePlan {
  kind: MoveKind;
  /** The member that joins or leaves (this node, or the dead one removenode removes). */
  target: string;
  /** A join of an id the cluster had as a member: its volume was replaced. */
  replacing: boolean;
  startedAtMs: number;
  /** Computed after the confirmation round; undefined before. */
  tasks: MoveTask[] | undefined;
  /**
   * A join: the other members' statuses when it announced itself. A join that nothing else moved
   * around (same statuses when it plans, nobody else moving) streams each range from the replica
   * it displaces alone; otherwise that replica may never have held the range (it became normal
   * in another move planned around this one), so it streams from every other replica.
   */
  othersAtStart?: string;
}

export interface MoveProgress {
  kind: MoveKind | undefined;
  target: string | undefined;
  phase: MovePhase | undefined;
  replacing: boolean;
  startedAtMs: number | undefined;
  finishedAtMs: number | undefined;
  rangesTotal: number;
  rangesDone: number;
  recordsStreamed: number;
  bytesStreamed: number;
  /** What the move waits for, when it waits (a member that has not confirmed, a source that is down). */
  waitingFor: string | undefined;
  error: string | undefined;
}

export class MoveRefused extends Error {}

function freshProgress(): MoveProgress {
  return {
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
}

export const PLAN_META = 'move';
const PLAN_SAVE_MS = 1000;

export class Movement {
  progress: MoveProgress = freshProgress();
  private current: Promise<void> | undefined;
  private running = true;
  private readonly streamed: Counter | undefined;

  constructor(
    private readonly config: MovementConfig,
    private readonly deps: MovementDeps,
  ) {
    this.streamed = deps.metrics?.counter(
      'quorumkv_streamed_records_total',
      'Records streamed by joins, decommissions and removals, by direction',
      ['direction'],
    );
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
  private async pause(ms: number, exact = false): Promise<void> {
    await Promise.race([sleep(this.deps.clock, exact ? ms : jittered(this.deps.random, ms)), this.stopSignal]);
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
    this.progress = { ...freshProgress(), phase: 'probe', startedAtMs: started };
    let delay = 200;
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
          this.progress.waitingFor = `another move to finish: ${moving.map((e) => `${e.id} ${e.status}`).join(', ')}`;
          await this.pause(this.config.retryMs * 2);
          continue;
        }
        log.info(
          { members: established.length, replacing },
          replacing ? 'joining the cluster again with an empty data directory' : 'joining the cluster',
        );
        await this.announce('joining', replacing);
        this.start({
          kind: 'join',
          target: this.self(),
          replacing,
          startedAtMs: clock.nowMs(),
          tasks: undefined,
          othersAtStart: this.othersStatuses(),
        });
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
        this.progress = freshProgress();
        return { joining: false };
      }
      this.progress.waitingFor =
        p.selfProblem ?? (p.unanswered.length > 0 ? `candidates not answering: ${p.unanswered.join(', ')}` : 'candidates');
      await this.pause(delay);
      delay = Math.min(delay * 2, 1000);
    }
  }

  private async announce(status: 'joining' | 'normal', replacing: boolean): Promise<void> {
    const entry = await this.deps.membership.setStatus(status);
    await this.deps.saveStatus(status, { memberSince: entry.generation });
    if (replacing) this.deps.log.warn({}, 'this id was a member before: its ranges are rebuilt from every other replica');
  }

  /** After a restart: a join or leave that was under way goes on where it stopped. */
  resume(): void {
    const plan = this.deps.store.getMeta<MovePlan>(PLAN_META);
    const status = this.deps.membership.table.self().status;
    if (plan && (plan.kind === 'remove' || plan.target === this.self())) {
      this.deps.log.info({ kind: plan.kind, target: plan.target }, 'resuming a move that was under way');
      this.start(plan);
    } else if (status === 'joining' || status === 'leaving') {
      this.start({
        kind: status === 'joining' ? 'join' : 'leave',
        target: this.self(),
        replacing: false,
        startedAtMs: this.deps.clock.nowMs(),
        tasks: undefined,
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
    return this.start({ kind: 'leave', target: self.id, replacing: false, startedAtMs: this.deps.clock.nowMs(), tasks: undefined });
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
    return this.start({ kind: 'remove', target: id, replacing: false, startedAtMs: this.deps.clock.nowMs(), tasks: undefined });
  }

  private start(plan: MovePlan): Promise<void> {
    this.current = this.run(plan).finally(() => {
      this.current = undefined;
    });
    // the caller may not wait (a join runs in the background): never an unhandled rejection
    this.current.catch(() => {});
    return this.current;
  }

  // ---- the move ---------------------------------------------------------------------------------

  private async run(plan: MovePlan): Promise<void> {
    const { log, clock, membership, store } = this.deps;
    this.progress = {
      ...freshProgress(),
      kind: plan.kind,
      target: plan.target,
      replacing: plan.replacing,
      startedAtMs: plan.startedAtMs,
      phase: 'confirm',
    };
    try {
      for (;;) {
        if (plan.kind !== 'join') await this.awaitOthers(plan);
        if (plan.kind === 'leave' && membership.table.self().status !== 'leaving') {
          await membership.setStatus('leaving', 0);
          await this.deps.saveStatus('leaving');
        }
        if (plan.kind === 'remove' && membership.table.get(plan.target)?.status !== 'leaving') {
          await membership.setStatusOf(plan.target, 'leaving');
        }
        await store.putMeta(PLAN_META, plan);
        log.info({ kind: plan.kind, target: plan.target, placement: membership.placement.checksum() }, `${plan.kind} started: confirming`);
        await this.confirm(plan);
        if (!(await this.backOff(plan))) break;
      }
      this.progress.phase = 'settle';
      await this.pause(this.config.requestTimeoutMs, true);
      if (plan.tasks === undefined) {
        plan.tasks = this.planTasks(plan);
        await store.putMeta(PLAN_META, plan);
      }
      this.progress.phase = 'stream';
      this.progress.rangesTotal = plan.tasks.length;
      this.progress.rangesDone = plan.tasks.filter((t) => t.done).length;
      log.info(
        { kind: plan.kind, ranges: plan.tasks.length, left: plan.tasks.length - this.progress.rangesDone },
        `${plan.kind}: streaming`,
      );
      await this.stream(plan);
      this.progress.phase = 'finish';
      await this.finish(plan);
      await store.putMeta(PLAN_META, null);
      this.progress.phase = 'done';
      this.progress.finishedAtMs = clock.nowMs();
      this.progress.waitingFor = undefined;
      const seconds = ((clock.nowMs() - plan.startedAtMs) / 1000).toFixed(1);
      log.info(
        { kind: plan.kind, target: plan.target, seconds, records: this.progress.recordsStreamed, bytes: this.progress.bytesStreamed },
        `${plan.kind} of ${plan.target} finished`,
      );
    } catch (err) {
      this.progress.phase = 'failed';
      this.progress.error = String(err instanceof Error ? err.message : err);
      this.progress.finishedAtMs = clock.nowMs();
      if (this.running) log.error({ kind: plan.kind, target: plan.target, err: this.progress.error }, `${plan.kind} stopped`);
      throw err;
    }
  }

  /**
   * Before a decommission or removal starts: waits (at most moveWaitMs) while other members join or
   * leave, so that moves go one at a time. Not needed for correctness (placement.ts holds for moves
   * at once too), but each move shrinks the stable replicas of the ranges it touches.
   */
  private async awaitOthers(plan: MovePlan): Promise<void> {
    const { membership, clock, random } = this.deps;
    const since = clock.nowMs();
    // pods removed by one scale-down all start their decommission at the same instant: a random
    // pause (up to a second) lets one announce itself before the others look
    const fresh = (plan.kind === 'remove' ? membership.table.get(plan.target)?.status : membership.table.self().status) === 'normal';
    if (fresh) await this.pause(random.next() * 1000, true);
    for (;;) {
      // ask the others what moves they see (an empty ring-state round): the local table may not
      // know yet of a move another member has just announced
      await this.poll(plan, []);
      const moving = membership.table.members().filter((m) => m.id !== plan.target && (m.status === 'joining' || m.status === 'leaving'));
      // already moving (resumed after a restart): go on
      const mine = plan.kind === 'remove' ? membership.table.get(plan.target)?.status : membership.table.self().status;
      if (moving.length === 0 || mine === 'leaving' || clock.nowMs() - since >= this.config.moveWaitMs) return;
      this.progress.waitingFor = `another move to finish: ${moving.map((m) => `${m.id} ${m.status}`).join(', ')}`;
      await this.pause(this.config.retryMs * 2);
    }
  }

  /**
   * Two decommissions that started at the same moment (a Parallel scale-down runs every removed
   * pod's preStop at once) both saw nobody else moving. Before any data moves, the one with the
   * larger id steps back to normal and waits its turn. Safe: a leaving member took no writes and
   * was not read, and as a normal member it is a replica again that repair brings up to date (the
   * writes it missed are on W of the others). Only within moveWaitMs of the start: then both go.
   */
  private async backOff(plan: MovePlan): Promise<boolean> {
    const { membership, log } = this.deps;
    const rival = this.rival(plan);
    if (!rival) return false;
    log.info(
      { rival: rival.id, rivalStatus: rival.status },
      `another move started at the same time (${rival.id} ${rival.status}): waiting for it`,
    );
    await membership.setStatus('normal');
    await this.deps.saveStatus('normal');
    await this.broadcast(plan, membership.table.self());
    return true;
  }

  /** For a decommission not yet streaming: another move, by a member with a smaller id, that it yields to. */
  private rival(plan: MovePlan): MemberEntry | undefined {
    const { membership, clock } = this.deps;
    if (plan.kind !== 'leave' || plan.tasks !== undefined || clock.nowMs() - plan.startedAtMs >= this.config.moveWaitMs) return undefined;
    const self = this.self();
    return membership.table.members().find((m) => m.id !== self && (m.status === 'leaving' || m.status === 'joining') && m.id < self);
  }

  /** Sends an entry to every member now (best effort; gossip carries it anyway). */
  private async broadcast(plan: MovePlan, entry: MemberEntry): Promise<void> {
    await Promise.all(
      this.confirmers(plan).map((m) =>
        this.deps.transport
          .send(m.address, { type: 'ring-state', from: this.self(), entries: [entry] }, this.config.requestTimeoutMs)
          .catch(() => undefined),
      ),
    );
  }

  /** The members that must see the new placement before data moves: all of them but a removed target. */
  private confirmers(plan: MovePlan): MemberEntry[] {
    const self = this.self();
    return this.deps.membership.table.members().filter((m) => m.id !== self && !(plan.kind === 'remove' && m.id === plan.target));
  }

  /**
   * One ring-state round: sends `entries` to every member, learns the moves they see, and returns
   * the members that do not (yet) compute this node's placement, with why.
   */
  private async poll(plan: MovePlan, entries: MemberEntry[]): Promise<string[]> {
    const { membership, transport } = this.deps;
    const pending: string[] = [];
    await Promise.all(
      this.confirmers(plan).map(async (m) => {
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

  /** Sends this move's entry to every member until each computes the placement this node does. */
  private async confirm(plan: MovePlan): Promise<void> {
    const { membership, clock, log } = this.deps;
    let lastLog = clock.nowMs();
    for (;;) {
      this.checkRunning();
      const mine = membership.placement.checksum();
      const entries = [membership.table.self(), ...(plan.kind === 'remove' ? [membership.table.get(plan.target) as MemberEntry] : [])];
      const pending = await this.poll(plan, entries);
      if (pending.length === 0 && membership.placement.checksum() === mine) {
        this.progress.waitingFor = undefined;
        return;
      }
      // a decommission that collided with another: no use confirming, it steps back (backOff)
      if (this.rival(plan)) return;
      this.progress.waitingFor = `members to confirm the ring change: ${pending.join(', ') || 'placement changed meanwhile'}`;
      if (clock.nowMs() - lastLog >= TUNING.moveWaitLogMs) {
        lastLog = clock.nowMs();
        log.warn(
          { kind: plan.kind, waitingFor: pending },
          `${plan.kind} waits for members to confirm (a member that is down blocks it until it is back, or removed)`,
        );
      }
      await this.pause(this.config.retryMs);
    }
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

  /** The ranges to stream, and between whom, from the placement every member now agrees on. */
  private planTasks(plan: MovePlan): MoveTask[] {
    const tasks: MoveTask[] = [];
    const self = this.self();
    const placement = this.deps.membership.placement;
    // a join that nothing moved around: the displaced replica holds all the range's data
    const alone =
      plan.kind === 'join' &&
      !plan.replacing &&
      plan.othersAtStart === this.othersStatuses() &&
      [...placement.moving.keys()].every((id) => id === self);
    if (plan.kind === 'join' && !alone) {
      this.deps.log.info({ replacing: plan.replacing }, 'join: other moves around this one, streaming each range from every other replica');
    }
    for (const { lo, hi, replicas } of placement.ranges()) {
      if (plan.kind === 'join') {
        if (!replicas.pending.includes(self)) continue;
        const others = [...replicas.stable, ...replicas.displaced].filter((id) => id !== self);
        const from = !alone || replicas.displaced.length === 0 ? others : replicas.displaced;
        if (from.length > 0) tasks.push({ lo, hi, to: self, from, cursors: {}, done: false });
      } else {
        if (!replicas.displaced.includes(plan.target)) continue;
        // A range that loses a replica and gains none (the ring shrinks below N) must also reach its
        // remaining replicas: a write acknowledged by the departing one and one other may have
        // missed the rest, and with nobody new to stream to, it would be left on one replica.
        const shrinks = replicas.write.length < replicas.stable.length + replicas.displaced.length;
        const receivers = shrinks ? replicas.write : replicas.pending;
        for (const to of receivers) {
          const from = plan.kind === 'leave' ? [self] : replicas.stable.filter((id) => id !== plan.target && id !== to);
          if (from.length > 0) tasks.push({ lo, hi, to, from, cursors: {}, done: false });
        }
      }
    }
    return tasks;
  }

  private async stream(plan: MovePlan): Promise<void> {
    const tasks = plan.tasks as MoveTask[];
    const queue = tasks.filter((t) => !t.done);
    // progress is saved for resuming after a crash: at most once per PLAN_SAVE_MS (a plan holds
    // hundreds of ranges; saving it after every page would cost more than the page)
    let saving: Promise<void> = Promise.resolve();
    let lastSave = this.deps.clock.nowMs();
    const write = () => {
      lastSave = this.deps.clock.nowMs();
      saving = saving.then(() => this.deps.store.putMeta(PLAN_META, plan)).catch(() => {});
    };
    const save = () => {
      if (this.deps.clock.nowMs() - lastSave >= PLAN_SAVE_MS) write();
    };
    const worker = async () => {
      for (let task = queue.shift(); task; task = queue.shift()) {
        const instead = await this.streamTask(plan, task, save);
        // its receiver left the cluster meanwhile: the range goes to whoever gains it now
        for (const to of instead) {
          const again: MoveTask = { lo: task.lo, hi: task.hi, to, from: [...task.from], cursors: {}, done: false };
          tasks.push(again);
          queue.push(again);
          this.progress.rangesTotal++;
        }
        task.done = true;
        this.progress.rangesDone++;
        const share = this.progress.rangesDone / Math.max(1, this.progress.rangesTotal);
        if (plan.target === this.self()) this.deps.membership.setProgress(share);
        save();
      }
    };
    await Promise.all(Array.from({ length: this.config.concurrentRanges }, worker));
    write();
    await saving;
  }

  /**
   * Streams one range from each of its sources, page by page, retrying what fails. Returns the
   * members to stream it to instead when its receiver was removed from the cluster meanwhile
   * (another move planned around this one): empty when it was delivered.
   */
  private async streamTask(plan: MovePlan, task: MoveTask, save: () => void): Promise<string[]> {
    const { membership } = this.deps;
    for (const source of [...task.from]) {
      for (;;) {
        this.checkRunning();
        if (task.to !== this.self() && membership.table.get(task.to)?.status === 'removed') {
          const now = membership.placement.replicasForToken(task.hi).pending.filter((id) => id !== task.to);
          this.deps.log.info({ range: [task.lo, task.hi], removed: task.to, instead: now }, 'stream receiver left the cluster');
          return now;
        }
        const at = task.cursors[source];
        if (at === true) break;
        try {
          const page = await this.fetchPage(source, task, at);
          if (page.records.length > 0) await this.deliver(task.to, page.records);
          task.cursors[source] = page.next ?? true;
          this.progress.waitingFor = undefined;
          save();
        } catch (err) {
          const state = (id: string) => (id === this.self() ? 'alive' : membership.liveness(id));
          this.progress.waitingFor = `range (${task.lo}, ${task.hi}] from ${source} (${state(source)}) to ${task.to} (${state(task.to)}): ${String(
            err instanceof Error ? err.message : err,
          )}`;
          await this.pause(this.config.retryMs);
          // a source that went down: a join of a new member falls back to every other live
          // replica of the range, which together hold everything it held (placement.ts)
          if (plan.kind === 'join' && !plan.replacing && state(source) === 'down') {
            const alternatives = this.fallbackSources(task).filter((alt) => alt !== source);
            if (alternatives.length > 0) {
              for (const alt of alternatives) if (!task.from.includes(alt)) task.from.push(alt);
              task.cursors[source] = true;
              this.deps.log.info(
                { range: [task.lo, task.hi], source, instead: alternatives },
                'stream source is down: streaming from the other replicas',
              );
            }
          }
        }
      }
    }
    // sources added while streaming (fallbacks) are streamed too
    if (task.from.some((s) => task.cursors[s] !== true)) return this.streamTask(plan, task, save);
    return [];
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

  private async deliver(to: string, records: Array<[string, StoredRecord]>): Promise<void> {
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
    this.progress.recordsStreamed += records.length;
    this.progress.bytesStreamed += bytes;
  }

  private send<M extends Message>(id: string, msg: M, timeoutMs: number): Promise<ReplyOf<M>> {
    const address = this.deps.membership.addressOf(id);
    if (!address) return Promise.reject(new Error(`unknown member ${id}`));
    return this.deps.transport.send(address, msg, timeoutMs);
  }

  private async finish(plan: MovePlan): Promise<void> {
    const { membership } = this.deps;
    if (plan.kind === 'join') {
      await membership.setStatus('normal');
      await this.deps.saveStatus('normal');
    } else if (plan.kind === 'leave') {
      await membership.setStatus('removed');
      await this.deps.saveStatus('removed');
    } else {
      await membership.setStatusOf(plan.target, 'removed');
    }
    // tell everyone now rather than wait for gossip
    await this.broadcast(plan, (plan.kind === 'remove' ? membership.table.get(plan.target) : membership.table.self()) as MemberEntry);
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
