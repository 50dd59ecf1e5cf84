// A small Prometheus registry: counters, gauges read on scrape, and histograms, rendered in the
// text exposition format (0.0.4). Pure bookkeeping: the node counts, the API renders /metrics.

type Labels = Record<string, string>;

function labelKey(labels: Labels | undefined): string {
  if (!labels) return '';
  const keys = Object.keys(labels).sort();
  return keys.map((k) => `${k}="${String(labels[k]).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',');
}

function braces(inner: string): string {
  return inner === '' ? '' : `{${inner}}`;
}

export class Counter {
  private readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels?: Labels, by = 1): void {
    const k = labelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels?: Labels): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
  /** The series of these labels, bound once: for hot paths (no label sorting per increment). */
  child(labels?: Labels): { inc(by?: number): void } {
    const k = labelKey(labels);
    if (!this.values.has(k)) this.values.set(k, 0);
    return { inc: (by = 1) => this.values.set(k, (this.values.get(k) as number) + by) };
  }
  render(): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const [k, v] of this.values) out.push(`${this.name}${braces(k)} ${v}`);
    return out;
  }
}

export class Gauge {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => number | Array<[Labels, number]>,
  ) {}
  render(): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    const v = this.read();
    if (typeof v === 'number') out.push(`${this.name} ${v}`);
    else for (const [labels, value] of v) out.push(`${this.name}${braces(labelKey(labels))} ${value}`);
    return out;
  }
}

export class Histogram {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[],
  ) {}
  observe(value: number, labels?: Labels): void {
    this.child(labels).observe(value);
  }
  /** The series of these labels, bound once: for hot paths (no label sorting per observation). */
  child(labels?: Labels): { observe(value: number): void } {
    const k = labelKey(labels);
    let s = this.series.get(k);
    if (!s) {
      s = { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(k, s);
    }
    const series = s;
    const buckets = this.buckets;
    return {
      observe(value: number) {
        for (let i = 0; i < buckets.length; i++) if (value <= (buckets[i] as number)) series.counts[i] = (series.counts[i] as number) + 1;
        series.sum += value;
        series.count += 1;
      },
    };
  }
  render(): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [k, s] of this.series) {
      const sep = k === '' ? '' : ',';
      this.buckets.forEach((b, i) => {
        out.push(`${this.name}_bucket{${k}${sep}le="${b}"} ${s.counts[i]}`);
      });
      out.push(`${this.name}_bucket{${k}${sep}le="+Inf"} ${s.count}`);
      out.push(`${this.name}_sum${braces(k)} ${s.sum}`);
      out.push(`${this.name}_count${braces(k)} ${s.count}`);
    }
    return out;
  }
}

export class Metrics {
  private readonly all: Array<Counter | Gauge | Histogram> = [];

  counter(name: string, help: string): Counter {
    return this.add(new Counter(name, help));
  }
  gauge(name: string, help: string, read: () => number | Array<[Labels, number]>): Gauge {
    return this.add(new Gauge(name, help, read));
  }
  histogram(name: string, help: string, buckets: readonly number[]): Histogram {
    return this.add(new Histogram(name, help, buckets));
  }
  render(): string {
    return `${this.all.flatMap((m) => m.render()).join('\n')}\n`;
  }
  private add<T extends Counter | Gauge | Histogram>(m: T): T {
    if (this.all.some((x) => x.name === m.name)) throw new Error(`metric ${m.name} registered twice`);
    this.all.push(m);
    return m;
  }
}
