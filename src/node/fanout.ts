// Send one call to several replicas and stop waiting as soon as the quorum rule decides: after
// `need` successes, or once too many have failed, or at the deadline. Calls still running go on in
// the background (their results land in `settled`); nobody waits on them past the deadline.

import type { Clock } from '../core/clock';
import { type Outcome, writeOutcome } from '../core/quorum';
import { TransportError, type TransportFailure } from '../net/transport';

/**
 * Why a replica did not count: a transport failure (net/transport.ts), `down` (the failure detector
 * had convicted it: not asked), `error` (the call threw something else), `no_replica` (the ring has
 * fewer members than the replicas required). The metric label; `reason` says it for a person.
 */
export type ReplicaFailureKind = TransportFailure | 'down' | 'error' | 'no_replica';

export interface ReplicaFailure {
  replica: string;
  kind: ReplicaFailureKind;
  /** `<kind>: <details>`, as a 503 reports it. */
  reason: string;
}

export interface Gathered<T> {
  outcome: Exclude<Outcome, 'pending'>;
  /** Successful replies in arrival order. */
  replies: Array<{ replica: string; value: T }>;
  /** Replicas that failed or had not answered when the outcome was decided (as "timeout"). */
  failures: ReplicaFailure[];
  /** Resolves when every call has finished or hit the deadline; all replies and failures by then. */
  settled: Promise<{ replies: Array<{ replica: string; value: T }>; failures: ReplicaFailure[] }>;
}

/** A failed call to `replica` as a ReplicaFailure. */
export function replicaFailure(replica: string, err: unknown): ReplicaFailure {
  if (err instanceof TransportError) return { replica, kind: err.kind, reason: `${err.kind}: ${err.message}` };
  return { replica, kind: 'error', reason: `error: ${err instanceof Error ? err.message : String(err)}` };
}

export interface GatherOptions {
  /**
   * Ask only this many replicas at first (all when omitted): a read needs R replies, so it asks R
   * and keeps the rest in reserve. A reserve replica is asked when one asked fails, and once (a
   * speculative retry, Cassandra's speculative_retry) when `speculateAfterMs` passes undecided.
   */
  initial?: number;
  speculateAfterMs?: number;
}

/**
 * Calls the replicas (in the order given; see `options.initial`); decides on the replies of the
 * `counted` ones only (all of them when omitted): a write also goes to replicas that are still
 * being streamed their range, whose acks must not count toward W (core/placement.ts).
 */
export function gather<T>(
  replicas: readonly string[],
  need: number,
  call: (replica: string) => Promise<T>,
  clock: Clock,
  timeoutMs: number,
  counted?: ReadonlySet<string>,
  options: GatherOptions = {},
): Promise<Gathered<T>> {
  const counts = (r: string) => counted === undefined || counted.has(r);
  let countedTotal = 0;
  for (const r of replicas) if (counts(r)) countedTotal++;
  if (countedTotal < need || replicas.length === 0) {
    // Decided before anything is sent: failed if too few replicas, trivially ok if none is needed.
    const empty = { replies: [], failures: [] };
    return Promise.resolve({ outcome: need <= 0 ? 'ok' : 'failed', ...empty, settled: Promise.resolve(empty) });
  }
  return new Promise((resolveOutcome) => {
    const replies: Array<{ replica: string; value: T }> = [];
    const failures: ReplicaFailure[] = [];
    const done = new Set<string>();
    let acked = 0;
    let failed = 0;
    let started = 0;
    let decided = false;
    let resolveSettled: (v: { replies: typeof replies; failures: ReplicaFailure[] }) => void = () => {};
    const settled = new Promise<{ replies: typeof replies; failures: ReplicaFailure[] }>((r) => {
      resolveSettled = r;
    });
    let speculation: ReturnType<Clock['setTimer']> | undefined;

    const decide = (outcome: Exclude<Outcome, 'pending'>, extraFailures: ReplicaFailure[] = []) => {
      decided = true;
      if (speculation !== undefined) clock.cancel(speculation);
      resolveOutcome({ outcome, replies: [...replies], failures: [...failures, ...extraFailures], settled });
    };

    // armed once the calls are out (below): a call settles in a later microtask at the earliest,
    // so nothing can need the timer before it exists, and the frames leave a timer's set-up sooner
    let timer: ReturnType<Clock['setTimer']> | undefined;
    const expire = () => {
      const late: ReplicaFailure[] = [];
      for (let i = 0; i < started; i++) {
        const r = replicas[i] as string;
        if (!done.has(r)) late.push({ replica: r, kind: 'timeout', reason: `timeout: no reply within ${timeoutMs} ms` });
      }
      if (!decided) decide(writeOutcome(acked, failed, countedTotal, need) === 'ok' ? 'ok' : 'failed', late);
      failures.push(...late);
      for (const l of late) done.add(l.replica);
      resolveSettled({ replies, failures });
    };

    const check = () => {
      if (!decided) {
        const outcome = writeOutcome(acked, failed, countedTotal, need);
        if (outcome !== 'pending') decide(outcome);
      }
      // settled: every call asked has finished, and no reserve replica can still be asked
      if (done.size === started && (decided || started === replicas.length)) {
        if (timer !== undefined) clock.cancel(timer);
        resolveSettled({ replies, failures });
      }
    };

    const ask = (replica: string) => {
      started++;
      call(replica).then(
        (value) => {
          if (done.has(replica)) return;
          done.add(replica);
          replies.push({ replica, value });
          if (counts(replica)) acked++;
          check();
        },
        (err: unknown) => {
          if (done.has(replica)) return;
          done.add(replica);
          failures.push(replicaFailure(replica, err));
          if (counts(replica)) failed++;
          // a replica in reserve takes the failed one's place
          if (!decided && started < replicas.length) ask(replicas[started] as string);
          check();
        },
      );
    };

    const first = Math.min(replicas.length, Math.max(options.initial ?? replicas.length, need, 1));
    for (let i = 0; i < first; i++) ask(replicas[i] as string);
    timer = clock.setTimer(timeoutMs, expire);
    if (first < replicas.length && options.speculateAfterMs !== undefined && !decided) {
      speculation = clock.setTimer(options.speculateAfterMs, () => {
        speculation = undefined;
        if (!decided && started < replicas.length) ask(replicas[started] as string);
      });
    }
  });
}
