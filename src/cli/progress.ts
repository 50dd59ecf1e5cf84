// Progress of the long operations the CLI follows (repair, decommission, removenode, a join seen
// from `quorumkv status`): a bar with counts, rate and time left on a terminal, plain lines
// elsewhere (a log, a pipe, kubectl exec without -t). Rendering is pure; the printer below is the
// only part that writes.

/** One observation: when (ms, the CLI's clock), the share done (0..1) and a running count (records, keys). */
export interface Sample {
  atMs: number;
  fraction: number;
  count: number;
}

/**
 * Rate and time left over the last `windowMs` of samples (the oldest one kept as the window's
 * start), so that a pass that speeds up or slows down is estimated from what it does now.
 */
export class RateWindow {
  private samples: Sample[] = [];

  constructor(private readonly windowMs = 10_000) {}

  add(s: Sample): void {
    this.samples.push(s);
    while (this.samples.length > 2 && s.atMs - (this.samples[1] as Sample).atMs >= this.windowMs) this.samples.shift();
  }

  /** Count per second over the window; undefined until two samples lie apart in time. */
  perSecond(): number | undefined {
    const span = this.span();
    return span && (span.last.count - span.first.count) / (span.ms / 1000);
  }

  /** Time left at the share-done rate of the window; undefined while nothing moves. */
  leftMs(): number | undefined {
    const span = this.span();
    if (!span) return undefined;
    const moved = span.last.fraction - span.first.fraction;
    if (moved <= 0) return undefined;
    return ((1 - span.last.fraction) * span.ms) / moved;
  }

  private span(): { first: Sample; last: Sample; ms: number } | undefined {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (!first || !last || last.atMs <= first.atMs) return undefined;
    return { first, last, ms: last.atMs - first.atMs };
  }
}

export interface ProgressView {
  /** What runs: `repair`, `decommission: stream`. */
  label: string;
  done: number;
  total: number;
  /** What `done` and `total` count: `ranges`. */
  unit: string;
  /** Further counts, already worded: `1,234 keys compared`. */
  counts: string[];
  /** The rate, when known, and what it counts: 2300, `keys`. */
  rate?: { perSecond: number; of: string };
  leftMs?: number;
  /** Finished (no time left shown). */
  finished?: boolean;
}

export const BAR_WIDTH = 24;

/** `[██████░░░░]` for a share done; never full before the end, never empty once begun. */
export function bar(fraction: number, width = BAR_WIDTH): string {
  const f = Math.max(0, Math.min(1, fraction));
  let filled = Math.round(f * width);
  if (f < 1 && filled === width) filled = width - 1;
  if (f > 0 && filled === 0) filled = 1;
  return `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}]`;
}

/** 12,345 */
export function count(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** `42 s`, `3 min 05 s`, `2 h 04 min`. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

function fractionOf(v: ProgressView): number {
  if (v.finished) return 1;
  return v.total > 0 ? Math.min(1, v.done / v.total) : 0;
}

/**
 * One line of progress. On a terminal: `repair [████░░░░]  45%  ranges 87/192  1,234 keys
 * compared  2,300 keys/s  about 42 s left`; elsewhere the same facts without the bar, comma-separated.
 */
export function renderProgress(v: ProgressView, tty: boolean): string {
  const f = fractionOf(v);
  const pct = `${Math.floor(f * 100)}%`;
  const parts = [`${v.unit} ${count(v.done)}/${count(v.total)}`, ...v.counts];
  if (v.rate) parts.push(`${count(v.rate.perSecond)} ${v.rate.of}/s`);
  if (!v.finished && v.leftMs !== undefined) parts.push(`about ${duration(v.leftMs)} left`);
  return tty ? `${v.label} ${bar(f)} ${pct.padStart(4)}  ${parts.join('  ')}` : `${v.label}: ${pct}, ${parts.join(', ')}`;
}

/** Where progress goes: redrawn in place on a terminal, plain lines (only when something changed) elsewhere. */
export class ProgressPrinter {
  private drawn = false;
  private lastPlain = '';
  private lastPlainAtMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly out: { write(s: string): unknown; isTTY?: boolean },
    /** Least time between two plain lines that differ only in their figures. */
    private readonly plainEveryMs = 2000,
  ) {}

  get tty(): boolean {
    return this.out.isTTY === true;
  }

  /** Shows `v` at `nowMs`; `changedKey` names what must change for a plain line to be worth printing at once. */
  update(v: ProgressView, nowMs: number, changedKey: string): void {
    if (this.tty) {
      this.out.write(`\r\x1b[2K${renderProgress(v, true)}`);
      this.drawn = true;
      return;
    }
    // a change is shown at most every plainEveryMs; no change, every five times that (still alive)
    const since = nowMs - this.lastPlainAtMs;
    if (since < (changedKey === this.lastPlain ? this.plainEveryMs * 5 : this.plainEveryMs)) return;
    this.out.write(`${renderProgress(v, false)}\n`);
    this.lastPlain = changedKey;
    this.lastPlainAtMs = nowMs;
  }

  /** A line of its own (a phase change, a warning), below the bar. */
  line(text: string): void {
    this.endBar();
    this.out.write(`${text}\n`);
  }

  /** The last state, always shown, and the end of the bar. */
  finish(v: ProgressView): void {
    if (this.tty) this.out.write(`\r\x1b[2K${renderProgress(v, true)}\n`);
    else this.out.write(`${renderProgress(v, false)}\n`);
    this.drawn = false;
  }

  private endBar(): void {
    if (this.drawn) this.out.write('\n');
    this.drawn = false;
  }
}
