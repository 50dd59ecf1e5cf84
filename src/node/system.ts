// The real clock and randomness that production wires into the node. The only place outside
// tests where protocol code meets Date.now and setTimeout.

import { randomInt } from 'node:crypto';
import type { Clock, TimerId } from '../core/clock';
import { SeededRandom } from '../core/random';

export class SystemClock implements Clock {
  private readonly timers = new Map<TimerId, NodeJS.Timeout>();
  private nextId = 1;

  nowMs(): number {
    return Date.now();
  }

  setTimer(afterMs: number, fn: () => void): TimerId {
    const id = this.nextId++;
    const t = setTimeout(() => {
      this.timers.delete(id);
      fn();
    }, afterMs);
    this.timers.set(id, t);
    return id;
  }

  cancel(id: TimerId): void {
    const t = this.timers.get(id);
    if (t !== undefined) clearTimeout(t);
    this.timers.delete(id);
  }
}

export function systemRandom(): SeededRandom {
  return new SeededRandom(randomInt(0, 2 ** 32 - 1));
}
