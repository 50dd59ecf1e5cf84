// Recent latencies and their 99th percentile: when a replica is slower than this, a read asks
// another one (Cassandra's speculative_retry = 99p). A window of the last samples, the percentile
// recomputed every so often rather than per sample. Pure.

export class LatencyWindow {
  private readonly samples: Float64Array;
  private next = 0;
  private filled = 0;
  private sinceUpdate = 0;
  private p99Ms: number | undefined;

  constructor(
    size = 1024,
    /** Samples needed before the percentile is trusted. */
    private readonly minSamples = 100,
    /** Samples between two recomputations. */
    private readonly updateEvery = 128,
  ) {
    this.samples = new Float64Array(size);
  }

  add(ms: number): void {
    this.samples[this.next] = ms;
    this.next = (this.next + 1) % this.samples.length;
    if (this.filled < this.samples.length) this.filled++;
    if (++this.sinceUpdate >= this.updateEvery || (this.p99Ms === undefined && this.filled >= this.minSamples)) this.update();
  }

  /** The 99th percentile of the window, or undefined before `minSamples` samples. */
  p99(): number | undefined {
    return this.p99Ms;
  }

  private update(): void {
    this.sinceUpdate = 0;
    if (this.filled < this.minSamples) return;
    const sorted = this.samples.slice(0, this.filled).sort();
    this.p99Ms = sorted[Math.min(this.filled - 1, Math.floor(this.filled * 0.99))] as number;
  }
}
