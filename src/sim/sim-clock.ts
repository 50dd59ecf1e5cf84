// One node's view of virtual time: skewed by a fixed offset (its wall clock is wrong), frozen while
// the node is paused (a SIGSTOPped process runs no timers: they fire late, on resume), and wiped
// when the node crashes (its timers die with its memory).

import type { Clock, TimerId } from '../core/clock';
import type { Scheduler, SimEvent } from './scheduler';

export class SimClock implements Clock {
  private readonly timers = new Map<TimerId, SimEvent>();
  private nextId = 1;
  private paused = false;
  /** Timers that came due while paused, run on resume in due order. */
  private held: Array<{ id: TimerId; fn: () => void }> = [];

  constructor(
    private readonly scheduler: Scheduler,
    /** How far this node's wall clock is ahead (+) or behind (-) true time, in ms. */
    public skewMs: number,
  ) {}

  /** Whole milliseconds, like Date.now(). */
  nowMs(): number {
    return Math.floor(this.scheduler.now + this.skewMs);
  }

  setTimer(afterMs: number, fn: () => void): TimerId {
    const id = this.nextId++;
    const e = this.scheduler.after(afterMs, () => {
      this.timers.delete(id);
      if (this.paused) this.held.push({ id, fn });
      else fn();
    });
    this.timers.set(id, e);
    return id;
  }

  cancel(id: TimerId): void {
    const e = this.timers.get(id);
    if (e) e.cancelled = true;
    this.timers.delete(id);
    this.held = this.held.filter((h) => h.id !== id);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    while (this.held.length > 0) (this.held.shift() as { fn: () => void }).fn();
  }

  /** The node crashed: none of its timers may fire again. */
  crash(): void {
    for (const e of this.timers.values()) e.cancelled = true;
    this.timers.clear();
    this.held = [];
    this.paused = false;
  }
}
