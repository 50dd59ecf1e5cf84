// Deadlines of calls in flight, kept by one timer for the whole transport: a binary heap ordered by
// due time, and a single setTimeout armed for the earliest. A call that is answered is not removed
// from the heap (its entry is skipped when it comes due), so adding is O(log n) and answering O(1);
// the timer is re-armed only when a new deadline is earlier than every other.

export interface DeadlineEntry {
  /** performance.now() at which it is due. */
  at: number;
  /** Called when due, unless cancelled before; must not throw. Dropped on cancel, so nothing it holds is kept. */
  fire: (() => void) | undefined;
}

/** The call was answered: its entry will be skipped, and what its callback held is released now. */
export function cancelDeadline(e: DeadlineEntry): void {
  e.fire = undefined;
}

export class Deadlines {
  private readonly heap: DeadlineEntry[] = [];
  private timer: NodeJS.Timeout | undefined;
  private armedAt = Number.POSITIVE_INFINITY;

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Entries not yet fired or dropped (answered ones included until they come due). */
  get size(): number {
    return this.heap.length;
  }

  add(afterMs: number, fire: () => void): DeadlineEntry {
    const entry: DeadlineEntry = { at: this.now() + afterMs, fire };
    const h = this.heap;
    h.push(entry);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((h[parent] as DeadlineEntry).at <= entry.at) break;
      h[i] = h[parent] as DeadlineEntry;
      i = parent;
    }
    h[i] = entry;
    if (entry.at < this.armedAt) this.arm(entry.at);
    return entry;
  }

  private arm(at: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.armedAt = at;
    // setTimeout rounds down to whole ms and may fire a little early: +1 so a due entry is due
    this.timer = setTimeout(() => this.expire(), Math.max(0, Math.ceil(at - this.now())) + 1);
    this.timer.unref();
  }

  private pop(): DeadlineEntry {
    const h = this.heap;
    const top = h[0] as DeadlineEntry;
    const last = h.pop() as DeadlineEntry;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && (h[r] as DeadlineEntry).at < (h[l] as DeadlineEntry).at ? r : l;
        if ((h[c] as DeadlineEntry).at >= last.at) break;
        h[i] = h[c] as DeadlineEntry;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }

  private expire(): void {
    this.timer = undefined;
    this.armedAt = Number.POSITIVE_INFINITY;
    const now = this.now();
    while (this.heap.length > 0 && (this.heap[0] as DeadlineEntry).at <= now) {
      const e = this.pop();
      const fire = e.fire;
      e.fire = undefined;
      fire?.();
    }
    // answered entries at the top need no timer of their own
    while (this.heap.length > 0 && (this.heap[0] as DeadlineEntry).fire === undefined) this.pop();
    if (this.heap.length > 0) this.arm((this.heap[0] as DeadlineEntry).at);
  }

  /** Drops every entry without firing it (the transport is closing). */
  clear(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAt = Number.POSITIVE_INFINITY;
    for (const e of this.heap) e.fire = undefined;
    this.heap.length = 0;
  }
}
