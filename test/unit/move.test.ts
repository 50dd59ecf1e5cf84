// The move protocol (core/move.ts) on its own: no cluster, no clock. A harness plays the node's
// part: it keeps the actions the step function asked for, answers them in an order fast-check
// chooses (acks, failures, unconfirmed rounds, failed saves and pages, sources going down,
// receivers removed, crashes that lose everything but the saved state), and checks the protocol's
// order on what it sees, not on the step function's own bookkeeping.

import fc from 'fast-check';
import type { MemberStatus } from '../../src/core/membership';
import {
  type MoveAction,
  type MoveConfig,
  type MoveEvent,
  type MoveKind,
  type MoveState,
  type MoveTask,
  newMove,
  parseMoveState,
  step,
} from '../../src/core/move';

const CONFIG: MoveConfig = {
  requestTimeoutMs: 100,
  concurrentRanges: 2,
  retryMs: 10,
  moveWaitMs: 1e12, // every run below stays within it (the rules that hold only within it are checked)
  moveWaitLogMs: 1000,
  saveEveryMs: 5,
  startJitterMs: 20,
};

/** The plan the harness's placement gives each move (what planTasks would compute). */
function planFor(kind: MoveKind, target: string): MoveTask[] {
  const t = (lo: number, to: string, from: string[]): MoveTask => ({ lo, hi: lo + 100, to, from, cursors: {}, done: false });
  if (kind === 'join') return [t(0, target, ['n1']), t(100, target, ['n2']), t(200, target, ['n1', 'n3'])];
  const source = kind === 'leave' ? [target] : ['n3', 'n4'];
  return [t(300, 'n5', source), t(400, 'n6', source), t(500, 'n5', source)];
}

/** Pages a source has of a range (1 to 3): page i of (lo, hi] ends at cursor lo + i + 1. */
const pagesOf = (lo: number, source: string) => 1 + ((lo / 100 + source.charCodeAt(1)) % 3);

const flipped = (kind: MoveKind): MemberStatus => (kind === 'join' ? 'normal' : 'removed');

/** The cluster as the harness plays it: statuses, what has been delivered, the clock. */
class World {
  nowMs = 1_000;
  /** Bumped at every status change: a confirmation round that spans one sees the placement change. */
  version = 0;
  readonly statuses = new Map<string, MemberStatus>();
  /** `lo/to/source/page` of every page delivered. */
  readonly delivered = new Set<string>();
  /** The order of what happened, across movers, for the checks that compare two moves. */
  readonly log: Array<{ mover: string; what: string; atMs: number }> = [];

  set(id: string, status: MemberStatus): void {
    if (this.statuses.get(id) !== status) this.version++;
    this.statuses.set(id, status);
  }
  moving(except: string): Array<{ id: string; status: MemberStatus }> {
    return [...this.statuses]
      .filter(([id, s]) => id !== except && (s === 'joining' || s === 'leaving'))
      .map(([id, status]) => ({ id, status }));
  }
}

/** What an outstanding action saw when it was issued (a round observes the world then). */
interface Pending {
  action: MoveAction;
  version: number;
  moving: Array<{ id: string; status: MemberStatus }>;
}

interface Faults {
  /** Transient: a page or a save fails, a round is not confirmed. */
  transient: boolean;
  /** Route-changing: a source goes down (a join falls back to others), a receiver is removed. */
  reroute: boolean;
  /** Another member moving when the mover looks around. */
  othersMoving: boolean;
}

/** One move and the node that runs it. */
class Mover {
  state: MoveState;
  /** The store's copy: undefined when never saved, null once cleared. */
  saved: MoveState | null | undefined;
  pending: Pending[] = [];
  incarnation = 0;
  /** Per incarnation: whether a settle pause has run out since the last confirmation round began. */
  settled = false;
  /** Every stream-page / flip, with the incarnation it was issued in: checked afterwards. */
  readonly violations: string[] = [];
  /** Per task (by index in the final state): sources whose last page was delivered, or given up as down. */
  readonly finishedSources = new Map<number, Set<string>>();
  readonly goneTasks = new Set<number>();
  crashes = 0;
  /** When the settle that led to this move's first page began (its last full confirmation before streaming). */
  confirmedAtMs: number | undefined;
  /** It waited for another move to finish (counted, to show the case is reached). */
  waitedForAnother = false;
  private settleAtMs: number | undefined;

  constructor(
    readonly world: World,
    readonly kind: MoveKind,
    readonly target: string,
    readonly faults: Faults,
    readonly self = kind === 'remove' ? 'n1' : target,
  ) {
    world.set(target, kind === 'join' ? 'joining' : 'normal');
    this.state = this.fresh();
    this.feed({ type: 'start', nowMs: world.nowMs, targetStatus: world.statuses.get(target) });
  }

  private fresh(): MoveState {
    return newMove({ kind: this.kind, target: this.target, replacing: false, startedAtMs: this.world.nowMs, othersAtStart: 'n1:normal' });
  }

  finished(): boolean {
    if (this.state.phase.name === 'done') return true;
    // cleared and flipped, but the crash came before the `saved` of the clear: over all the same
    return this.saved === null && this.world.statuses.get(this.target) === flipped(this.kind) && this.pending.length === 0;
  }

  feed(event: MoveEvent): void {
    const r = step(this.state, event, CONFIG);
    // after its announcement (`confirm`) or before it (`wait`, a decommission's look around)
    const w = r.state.waitingFor ?? '';
    if (w.endsWith('to finish its move') || w.startsWith('another move to finish')) this.waitedForAnother = true;

    this.state = r.state;
    for (const a of r.actions) this.issued(a, event);
  }

  /** Checks each action as it is asked for: the phase order, on what the harness has seen. */
  private issued(a: MoveAction, cause: MoveEvent): void {
    const w = this.world;
    if (a.type === 'log' || a.type === 'progress') return;
    if (a.type === 'pause' && a.reason === 'settle') {
      // no settle before every member confirmed, in a round that saw no placement change
      if (cause.type !== 'confirm-result' || cause.pending.length > 0 || cause.placementChanged) {
        this.violations.push(`settle after ${JSON.stringify(cause)}`);
      }
      this.settleAtMs = w.nowMs;
    }
    if (a.type === 'confirm-round') this.settled = false;
    if (a.type === 'stream-page') {
      // no stream before the settle (in this incarnation: a restart confirms and settles again)
      if (!this.settled) this.violations.push(`stream-page of task ${a.task} before the settle`);
      this.confirmedAtMs ??= this.settleAtMs;
      // the plan is on disk before any data moves (a failed save holds the move up, never passed over)
      if (!this.saved?.tasks) this.violations.push(`stream-page of task ${a.task} before the plan was saved`);
      w.log.push({ mover: this.target, what: 'stream', atMs: w.nowMs });
    }
    if (a.type === 'set-status' && a.status === flipped(this.kind) && a.of === this.target) {
      // no flip before every range streamed: every task's every source delivered to its end (or
      // given up as down, a join's fallback), or the task handed to another receiver
      const tasks = this.state.tasks ?? [];
      tasks.forEach((t, i) => {
        if (this.goneTasks.has(i)) return;
        const done = this.finishedSources.get(i) ?? new Set();
        const missing = t.from.filter((f) => !done.has(f));
        if (missing.length > 0)
          this.violations.push(`flip with range (${t.lo}, ${t.hi}] to ${t.to} not streamed from ${missing.join(', ')}`);
      });
      if (tasks.length === 0) this.violations.push('flip without a plan');
      if (this.saved?.phase.name !== 'flip') this.violations.push('flip before "every range streamed" was saved');
    }
    this.pending.push({
      action: a,
      version: w.version,
      moving: w.moving(this.self === this.target ? this.target : this.self).filter((m) => m.id !== this.target),
    });
  }

  /** Answers the outstanding action `index`, with an outcome picked by `choice`. */
  answer(index: number, choice: number): void {
    const before = this.state;
    const event = this.outcome(index, choice);
    if (!event) return;
    this.feed(event);
    // a join's source given up as down (its alternatives stream instead)
    if (event.type === 'retry' && before.tasks?.[event.task]?.cursors[event.source] !== true) {
      if (this.state.tasks?.[event.task]?.cursors[event.source] === true) this.sourceDone(event.task, event.source);
    }
  }

  private outcome(index: number, choice: number): MoveEvent | undefined {
    const w = this.world;
    // saves reach the store in the order they were asked for (the executor chains them)
    const firstSave = this.pending.findIndex((p) => p.action.type === 'save');
    if (this.pending[index]?.action.type === 'save') index = firstSave;
    const [p] = this.pending.splice(index, 1) as [Pending];
    const a = p.action;
    w.nowMs += 1;
    const now = w.nowMs;
    const fault = (n: number) => this.faults.transient && choice % n === 0;
    switch (a.type) {
      case 'pause':
        w.nowMs += a.ms;
        if (this.state.phase.name === 'settle' && a.reason === 'settle') this.settled = true;
        return { type: 'timer', nowMs: w.nowMs };
      case 'poll-moves': {
        const moving = this.faults.othersMoving && choice % 3 === 0 ? [{ id: 'n7', status: 'joining' as const }] : p.moving;
        return { type: 'moves-seen', nowMs: now, moving, targetStatus: w.statuses.get(this.target) };
      }
      case 'set-status':
        // the announcement takes effect here, when the status changes
        if (a.status === 'leaving') w.log.push({ mover: this.target, what: 'announce', atMs: now });
        if (a.of === this.target && a.status === flipped(this.kind)) w.log.push({ mover: this.target, what: 'flip', atMs: now });
        w.set(a.of, a.status);
        return { type: 'status-set', nowMs: now };
      case 'save':
        if (fault(4)) return { type: 'save-failed', nowMs: now, seq: a.seq, error: 'disk full' };
        this.saved = a.state === null ? null : (JSON.parse(JSON.stringify(a.state)) as MoveState);
        return { type: 'saved', nowMs: now, seq: a.seq };
      case 'confirm-round':
        return {
          type: 'confirm-result',
          nowMs: now,
          pending: fault(3) ? ['n2 (down: timeout)'] : [],
          placementChanged: p.version !== w.version,
          moving: p.moving,
        };
      case 'plan':
        return { type: 'planned', nowMs: now, tasks: planFor(this.kind, this.target) };
      case 'stream-page': {
        const task = this.state.tasks?.[a.task] as MoveTask;
        if (this.faults.reroute && task.to !== this.self && choice % 11 === 0) {
          this.goneTasks.add(a.task);
          return { type: 'receiver-gone', nowMs: now, task: a.task, instead: ['n8'] };
        }
        if (fault(4)) {
          return {
            type: 'page-failed',
            nowMs: now,
            task: a.task,
            source: a.source,
            why: 'timeout',
            sourceState: 'alive',
            receiverState: 'alive',
          };
        }
        const page = a.after === undefined ? 0 : a.after - task.lo;
        w.delivered.add(`${task.lo}/${task.to}/${a.source}/${page}`);
        const last = page + 1 >= pagesOf(task.lo, a.source);
        if (last) this.sourceDone(a.task, a.source);
        return { type: 'page', nowMs: now, task: a.task, source: a.source, next: last ? undefined : task.lo + page + 1 };
      }
      case 'retry-page': {
        w.nowMs += a.ms;
        const down = this.faults.reroute && choice % 2 === 0;
        return { type: 'retry', nowMs: w.nowMs, task: a.task, source: a.source, sourceDown: down, alternatives: ['n4'] };
      }
      default:
        return undefined;
    }
  }

  private sourceDone(task: number, source: string): void {
    const set = this.finishedSources.get(task) ?? new Set();
    set.add(source);
    this.finishedSources.set(task, set);
  }

  /** The node dies: everything but the store is lost; it starts again from what was saved. */
  crash(): void {
    this.crashes++;
    this.pending = [];
    this.incarnation++;
    this.settled = false;
    const status = this.world.statuses.get(this.target);
    const now = this.world.nowMs;
    if (this.saved) {
      // what the node reads back is the saved shape, checked
      const parsed = parseMoveState(JSON.parse(JSON.stringify(this.saved)));
      if ('error' in parsed) throw new Error(parsed.error);
      this.state = parsed.state;
      this.feed({ type: 'restarted', nowMs: now, targetStatus: status });
    } else if (this.finished()) {
      return;
    } else {
      // nothing saved: a join or leave under way starts again from the status (Movement.resume);
      // a decommission or removal not yet announced is asked for again by its operator
      this.state = this.fresh();
      this.feed({ type: 'start', nowMs: now, targetStatus: status });
    }
  }
}

/** Runs movers until every one is done: `choices` pick the next answer and its outcome, then all goes well. */
function drive(movers: Mover[], choices: number[], crashAt: ReadonlySet<number> = new Set()): void {
  let i = 0;
  for (let n = 0; n < 20_000; n++) {
    const open = movers.filter((m) => !m.finished() && m.pending.length > 0);
    if (open.length === 0) break;
    const calm = i >= choices.length;
    const c = calm ? n : (choices[i] as number); // calm: the movers take turns
    i++;
    const m = open[c % open.length] as Mover;
    if (crashAt.has(n)) {
      m.crash();
      continue;
    }
    if (calm) {
      // after the chosen interleaving: faults heal, answers in order
      (m as { faults: Faults }).faults.transient = false;
      (m as { faults: Faults }).faults.reroute = false;
      (m as { faults: Faults }).faults.othersMoving = false;
    }
    m.answer(calm ? 0 : Math.floor(c / 7) % m.pending.length, calm ? 1 : Math.floor(c / 101));
  }
}

const kindArb = fc.constantFrom<MoveKind>('join', 'leave', 'remove');
const choicesArb = fc.array(fc.nat({ max: 1_000_000 }), { minLength: 20, maxLength: 300 });

describe('a move (core/move.ts)', () => {
  test('a saved move is read back only in its own version: an older shape is refused with a message saying what to do', () => {
    const state = newMove({ kind: 'leave', target: 'n2', replacing: false, startedAtMs: 5 });
    expect(parseMoveState(JSON.parse(JSON.stringify(state)))).toEqual({ state });
    const old = { kind: 'leave', target: 'n2', replacing: false, startedAtMs: 5, tasks: undefined };
    expect(parseMoveState(old)).toEqual({ error: expect.stringContaining('the saved move has version null, this node reads version 1') });
    expect(parseMoveState({ ...state, phase: { name: 'dancing' } })).toEqual({ error: expect.stringContaining('damaged') });
    expect(parseMoveState('move')).toEqual({ error: 'the saved move is not an object' });
  });

  test('for every interleaving of acks, failures, restarts and page results, the order is confirm -> settle -> stream -> flip', () => {
    fc.assert(
      fc.property(kindArb, choicesArb, fc.array(fc.nat({ max: 400 }), { maxLength: 4 }), (kind, choices, crashes) => {
        const world = new World();
        const m = new Mover(world, kind, kind === 'join' ? 'n9' : 'n2', { transient: true, reroute: true, othersMoving: true });
        drive([m], choices, new Set(crashes));
        expect(m.violations).toEqual([]);
        expect(m.finished()).toBe(true);
        expect(world.statuses.get(m.target)).toBe(flipped(kind));
        expect(m.saved ?? null).toBeNull();
      }),
      { numRuns: 1000 },
    );
  });

  test('a crash at any step resumes to the end a run without it reaches: same statuses, every page delivered, nothing left saved', () => {
    fc.assert(
      fc.property(kindArb, fc.array(fc.nat({ max: 1_000_000 }), { minLength: 10, maxLength: 80 }), (kind, choices) => {
        // faults that change no route (the plan is the same whatever happens), so the end can be compared
        const faults = (): Faults => ({ transient: true, reroute: false, othersMoving: false });
        const target = kind === 'join' ? 'n9' : 'n2';
        const baseWorld = new World();
        const base = new Mover(baseWorld, kind, target, faults());
        drive([base], choices);
        expect(base.finished()).toBe(true);
        const end = (w: World, m: Mover) => ({
          statuses: [...w.statuses].sort(),
          delivered: [...w.delivered].sort(),
          saved: m.saved ?? null,
          violations: m.violations,
        });
        const expected = end(baseWorld, base);
        expect(expected.delivered.length).toBeGreaterThan(0);
        // one crash at each step of the run (each answer the harness gives), then at two steps at once
        let steps = 0;
        for (let at = 0; at < 200; at++) {
          const w = new World();
          const m = new Mover(w, kind, target, faults());
          drive([m], choices, new Set([at, at + 3]));
          expect(m.finished()).toBe(true);
          expect(end(w, m)).toEqual(expected);
          steps++;
          if (m.crashes === 0) break; // the run ended before the crash came: every step was tried
        }
        expect(steps).toBeGreaterThan(1);
      }),
      { numRuns: 100 },
    );
  });

  // A decommission announces only after a look around that saw no other move, and a fresh node
  // joins only after one (node/movement.ts); one decommission that sees a smaller id moving before
  // it plans steps back; and a move that, once announced, still sees another beside it waits for it
  // before it settles (a decommission for any, a join for a join by a smaller id). A look around can
  // be older than the other's announcement, so two can be under way at once: the last rule is what
  // keeps their streams (and flips) apart then. Past moveWaitMs nothing does; placement keeps that safe.
  test.each([
    ['two decommissions', 'leave', 'n2', 'leave', 'n3'],
    ['two joins', 'join', 'n7', 'join', 'n8'],
    ['a join and a decommission', 'join', 'n8', 'leave', 'n2'],
  ] as const)('%s within moveWaitMs never stream at the same time, and both finish', (_name, kindA, idA, kindB, idB) => {
    let waited = 0;
    fc.assert(
      fc.property(choicesArb, (choices) => {
        const world = new World();
        for (const id of ['n1', 'n2', 'n3', 'n4', 'n5', 'n6']) world.set(id, 'normal');
        const faults = (): Faults => ({ transient: true, reroute: false, othersMoving: false });
        const a = new Mover(world, kindA, idA, faults());
        const b = new Mover(world, kindB, idB, faults());
        drive([a, b], choices);
        expect([a.violations, b.violations]).toEqual([[], []]);
        expect([a.finished(), b.finished()]).toEqual([true, true]);
        // between each one's first page and its flip
        const span = (id: string) => {
          const at = world.log.filter((e) => e.mover === id && (e.what === 'stream' || e.what === 'flip')).map((e) => e.atMs);
          return { from: Math.min(...at), to: Math.max(...at) };
        };
        const sa = span(idA);
        const sb = span(idB);
        expect(sa.from <= sb.to && sb.from <= sa.to).toBe(false);
        if (a.waitedForAnother || b.waitedForAnother) waited++;
      }),
      { numRuns: 500 },
    );
    // the case is reached: one of the two waited for the other
    expect(waited).toBeGreaterThan(0);
  });
});
