// "Every frame queued in one event-loop turn leaves in one write": connections with frames to send
// register here, and once per turn (setImmediate: after every I/O callback of this turn has run)
// each writes what it has collected in a single socket write.
//
// Except a lone frame. Waiting for the turn's end costs a frame the rest of the turn: for a lone
// client's write, the coordinator's own replica write, its timers and bookkeeping (~0.1 ms on the
// benchmark machine, with the caches cold between requests), all on the path to the replicas. So
// when the node has one message or none in hand (`alone`: a client request, or a call its internode
// server is handling) and the connection's last write carried a single frame, the first frame of a
// turn leaves at once: whatever else the connection is given in the same turn waits for the turn's
// end, as before, and a turn-end write of several frames puts it back to batching until a turn gives
// it a single frame again. A busy node always batches: frames leaving one by one there cost ~10%
// of the 64-connection write rate (more socket writes, each waking the peer).

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

  /** `alone`: whether the node has one message or none in hand (always, when not given). */
  constructor(private readonly alone: () => boolean = () => true) {}

  mark(c: Flushable): void {
    if (!this.batching.has(c) && !this.spent.has(c) && !this.dirty.has(c) && this.alone()) {
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
