// Virtual time for the simulator: one queue of events ordered by (time, sequence number), so two
// events due at the same millisecond always run in the order they were scheduled. Between two
// events the scheduler lets every pending promise callback run (a macrotask boundary), so the
// code under test sees each event's consequences before the next event, as it would for real.

import assert from '../core/assert';

export interface SimEvent {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** A binary min-heap on (at, seq). */
class EventHeap {
  private readonly items: SimEvent[] = [];

  get size(): number {
    return this.items.length;
  }

  push(e: SimEvent): void {
    const a = this.items;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(a[i] as SimEvent, a[p] as SimEvent)) break;
      [a[i], a[p]] = [a[p] as SimEvent, a[i] as SimEvent];
      i = p;
    }
  }

  peek(): SimEvent | undefined {
    return this.items[0];
  }

  pop(): SimEvent | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && less(a[l] as SimEvent, a[m] as SimEvent)) m = l;
        if (r < a.length && less(a[r] as SimEvent, a[m] as SimEvent)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m] as SimEvent, a[i] as SimEvent];
        i = m;
      }
    }
    return top;
  }
}

function less(a: SimEvent, b: SimEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** Lets every promise callback queued so far (and those they queue) run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class Scheduler {
  private readonly heap = new EventHeap();
  private seq = 0;
  private time: number;
  /** Events run so far (a measure of work for the summary). */
  eventsRun = 0;

  constructor(startMs: number) {
    this.time = startMs;
  }

  get now(): number {
    return this.time;
  }

  /** Schedules fn at absolute virtual time `at` (not before now). */
  at(at: number, fn: () => void): SimEvent {
    const e: SimEvent = { at: Math.max(at, this.time), seq: this.seq++, fn, cancelled: false };
    this.heap.push(e);
    return e;
  }

  after(ms: number, fn: () => void): SimEvent {
    return this.at(this.time + Math.max(0, ms), fn);
  }

  /** Runs events until virtual time `until` (inclusive) or until none is left; time ends at `until`. */
  async runUntil(until: number): Promise<void> {
    await settle();
    for (;;) {
      const next = this.heap.peek();
      if (!next || next.at > until) break;
      this.heap.pop();
      if (next.cancelled) continue;
      assert(next.at >= this.time, 'virtual time never goes backwards');
      this.time = next.at;
      this.eventsRun++;
      next.fn();
      await settle();
    }
    this.time = Math.max(this.time, until);
  }

  /** Runs until `done()` is true (checked after each event) or virtual time `limit`; returns done(). */
  async runWhile(notDone: () => boolean, limit: number): Promise<boolean> {
    await settle();
    while (notDone()) {
      const next = this.heap.peek();
      if (!next || next.at > limit) return !notDone();
      this.heap.pop();
      if (next.cancelled) continue;
      this.time = next.at;
      this.eventsRun++;
      next.fn();
      await settle();
    }
    return true;
  }

  pending(): number {
    return this.heap.size;
  }
}
