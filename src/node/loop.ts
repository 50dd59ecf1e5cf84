// A background loop on the injected clock: runs `work` every `intervalMs`, counted from the end of
// one run to the start of the next (a slow run is never overlapped by the next), until stopped.
// Hint delivery, anti-entropy and compaction each run on one.

import type { Clock, TimerId } from '../core/clock';

export class Loop {
  private timer: TimerId | undefined;
  private active = false;

  constructor(
    private readonly clock: Clock,
    private readonly intervalMs: number,
    private readonly work: () => Promise<unknown>,
  ) {}

  /** Started and not stopped since. */
  get running(): boolean {
    return this.active;
  }

  start(): void {
    this.active = true;
    this.schedule();
  }

  stop(): void {
    this.active = false;
    if (this.timer !== undefined) this.clock.cancel(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (!this.active) return;
    this.timer = this.clock.setTimer(this.intervalMs, () => {
      this.timer = undefined;
      // a failure is the work's to log; the loop goes on
      this.work()
        .catch(() => {})
        .finally(() => this.schedule());
    });
  }
}
