// "Every frame queued in one event-loop turn leaves in one write": connections with frames to send
// register here, and once per turn (setImmediate: after every I/O callback of this turn has run)
// each writes what it has collected in a single socket write.

export interface Flushable {
  flush(): void;
}

export class FlushScheduler {
  private readonly dirty = new Set<Flushable>();
  private scheduled = false;

  mark(c: Flushable): void {
    this.dirty.add(c);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.run);
    }
  }

  private readonly run = (): void => {
    this.scheduled = false;
    for (const c of this.dirty) c.flush();
    this.dirty.clear();
  };
}
