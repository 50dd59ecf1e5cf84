// The node's Prometheus metrics, on prom-client: one registry per node holding our families and
// (in a serving node) prom-client's default process and Node.js metrics (CPU, memory, file
// descriptors, event-loop lag, GC). Modules register their families here by name, help and label
// names, and count through bound children on hot paths (the label set hashed once per request,
// not sorted and joined per increment).
//
// Names follow Prometheus's conventions: counters end in `_total`, base units (seconds, bytes)
// are in the name. A family is registered once per registry (a second registration is a bug).

import * as prom from 'prom-client';

type Labels = Record<string, string>;

/** A series of a counter, bound to its labels once. */
export interface CounterChild {
  inc(by?: number): void;
}

/** A series of a histogram, bound to its labels once. */
export interface HistogramChild {
  observe(value: number): void;
}

export class Counter {
  /** The bound series, each counting in a plain number until the family is next read. */
  private readonly bound: Array<{ labels: Labels | undefined; n: number }> = [];

  constructor(readonly family: prom.Counter<string>) {}

  inc(labels?: Labels, by = 1): void {
    if (labels === undefined) this.family.inc(by);
    else this.family.inc(labels, by);
  }

  /**
   * The series of these labels, bound once (and shown as 0 until counted): for hot paths. It adds
   * to a number of its own, which reaches prom-client when the family is read (collect, below):
   * prom-client's own bound series hashes its labels on every increment, which on a path that
   * counts several frames per request cost more than the rest of the counting.
   */
  child(labels?: Labels): CounterChild {
    if (labels === undefined) this.family.inc(0);
    else this.family.inc(labels, 0);
    const series = { labels, n: 0 };
    this.bound.push(series);
    return {
      inc: (by = 1) => {
        series.n += by;
      },
    };
  }

  /** Moves what the bound series counted into the family: prom-client calls it on every read. */
  collect(): void {
    for (const s of this.bound) {
      if (s.n === 0) continue;
      const by = s.n;
      s.n = 0;
      if (s.labels === undefined) this.family.inc(by);
      else this.family.inc(s.labels, by);
    }
  }
}

export class Histogram {
  constructor(readonly family: prom.Histogram<string>) {}
  observe(value: number, labels?: Labels): void {
    if (labels === undefined) this.family.observe(value);
    else this.family.observe(labels, value);
  }
  /** The series of these labels, bound once: for hot paths. */
  child(labels?: Labels): HistogramChild {
    return labels === undefined ? { observe: (v) => this.family.observe(v) } : this.family.labels(labels);
  }
  /**
   * Cumulative bucket counts (upper bounds ascending, +Inf last) summed over the series whose
   * labels match `where`: what the dashboard's per-second samples are cut from.
   */
  async buckets(where: (labels: Labels) => boolean = () => true): Promise<{ bounds: number[]; counts: number[] }> {
    const got = await this.family.get();
    const byBound = new Map<number, number>();
    for (const v of got.values) {
      if (!v.metricName?.endsWith('_bucket')) continue;
      const { le, ...labels } = v.labels as Labels & { le: string | number };
      if (!where(labels)) continue;
      const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le);
      byBound.set(bound, (byBound.get(bound) ?? 0) + v.value);
    }
    const bounds = [...byBound.keys()].sort((a, b) => a - b);
    return { bounds, counts: bounds.map((b) => byBound.get(b) as number) };
  }
}

export interface MetricsOptions {
  /**
   * prom-client's default metrics (process_*, nodejs_*): a serving node wants them; a test that
   * builds many registries in one process does not (each would add its own event-loop monitor).
   */
  processMetrics?: boolean;
}

/** prom-client default metrics that break Prometheus's naming rules: not exported. */
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export class Metrics {
  readonly registry = new prom.Registry();

  constructor(opts: MetricsOptions = {}) {
    if (opts.processMetrics) {
      prom.collectDefaultMetrics({ register: this.registry });
      // Gauges named like counters, which promtool's linter refuses; the same figures are in
      // nodejs_active_handles, _requests and _resources by type (sum() them for the total).
      for (const name of MISNAMED_DEFAULTS) this.registry.removeSingleMetric(name);
    }
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    let counter: Counter | undefined;
    const family = new prom.Counter({
      name,
      help,
      labelNames,
      registers: [this.checked(name)],
      collect: () => counter?.collect(),
    });
    counter = new Counter(family);
    return counter;
  }

  /** A counter kept elsewhere (a running total that only grows), read when scraped. */
  counterFrom(name: string, help: string, read: () => number): void {
    new prom.Counter({
      name,
      help,
      registers: [this.checked(name)],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  }

  /** A gauge read when scraped: one number, or one per label set. */
  gauge(name: string, help: string, read: () => number | Array<[Labels, number]>, labelNames: readonly string[] = []): void {
    new prom.Gauge({
      name,
      help,
      labelNames,
      registers: [this.checked(name)],
      collect() {
        const v = read();
        if (typeof v === 'number') {
          this.set(v);
          return;
        }
        this.reset();
        for (const [labels, value] of v) this.set(labels, value);
      },
    });
  }

  histogram(name: string, help: string, buckets: readonly number[], labelNames: readonly string[] = []): Histogram {
    return new Histogram(new prom.Histogram({ name, help, buckets: [...buckets], labelNames, registers: [this.checked(name)] }));
  }

  /** The text exposition format, as /metrics serves it. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private checked(name: string): prom.Registry {
    if (this.registry.getSingleMetric(name) !== undefined) throw new Error(`metric ${name} registered twice`);
    return this.registry;
  }
}
