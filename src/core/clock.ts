// Time as an injected dependency: production wires the system clock, the simulator a virtual one.

export type TimerId = number;

export interface Clock {
  /** Milliseconds since the epoch (wall clock; may jump, may be skewed between nodes). */
  nowMs(): number;
  /** Calls fn once after `afterMs`. */
  setTimer(afterMs: number, fn: () => void): TimerId;
  cancel(id: TimerId): void;
}

/** Resolves after `ms` on the given clock. */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimer(ms, resolve));
}
