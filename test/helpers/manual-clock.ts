// A clock that moves only when the test says so. Timers fire in order of due time, then of
// creation.

import type { Clock, TimerId } from '../../src/core/clock';

export class ManualClock implements Clock {
  private now: number;
  private nextId = 1;
  private readonly timers = new Map<TimerId, { at: number; fn: () => void }>();

  constructor(startMs = 1_700_000_000_000) {
    this.now = startMs;
  }

  nowMs(): number {
    return this.now;
  }

  setTimer(afterMs: number, fn: () => void): TimerId {
    const id = this.nextId++;
    this.timers.set(id, { at: this.now + Math.max(0, afterMs), fn });
    return id;
  }

  cancel(id: TimerId): void {
    this.timers.delete(id);
  }

  pending(): number {
    return this.timers.size;
  }

  /** Moves time forward by `ms`, firing due timers (and letting promise callbacks run between them). */
  async advance(ms: number): Promise<void> {
    const target = this.now + ms;
    for (;;) {
      await flushMicrotasks();
      const due = [...this.timers.entries()].filter(([, t]) => t.at <= target).sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
    }
    this.now = target;
    await flushMicrotasks();
  }
}

export async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}
