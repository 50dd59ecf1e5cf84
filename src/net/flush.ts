// "Every frame queued in one event-loop turn leaves in one write": connections with frames to send
// register here, and once per turn (setImmediate: after every I/O callback of this turn has run)
// each writes what it has collected in a single socket write.
//
// Except a lone frame. Waiting for the turn's end costs a frame the rest of the turn: for a lone
// client's write, the coordinator's own replica write, its timers and bookkeeping (~0.1 ms on the
// benchmark machine, with the caches cold between requests), all on the path to the replicas. So a
// connection whose last write carried a single frame writes its next frame at once, the first of a
// turn only: whatever else it is given in the same turn waits for the turn's end, as before. A burst
// therefore costs one write more than it used to, once, and its turn-end write (more than one frame)
// puts the connection back to batching until a turn gives it a single frame again.

export interface Flushable {
  /** Writes everything queued in one socket write; how many frames that was (0: nothing to write). */
  flush(): number;
}

export class FlushScheduler {
  private readonly dirty = new Set<Flushable>();
  /** Written to at once this turn: more frames for it this turn wait for the turn's end. */
  private readonly spent = new Set<Flushable>();
  /** Connections whose last write carried more than one frame: they wait for the turn's end. */
  private readonly batching = new WeakSet<Flushable>();
  private scheduled = false;

  mark(c: Flushable): void {
    if (!this.batching.has(c) && !this.spent.has(c) && !this.dirty.has(c)) {
      this.spent.add(c);
      this.wrote(c, c.flush());
    } else {
      this.dirty.add(c);
    }
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.run);
    }
  }

  private wrote(c: Flushable, frames: number): void {
    if (frames > 1) this.batching.add(c);
    else if (frames === 1) this.batching.delete(c);
  }

  private readonly run = (): void => {
    this.scheduled = false;
    this.spent.clear();
    for (const c of this.dirty) this.wrote(c, c.flush());
    this.dirty.clear();
  };
}
