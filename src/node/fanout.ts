// Send one call to several replicas and stop waiting as soon as the quorum rule decides: after
// `need` successes, or once too many have failed, or at the deadline. Calls still running go on in
// the background (their results land in `settled`); nobody waits on them past the deadline.

import type { Clock } from '../core/clock';
import { type Outcome, writeOutcome } from '../core/quorum';
import { TransportError } from '../net/transport';

export interface ReplicaFailure {
  replica: string;
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

export function describeFailure(err: unknown): string {
  if (err instanceof TransportError) return `${err.kind}: ${err.message}`;
  if (err instanceof Error) return `error: ${err.message}`;
  return `error: ${String(err)}`;
}

/**
 * Calls every replica; decides on the replies of the `counted` ones only (all of them when omitted):
 * a write also goes to replicas that are still being streamed their range, whose acks must not
 * count toward W (core/placement.ts).
 */
export function gather<T>(
  replicas: readonly string[],
  need: number,
  call: (replica: string) => Promise<T>,
  clock: Clock,
  timeoutMs: number,
  counted?: ReadonlySet<string>,
): Promise<Gathered<T>> {
  const counts = (r: string) => counted === undefined || counted.has(r);
  const countedTotal = replicas.filter(counts).length;
  if (countedTotal < need || replicas.length === 0) {
    // Decided before anything is sent: failed if too few replicas, trivially ok if none is needed.
    const empty = { replies: [], failures: [] };
    return Promise.resolve({ outcome: need <= 0 ? 'ok' : 'failed', ...empty, settled: Promise.resolve(empty) });
  }
  return new Promise((resolveOutcome) => {
    const replies: Array<{ replica: string; value: T }> = [];
    const failures: ReplicaFailure[] = [];
    const done = new Set<string>();
    const tally = () =>
      writeOutcome(replies.filter((r) => counts(r.replica)).length, failures.filter((f) => counts(f.replica)).length, countedTotal, need);
    let decided = false;
    let resolveSettled: (v: { replies: typeof replies; failures: ReplicaFailure[] }) => void = () => {};
    const settled = new Promise<{ replies: typeof replies; failures: ReplicaFailure[] }>((r) => {
      resolveSettled = r;
    });

    const decide = (outcome: Exclude<Outcome, 'pending'>, extraFailures: ReplicaFailure[] = []) => {
      decided = true;
      resolveOutcome({ outcome, replies: [...replies], failures: [...failures, ...extraFailures], settled });
    };

    const timer = clock.setTimer(timeoutMs, () => {
      const late = replicas.filter((r) => !done.has(r)).map((replica) => ({ replica, reason: `timeout: no reply within ${timeoutMs} ms` }));
      if (!decided) decide(tally() === 'ok' ? 'ok' : 'failed', late);
      failures.push(...late);
      for (const l of late) done.add(l.replica);
      resolveSettled({ replies, failures });
    });

    const check = () => {
      if (done.size === replicas.length) {
        clock.cancel(timer);
        resolveSettled({ replies, failures });
      }
      if (decided) return;
      const outcome = tally();
      if (outcome !== 'pending') decide(outcome);
    };

    for (const replica of replicas) {
      call(replica).then(
        (value) => {
          if (done.has(replica)) return;
          done.add(replica);
          replies.push({ replica, value });
          check();
        },
        (err: unknown) => {
          if (done.has(replica)) return;
          done.add(replica);
          failures.push({ replica, reason: describeFailure(err) });
          check();
        },
      );
    }
  });
}
