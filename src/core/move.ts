// Joins, decommissions and removals as a state machine (etcd raft's Step/Ready, in miniature):
// `step(state, event, config)` returns the next state and the actions the caller must carry out
// (node/movement.ts: send the ring state, wait, stream pages, save, flip a status); their results
// come back as events. Nothing here sends, sleeps, reads a clock or draws a random number: times
// arrive in events, and what the node observes (who confirmed, who else moves, which source is
// down) arrives as data.
//
// Why a move is safe rests on one order (the argument is atop core/placement.ts):
//   confirm -> settle -> stream -> flip.
//   1. confirm: every member computes the placement the mover does, so every coordinator reads
//      from and counts acks of the stable replicas only (a member that is down blocks the move);
//   2. settle: one request deadline passes, so writes coordinated under the old view have landed;
//   3. stream: every range the move touches reaches every replica that gains it, from sources
//      that together held every write acknowledged in that range;
//   4. flip: the mover's status changes (joining -> normal, leaving -> removed) and the ranges
//      are served from the new ring.
// Here that order is the shape of the type: `settle` is entered only from a confirmation round in
// which every member agreed and the placement did not change while it ran; pages are asked for
// only in `stream`, entered only from `settle`'s timer (or `plan`, which follows it); `flip` is
// entered only when every task is done. A restart (`restarted`) goes back to the confirmation:
// the node cannot know what changed while it was down, so it confirms and settles again before
// it streams (pages already delivered are not streamed again: their cursors are saved).
//
// The persisted plan IS this state (`MoveState`, versioned). A step that needs the plan on disk
// (announce, plan, flip, clear) goes on only after the `saved` event; a failed save is retried after
// a pause and shown in `waitingFor`, never passed over. While streaming, the state is saved at most
// once a `saveEveryMs`; a crash loses at most that much progress, and pages streamed again are
// harmless (records are versioned: the newer one wins on apply).
//
// Moves take turns where they can (two moves at once leave the ranges both touch with fewer
// stable replicas), but nothing here excludes two moves for good:
//   - a decommission or removal that is not yet leaving waits (`wait`) while it sees another
//     member joining or leaving, at most `moveWaitMs` from when it began to wait;
//   - a decommission that sees a member with a smaller id moving, before it has planned and within
//     `moveWaitMs` of its start, steps back to normal (`back-off`) and waits its turn;
//   - a move that, once announced, still sees another beside it waits for it before it settles
//     (within `moveWaitMs`; `aheadOf`): a decommission for any other move, a join for a join by a
//     smaller id. A look around can be older than the other's announcement, so two decommissions
//     can both be leaving: the smaller id then waits while the larger one either steps back (it had
//     not planned) or finishes (it had). Two fresh nodes can both announce a join at once: the
//     larger id waits. A join waits for no decommission, so no two moves wait on each other. So
//     within `moveWaitMs` no two joins or decommissions stream or flip at the same time
//     (test/unit/move.test.ts). A removal (removenode, for a member that is gone) waits for none:
//     decommissions wait for it;
//   - after `moveWaitMs` (at once in the simulator's --concurrent-moves, which sets it to 0) both go ahead; then
//     placement.ts's argument holds for moves at once too (each computes its plan from the placement
//     with both moves in it); it only costs availability. (A join looks around before it announces
//     itself too: node/movement.ts's bootstrap waits while another move is under way. A join that
//     other moves went on around streams each range from every other replica, `othersAtStart`.)

import assert from './assert';
import type { MemberStatus } from './membership';
import type { StreamCursor } from './messages';
import type { Placement } from './placement';

export const MOVE_STATE_VERSION = 1;

export type MoveKind = 'join' | 'leave' | 'remove';

/** One range to stream: from each of `from` (ids) to `to`, with where each source got to. */
export interface MoveTask {
  readonly lo: number;
  readonly hi: number;
  readonly to: string;
  readonly from: readonly string[];
  /** Per source: the cursor reached, or true when that source is done. */
  readonly cursors: Readonly<Record<string, StreamCursor | true>>;
  readonly done: boolean;
}

/** Where a move is. Each phase holds what only it needs. */
export type MovePhase =
  /** A decommission or removal looks for other moves under way before it announces itself. */
  | { readonly name: 'wait'; readonly sinceMs: number; readonly step: 'jitter' | 'poll' | 'pause' }
  /** Sets the moving status (leaving; a join announced itself before its state existed), then saves. */
  | { readonly name: 'announce'; readonly step: 'status' | 'save' }
  /** Rounds of ring-state messages until every member computes this placement. */
  | { readonly name: 'confirm'; readonly step: 'round' | 'pause'; readonly lastWarnMs: number }
  /** A decommission yields to a rival: back to normal, then waits again. */
  | { readonly name: 'back-off'; readonly rival: string }
  /** One request deadline, for writes coordinated under the old view. */
  | { readonly name: 'settle' }
  /** Computes the tasks from the placement every member agrees on, then saves them. */
  | { readonly name: 'plan'; readonly step: 'compute' | 'save' }
  /** Pages in flight per task (at most `concurrentRanges` tasks), and when the state was last saved. */
  | { readonly name: 'stream'; readonly active: readonly number[]; readonly retrying: readonly number[]; readonly savedAtMs: number }
  /** Every range streamed: save that, flip the status, then clear the saved state. */
  | { readonly name: 'flip'; readonly step: 'save' | 'status' | 'clear' }
  | { readonly name: 'done'; readonly finishedAtMs: number };

export interface MoveState {
  readonly version: typeof MOVE_STATE_VERSION;
  readonly kind: MoveKind;
  /** The member that joins or leaves (this node, or the dead one removenode removes). */
  readonly target: string;
  /** A join of an id the cluster had as a member: its volume was replaced. */
  readonly replacing: boolean;
  readonly startedAtMs: number;
  /**
   * A join: the other members' statuses when it announced itself. A join that nothing else moved
   * around (same statuses when it plans, nobody else moving) streams each range from the replica
   * it displaces alone; otherwise that replica may never have held the range (it became normal
   * in another move planned around this one), so it streams from every other replica.
   */
  readonly othersAtStart?: string;
  /** Planned once, after the first settle; kept across restarts. */
  readonly tasks: readonly MoveTask[] | undefined;
  readonly phase: MovePhase;
  /** What the move waits for, when it waits (a member that has not confirmed, a source that is down). */
  readonly waitingFor: string | undefined;
  /** Saves asked for so far: a `saved` answers the save of its number (a late one is not taken for another). */
  readonly saves: number;
}

export interface MoveConfig {
  requestTimeoutMs: number;
  /** Ranges streamed at once. */
  concurrentRanges: number;
  /** Pause between two confirmation rounds, between retries of a failed page or save. */
  retryMs: number;
  /** How long a move waits for other members' moves (and yields to a rival) before it goes ahead anyway. */
  moveWaitMs: number;
  /** A move that waits for confirmations says so in the log this often. */
  moveWaitLogMs: number;
  /** While streaming, the state is saved at most this often. */
  saveEveryMs: number;
  /** A fresh decommission's first look around waits up to this long, at random (see `wait`). */
  startJitterMs: number;
}

/** What the caller must do. Each action that has a result answers with the event named beside it. */
export type MoveAction =
  /** Wait, then `timer`. `jitter`: the caller spreads the wait (`some`: ±, `spread`: uniform in [0, ms]). */
  | {
      readonly type: 'pause';
      readonly ms: number;
      readonly jitter: 'none' | 'some' | 'spread';
      readonly reason: 'jitter' | 'wait' | 'confirm' | 'settle' | 'save';
    }
  /** An empty ring-state round: learn the moves the others see; then `moves-seen`. */
  | { readonly type: 'poll-moves' }
  /** Set `of`'s status (and persist it, if it is this node's; `leaving` is skipped if it already is), broadcast it if asked; then `status-set`. */
  | { readonly type: 'set-status'; readonly of: string; readonly status: MemberStatus; readonly broadcast: boolean }
  /** Save `state` as the plan (null: clear it); then `saved` or `save-failed` with the same `seq`. */
  | { readonly type: 'save'; readonly seq: number; readonly state: MoveState | null }
  /** Send the move's entries to every member; then `confirm-result`. */
  | { readonly type: 'confirm-round' }
  /** Compute the tasks from the current placement (`planTasks`); then `planned`. */
  | { readonly type: 'plan' }
  /**
   * One page of task `task` from `source` after `after`, delivered to the task's receiver; then
   * `page`, `page-failed`, or `receiver-gone` (the receiver was removed from the cluster meanwhile).
   */
  | { readonly type: 'stream-page'; readonly task: number; readonly source: string; readonly after: StreamCursor | undefined }
  /** Wait, then `retry` for that task, with what the caller sees of its source then. */
  | { readonly type: 'retry-page'; readonly task: number; readonly source: string; readonly ms: number }
  /** Share of the tasks done, for this node's member entry (own moves only). */
  | { readonly type: 'progress'; readonly share: number }
  | { readonly type: 'log'; readonly level: 'info' | 'warn' | 'error'; readonly fields: Record<string, unknown>; readonly msg: string };

/** What happened. Events carry the time they happened at and what the caller observed. */
export type MoveEvent =
  /** The move begins (`targetStatus`: the target's status now). */
  | { readonly type: 'start'; readonly nowMs: number; readonly targetStatus: MemberStatus | undefined }
  /** The node started again with this state loaded from its store. */
  | { readonly type: 'restarted'; readonly nowMs: number; readonly targetStatus: MemberStatus | undefined }
  | { readonly type: 'timer'; readonly nowMs: number }
  /** Members other than the target that are joining or leaving, and the target's status. */
  | {
      readonly type: 'moves-seen';
      readonly nowMs: number;
      readonly moving: readonly Moving[];
      readonly targetStatus: MemberStatus | undefined;
    }
  | { readonly type: 'status-set'; readonly nowMs: number }
  | { readonly type: 'saved'; readonly nowMs: number; readonly seq: number }
  | { readonly type: 'save-failed'; readonly nowMs: number; readonly seq: number; readonly error: string }
  /**
   * A confirmation round: the members that do not compute this placement (with why), whether the
   * placement changed while the round ran, and the members other than this node moving now.
   */
  | {
      readonly type: 'confirm-result';
      readonly nowMs: number;
      readonly pending: readonly string[];
      readonly placementChanged: boolean;
      readonly moving: readonly Moving[];
    }
  | { readonly type: 'planned'; readonly nowMs: number; readonly tasks: readonly MoveTask[] }
  /** A page was delivered; `next` undefined: that source has no more of the range. */
  | {
      readonly type: 'page';
      readonly nowMs: number;
      readonly task: number;
      readonly source: string;
      readonly next: StreamCursor | undefined;
    }
  /** A page failed: why, and how the caller sees its source and its receiver (alive, suspect, down). */
  | {
      readonly type: 'page-failed';
      readonly nowMs: number;
      readonly task: number;
      readonly source: string;
      readonly why: string;
      readonly sourceState: string;
      readonly receiverState: string;
    }
  /** After a failed page's pause: whether its source is down, and the live replicas that could stand in for it. */
  | {
      readonly type: 'retry';
      readonly nowMs: number;
      readonly task: number;
      readonly source: string;
      readonly sourceDown: boolean;
      readonly alternatives: readonly string[];
    }
  /** The task's receiver was removed meanwhile: the range goes to `instead` (who gains it now). */
  | { readonly type: 'receiver-gone'; readonly nowMs: number; readonly task: number; readonly instead: readonly string[] };

export interface Moving {
  readonly id: string;
  readonly status: MemberStatus;
}

export interface StepResult {
  readonly state: MoveState;
  readonly actions: readonly MoveAction[];
}

/** A new move's state. `self` is this node; a join has announced itself already (bootstrap). */
export function newMove(init: {
  kind: MoveKind;
  target: string;
  replacing: boolean;
  startedAtMs: number;
  othersAtStart?: string | undefined;
}): MoveState {
  return {
    version: MOVE_STATE_VERSION,
    kind: init.kind,
    target: init.target,
    replacing: init.replacing,
    startedAtMs: init.startedAtMs,
    ...(init.othersAtStart === undefined ? {} : { othersAtStart: init.othersAtStart }),
    tasks: undefined,
    // a join starts confirming at once; the others look around first (`start` sets it)
    phase: init.kind === 'join' ? { name: 'announce', step: 'save' } : { name: 'wait', sinceMs: init.startedAtMs, step: 'jitter' },
    waitingFor: undefined,
    saves: 0,
  };
}

/** The status a move's target has once it flips. */
function flipStatus(kind: MoveKind): MemberStatus {
  return kind === 'join' ? 'normal' : 'removed';
}

/**
 * The whole protocol. Events that do not belong to the phase (a late page after a restart, a timer
 * of a phase left, the answer to a save that a newer one replaced) are ignored: the state says
 * what is awaited.
 */
export function step(state: MoveState, event: MoveEvent, config: MoveConfig): StepResult {
  const s = state;
  const p = s.phase;
  const same: StepResult = { state: s, actions: [] };
  switch (event.type) {
    case 'start':
      return begin(s, event.nowMs, event.targetStatus, config);
    case 'restarted':
      // saved at the flip: flip again (it is idempotent); before it: confirm and settle again (see the header)
      if (p.name === 'flip') return flip(s);
      if (p.name === 'done') return same;
      return begin(s, event.nowMs, event.targetStatus, config);
    case 'timer':
      if (p.name === 'wait' && (p.step === 'jitter' || p.step === 'pause'))
        return { state: { ...s, phase: { ...p, step: 'poll' } }, actions: [{ type: 'poll-moves' }] };
      if (p.name === 'confirm' && p.step === 'pause') return confirmRound(s, p.lastWarnMs);
      if (p.name === 'settle') {
        if (s.tasks !== undefined) return toStream(s, event.nowMs, config);
        return { state: { ...s, phase: { name: 'plan', step: 'compute' } }, actions: [{ type: 'plan' }] };
      }
      // a save a phase needs, after a failure and its pause: again
      if ((p.name === 'announce' || p.name === 'plan') && p.step === 'save') return save(s);
      if (p.name === 'flip' && p.step === 'save') return save(s);
      if (p.name === 'flip' && p.step === 'clear') return save(s, null);
      return same;
    case 'moves-seen': {
      if (p.name !== 'wait' || p.step !== 'poll') return same;
      const waited = event.nowMs - p.sinceMs;
      // already leaving (resumed after a restart): go on
      if (event.moving.length === 0 || event.targetStatus === 'leaving' || waited >= config.moveWaitMs) {
        return {
          state: { ...s, phase: { name: 'announce', step: 'status' }, waitingFor: undefined },
          actions: [{ type: 'set-status', of: s.target, status: 'leaving', broadcast: false }],
        };
      }
      return {
        state: { ...s, phase: { ...p, step: 'pause' }, waitingFor: `another move to finish: ${describe(event.moving)}` },
        actions: [{ type: 'pause', ms: config.retryMs * 2, jitter: 'some', reason: 'wait' }],
      };
    }
    case 'status-set':
      if (p.name === 'announce' && p.step === 'status') return save({ ...s, phase: { name: 'announce', step: 'save' } });
      if (p.name === 'back-off') {
        // waits its turn: looks around again as a fresh decommission does
        return {
          state: { ...s, phase: { name: 'wait', sinceMs: event.nowMs, step: 'jitter' } },
          actions: [{ type: 'pause', ms: config.startJitterMs, jitter: 'spread', reason: 'jitter' }],
        };
      }
      if (p.name === 'flip' && p.step === 'status') return save({ ...s, phase: { name: 'flip', step: 'clear' } }, null);
      return same;
    case 'saved':
      if (event.seq !== s.saves) return same;
      if (p.name === 'announce' && p.step === 'save') {
        return confirmRound({ ...s, waitingFor: undefined }, event.nowMs, [
          { type: 'log', level: 'info', fields: { kind: s.kind, target: s.target }, msg: `${s.kind} started: confirming` },
        ]);
      }
      if (p.name === 'plan' && p.step === 'save') return toStream({ ...s, waitingFor: undefined }, event.nowMs, config);
      if (p.name === 'flip' && p.step === 'save') return flip({ ...s, waitingFor: undefined });
      if (p.name === 'flip' && p.step === 'clear') {
        const seconds = ((event.nowMs - s.startedAtMs) / 1000).toFixed(1);
        return {
          state: { ...s, phase: { name: 'done', finishedAtMs: event.nowMs }, waitingFor: undefined },
          actions: [
            { type: 'log', level: 'info', fields: { kind: s.kind, target: s.target, seconds }, msg: `${s.kind} of ${s.target} finished` },
          ],
        };
      }
      return same;
    case 'save-failed': {
      if (event.seq !== s.saves) return same;
      const log: MoveAction = {
        type: 'log',
        level: 'error',
        fields: { kind: s.kind, target: s.target, err: event.error },
        msg: "could not save the move's plan: trying again",
      };
      // while streaming: saved again with the next page (the progress since the last save counts as unsaved)
      if (p.name === 'stream') return { state: { ...s, phase: { ...p, savedAtMs: Number.NEGATIVE_INFINITY } }, actions: [log] };
      if (!((p.name === 'announce' || p.name === 'plan' || p.name === 'flip') && (p.step === 'save' || p.step === 'clear'))) return same;
      return {
        state: { ...s, waitingFor: `saving the move's plan: ${event.error}` },
        actions: [log, { type: 'pause', ms: config.retryMs, jitter: 'some', reason: 'save' }],
      };
    }
    case 'confirm-result': {
      if (p.name !== 'confirm' || p.step !== 'round') return same;
      const rival = rivalOf(s, event.moving, event.nowMs, config);
      // a decommission that collided with another: no use confirming, it steps back
      if (rival) {
        return {
          state: { ...s, phase: { name: 'back-off', rival: rival.id }, waitingFor: undefined },
          actions: [
            {
              type: 'log',
              level: 'info',
              fields: { rival: rival.id, rivalStatus: rival.status },
              msg: `another move started at the same time (${rival.id} ${rival.status}): waiting for it`,
            },
            { type: 'set-status', of: s.target, status: 'normal', broadcast: true },
          ],
        };
      }
      // a move that another still runs beside waits for it before it settles (`aheadOf`), so the
      // two do not stream and flip at once
      const ahead = aheadOf(s, event.moving, event.nowMs, config);
      if (event.pending.length === 0 && !event.placementChanged && ahead === undefined) {
        return {
          state: { ...s, phase: { name: 'settle' }, waitingFor: undefined },
          actions: [{ type: 'pause', ms: config.requestTimeoutMs, jitter: 'none', reason: 'settle' }],
        };
      }
      const warn = event.nowMs - p.lastWarnMs >= config.moveWaitLogMs;
      const actions: MoveAction[] = [];
      if (warn) {
        actions.push({
          type: 'log',
          level: 'warn',
          fields: { kind: s.kind, waitingFor: event.pending },
          msg: `${s.kind} waits for members to confirm (a member that is down blocks it until it is back, or removed)`,
        });
      }
      actions.push({ type: 'pause', ms: config.retryMs, jitter: 'some', reason: 'confirm' });
      return {
        state: {
          ...s,
          phase: { name: 'confirm', step: 'pause', lastWarnMs: warn ? event.nowMs : p.lastWarnMs },
          waitingFor:
            event.pending.length > 0 || event.placementChanged || ahead === undefined
              ? `members to confirm the ring change: ${event.pending.join(', ') || 'placement changed meanwhile'}`
              : `${ahead.id} (${ahead.status}) to finish its move`,
        },
        actions,
      };
    }
    case 'planned':
      if (p.name !== 'plan' || p.step !== 'compute') return same;
      return save({ ...s, tasks: event.tasks, phase: { name: 'plan', step: 'save' } });
    case 'page': {
      if (p.name !== 'stream' || !p.active.includes(event.task)) return same;
      const task = taskAt(s, event.task);
      return advance(
        { ...s, waitingFor: undefined },
        event.task,
        { ...task, cursors: { ...task.cursors, [event.source]: event.next ?? true } },
        event.nowMs,
        config,
      );
    }
    case 'page-failed': {
      if (p.name !== 'stream' || !p.active.includes(event.task)) return same;
      const task = taskAt(s, event.task);
      return {
        state: {
          ...s,
          phase: { ...p, active: p.active.filter((i) => i !== event.task), retrying: [...p.retrying, event.task] },
          waitingFor: `range (${task.lo}, ${task.hi}] from ${event.source} (${event.sourceState}) to ${task.to} (${event.receiverState}): ${event.why}`,
        },
        actions: [{ type: 'retry-page', task: event.task, source: event.source, ms: config.retryMs }],
      };
    }
    case 'retry': {
      if (p.name !== 'stream' || !p.retrying.includes(event.task)) return same;
      let task = taskAt(s, event.task);
      const actions: MoveAction[] = [];
      // a source that went down: a join of a new member falls back to every other live replica
      // of the range, which together hold everything it held (placement.ts)
      if (s.kind === 'join' && !s.replacing && event.sourceDown) {
        const alternatives = event.alternatives.filter((alt) => alt !== event.source);
        if (alternatives.length > 0) {
          const added = alternatives.filter((a) => !task.from.includes(a));
          task = { ...task, from: [...task.from, ...added], cursors: { ...task.cursors, [event.source]: true } };
          actions.push({
            type: 'log',
            level: 'info',
            fields: { range: [task.lo, task.hi], source: event.source, instead: alternatives },
            msg: 'stream source is down: streaming from the other replicas',
          });
        }
      }
      const back: MoveState = {
        ...s,
        phase: { ...p, retrying: p.retrying.filter((i) => i !== event.task), active: [...p.active, event.task] },
      };
      const r = advance(back, event.task, task, event.nowMs, config);
      return { state: r.state, actions: [...actions, ...r.actions] };
    }
    case 'receiver-gone': {
      if (p.name !== 'stream' || !p.active.includes(event.task)) return same;
      const task = taskAt(s, event.task);
      const again: MoveTask[] = event.instead.map((to) => ({
        lo: task.lo,
        hi: task.hi,
        to,
        from: [...task.from],
        cursors: {},
        done: false,
      }));
      const r = advance({ ...s, tasks: [...(s.tasks ?? []), ...again] }, event.task, { ...task, done: true }, event.nowMs, config);
      const log: MoveAction = {
        type: 'log',
        level: 'info',
        fields: { range: [task.lo, task.hi], removed: task.to, instead: event.instead },
        msg: 'stream receiver left the cluster',
      };
      return { state: r.state, actions: [log, ...r.actions] };
    }
  }
}

function taskAt(s: MoveState, index: number): MoveTask {
  const task = s.tasks?.[index];
  assert(task !== undefined, `no task ${index} in the move`);
  return task;
}

/** The start of a move, or its start again after a restart. */
function begin(s: MoveState, nowMs: number, targetStatus: MemberStatus | undefined, config: MoveConfig): StepResult {
  // a join announced itself before it began (bootstrap): it saves its state, then confirms
  if (s.kind === 'join') return save({ ...s, phase: { name: 'announce', step: 'save' }, waitingFor: undefined });
  // pods removed by one scale-down all start their decommission at the same instant: a random
  // pause (up to startJitterMs) lets one announce itself before the others look
  if (targetStatus === 'normal') {
    return {
      state: { ...s, phase: { name: 'wait', sinceMs: nowMs, step: 'jitter' }, waitingFor: undefined },
      actions: [{ type: 'pause', ms: config.startJitterMs, jitter: 'spread', reason: 'jitter' }],
    };
  }
  return {
    state: { ...s, phase: { name: 'wait', sinceMs: nowMs, step: 'poll' }, waitingFor: undefined },
    actions: [{ type: 'poll-moves' }],
  };
}

/** Asks for `s` (or `what`) to be saved; the phase goes on at the `saved` of this save. */
function save(s: MoveState, what?: null): StepResult {
  const state: MoveState = { ...s, saves: s.saves + 1 };
  return { state, actions: [{ type: 'save', seq: state.saves, state: what === null ? null : state }] };
}

function confirmRound(s: MoveState, lastWarnMs: number, before: MoveAction[] = []): StepResult {
  return { state: { ...s, phase: { name: 'confirm', step: 'round', lastWarnMs } }, actions: [...before, { type: 'confirm-round' }] };
}

/** For a decommission not yet planned: another move, by a member with a smaller id, that it yields to. */
function rivalOf(s: MoveState, moving: readonly Moving[], nowMs: number, config: MoveConfig): Moving | undefined {
  if (s.kind !== 'leave' || s.tasks !== undefined || nowMs - s.startedAtMs >= config.moveWaitMs) return undefined;
  return moving.find((m) => m.id !== s.target && (m.status === 'leaving' || m.status === 'joining') && m.id < s.target);
}

/**
 * Another move this one must let finish first, within `moveWaitMs` and before it has planned:
 *   - a decommission: any other member joining or leaving (a larger id that has not planned steps
 *     back when it sees this one, `rivalOf`; one that has planned finishes, then this one goes on);
 *   - a join: another join by a smaller id (two joins that announced at once go one after the
 *     other; a join waits for nobody else, so no two moves can wait on each other).
 */
function aheadOf(s: MoveState, moving: readonly Moving[], nowMs: number, config: MoveConfig): Moving | undefined {
  if (s.tasks !== undefined || nowMs - s.startedAtMs >= config.moveWaitMs) return undefined;
  if (s.kind === 'leave') return moving.find((m) => m.id !== s.target && (m.status === 'leaving' || m.status === 'joining'));
  if (s.kind === 'join') return moving.find((m) => m.status === 'joining' && m.id < s.target);
  return undefined;
}

type Streaming = Extract<MovePhase, { name: 'stream' }>;

function toStream(s: MoveState, nowMs: number, config: MoveConfig): StepResult {
  const tasks = s.tasks ?? [];
  const left = tasks.filter((t) => !t.done).length;
  const log: MoveAction = { type: 'log', level: 'info', fields: { kind: s.kind, ranges: tasks.length, left }, msg: `${s.kind}: streaming` };
  const r = fill({ ...s, phase: { name: 'stream', active: [], retrying: [], savedAtMs: nowMs } }, nowMs, config, false);
  return { state: r.state, actions: [log, ...r.actions] };
}

/** The first source of a task not yet done; undefined when every one is (fallbacks added meanwhile included). */
function nextSource(task: MoveTask): string | undefined {
  return task.done ? undefined : task.from.find((f) => task.cursors[f] !== true);
}

/** Task `index` (active), updated: its next page, or it is done and the next tasks start. */
function advance(s: MoveState, index: number, task: MoveTask, nowMs: number, config: MoveConfig): StepResult {
  const p = s.phase as Streaming;
  const tasks = [...(s.tasks ?? [])];
  const source = nextSource(task);
  if (source !== undefined) {
    tasks[index] = task;
    const r = fill({ ...s, tasks }, nowMs, config, false);
    const page: MoveAction = { type: 'stream-page', task: index, source, after: task.cursors[source] as StreamCursor | undefined };
    return { state: r.state, actions: [page, ...r.actions] };
  }
  tasks[index] = { ...task, done: true };
  return fill({ ...s, tasks, phase: { ...p, active: p.active.filter((i) => i !== index) } }, nowMs, config, true);
}

/**
 * Starts tasks up to `concurrentRanges`; says the share done when a task finished; saves when due;
 * flips when every task is done and nothing is in flight.
 */
function fill(s: MoveState, nowMs: number, config: MoveConfig, finished: boolean): StepResult {
  const p = s.phase as Streaming;
  const tasks = [...(s.tasks ?? [])];
  const active = [...p.active];
  const actions: MoveAction[] = [];
  let changed = finished;
  for (let i = 0; i < tasks.length && active.length + p.retrying.length < config.concurrentRanges; i++) {
    const t = tasks[i] as MoveTask;
    if (t.done || active.includes(i) || p.retrying.includes(i)) continue;
    const source = nextSource(t);
    if (source === undefined) {
      // every source done (saved just before the task was marked): done
      tasks[i] = { ...t, done: true };
      changed = true;
      continue;
    }
    active.push(i);
    actions.push({ type: 'stream-page', task: i, source, after: t.cursors[source] as StreamCursor | undefined });
  }
  const done = tasks.filter((t) => t.done).length;
  if (changed && s.kind !== 'remove') actions.unshift({ type: 'progress', share: done / Math.max(1, tasks.length) });
  const state: MoveState = { ...s, tasks, phase: { ...p, active } };
  if (active.length === 0 && p.retrying.length === 0 && done === tasks.length) {
    const f = save({ ...state, phase: { name: 'flip', step: 'save' } });
    return { state: f.state, actions: [...actions, ...f.actions] };
  }
  if (nowMs - p.savedAtMs >= config.saveEveryMs) {
    const f = save({ ...state, phase: { ...p, active, savedAtMs: nowMs } });
    return { state: f.state, actions: [...actions, ...f.actions] };
  }
  return { state, actions };
}

/** Every range streamed: the target takes its new status, and everyone is told now rather than by gossip. */
function flip(s: MoveState): StepResult {
  assert(s.tasks?.every((t) => t.done) ?? false, 'a move flips only once every range is streamed');
  return {
    state: { ...s, phase: { name: 'flip', step: 'status' } },
    actions: [{ type: 'set-status', of: s.target, status: flipStatus(s.kind), broadcast: true }],
  };
}

function describe(moving: readonly Moving[]): string {
  return moving.map((m) => `${m.id} ${m.status}`).join(', ');
}

/** The phase as /admin/move names it. */
export function phaseLabel(p: MovePhase): 'confirm' | 'settle' | 'stream' | 'finish' | 'done' {
  switch (p.name) {
    case 'wait':
    case 'announce':
    case 'confirm':
    case 'back-off':
      return 'confirm';
    case 'settle':
    case 'plan':
      return 'settle';
    case 'stream':
      return 'stream';
    case 'flip':
      return 'finish';
    case 'done':
      return 'done';
  }
}

/**
 * A saved plan, checked: a state of this version, or why it is refused (a plan saved by an older
 * version of the node, or a damaged one: the node says so rather than guess).
 */
export function parseMoveState(v: unknown): { state: MoveState } | { error: string } {
  if (typeof v !== 'object' || v === null) return { error: 'the saved move is not an object' };
  const o = v as Partial<MoveState>;
  if (o.version !== MOVE_STATE_VERSION) {
    return {
      error: `the saved move has version ${JSON.stringify(o.version ?? null)}, this node reads version ${MOVE_STATE_VERSION}: start the node on an empty data directory, or finish the move with the version that began it`,
    };
  }
  const kinds: unknown[] = ['join', 'leave', 'remove'];
  const phases: unknown[] = ['wait', 'announce', 'confirm', 'back-off', 'settle', 'plan', 'stream', 'flip', 'done'];
  if (
    !kinds.includes(o.kind) ||
    typeof o.target !== 'string' ||
    typeof o.phase !== 'object' ||
    o.phase === null ||
    !phases.includes(o.phase.name)
  ) {
    return { error: 'the saved move is damaged (no kind, target or phase)' };
  }
  if (o.tasks !== undefined && !Array.isArray(o.tasks)) return { error: 'the saved move is damaged (tasks)' };
  return { state: o as MoveState };
}

/**
 * The ranges to stream, and between whom, from the placement every member now agrees on.
 * `othersNow`: the other members and their statuses, as `othersAtStart` was written.
 */
export function planTasks(s: MoveState, placement: Placement, self: string, othersNow: string): MoveTask[] {
  const tasks: MoveTask[] = [];
  // a join that nothing moved around: the displaced replica holds all the range's data
  const alone = joinsAlone(s, placement, self, othersNow);
  for (const { lo, hi, replicas } of placement.ranges()) {
    if (s.kind === 'join') {
      if (!replicas.pending.includes(self)) continue;
      const others = [...replicas.stable, ...replicas.displaced].filter((id) => id !== self);
      const from = !alone || replicas.displaced.length === 0 ? others : replicas.displaced;
      if (from.length > 0) tasks.push({ lo, hi, to: self, from, cursors: {}, done: false });
    } else {
      if (!replicas.displaced.includes(s.target)) continue;
      // A range that loses a replica and gains none (the ring shrinks below N) must also reach its
      // remaining replicas: a write acknowledged by the departing one and one other may have
      // missed the rest, and with nobody new to stream to, it would be left on one replica.
      const shrinks = replicas.write.length < replicas.stable.length + replicas.displaced.length;
      const receivers = shrinks ? replicas.write : replicas.pending;
      for (const to of receivers) {
        const from = s.kind === 'leave' ? [self] : replicas.stable.filter((id) => id !== s.target && id !== to);
        if (from.length > 0) tasks.push({ lo, hi, to, from, cursors: {}, done: false });
      }
    }
  }
  return tasks;
}

/** Whether a join's plan streams from the displaced replicas alone (see `othersAtStart`). */
export function joinsAlone(s: MoveState, placement: Placement, self: string, othersNow: string): boolean {
  return s.kind === 'join' && !s.replacing && s.othersAtStart === othersNow && [...placement.moving.keys()].every((id) => id === self);
}
