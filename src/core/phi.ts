// Phi accrual failure detection (Hayashibara et al. 2004), as Cassandra does it.
//
// Instead of a yes/no timeout, phi says how unlikely it is that the next heartbeat is merely late:
// phi = -log10(P(a heartbeat interval is at least this long)). With the inter-arrival times taken
// as exponential with the observed mean, P = e^(-t/mean) and phi = t / (mean * ln 10). phi = 8
// means a 1e-8 chance that the member is alive and just slow. Pure: times are arguments.

/** Cassandra's factor: 1 / ln(10). */
const PHI_FACTOR = 1 / Math.LN10;

export interface PhiOptions {
  /** Intervals remembered per member (Cassandra: 1000). */
  windowSize: number;
  /** Mean assumed before any interval was seen (Cassandra: 2 x the gossip interval). */
  initialIntervalMs: number;
  /** Longer intervals are not learned (a pause or restart must not teach "slow is normal"). */
  maxIntervalMs: number;
}

export class ArrivalWindow {
  private readonly intervals: number[] = [];
  private next = 0;
  private sum = 0;
  private last: number | undefined;

  constructor(private readonly opts: PhiOptions) {}

  /** A fresh heartbeat from the member arrived at `nowMs`. */
  heartbeat(nowMs: number): void {
    if (this.last !== undefined) {
      const interval = nowMs - this.last;
      if (interval > 0 && interval <= this.opts.maxIntervalMs) this.add(interval);
    }
    this.last = nowMs;
  }

  private add(interval: number): void {
    if (this.intervals.length < this.opts.windowSize) {
      this.intervals.push(interval);
    } else {
      this.sum -= this.intervals[this.next] as number;
      this.intervals[this.next] = interval;
      this.next = (this.next + 1) % this.opts.windowSize;
    }
    this.sum += interval;
  }

  meanMs(): number {
    return this.intervals.length === 0 ? this.opts.initialIntervalMs : this.sum / this.intervals.length;
  }

  lastArrivalMs(): number | undefined {
    return this.last;
  }

  /** phi at `nowMs`; 0 before the first heartbeat. */
  phi(nowMs: number): number {
    if (this.last === undefined) return 0;
    const since = Math.max(0, nowMs - this.last);
    return (PHI_FACTOR * since) / this.meanMs();
  }
}

export type Liveness = 'alive' | 'suspect' | 'down';

/** alive below half the threshold, suspect from there, down (convicted) at the threshold. */
export function livenessOf(phi: number, convictThreshold: number): Liveness {
  if (phi >= convictThreshold) return 'down';
  if (phi >= convictThreshold / 2) return 'suspect';
  return 'alive';
}
