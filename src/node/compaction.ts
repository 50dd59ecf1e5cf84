// Tombstone garbage collection: deletes tombstones, and values past their TTL, once they are older
// than the grace period (Cassandra's gc_grace_seconds). Walks the ring one slice per tick, so a large
// store is never scanned in one go.

import type { Clock, TimerId } from '../core/clock';
import type { Logger } from '../core/log';
import { isPurgeable } from '../core/record';
import type { Counter, Metrics } from '../metrics';
import type { Store } from '../storage/store';

/** The ring is walked in this many slices: one per tick. */
export const COMPACTION_SLICES = 256;
const SLICE_WIDTH = 2 ** 32 / COMPACTION_SLICES;

export interface CompactionConfig {
  tombstoneGraceMs: number;
  /** Pause between two slices. */
  tickMs: number;
}

export class Compaction {
  private timer: TimerId | undefined;
  private running = false;
  private slice = 0;
  private readonly purged: Counter | undefined;

  constructor(
    private readonly config: CompactionConfig,
    private readonly deps: { clock: Clock; store: Store; log: Logger; metrics?: Metrics | undefined },
  ) {
    this.purged = deps.metrics?.counter('quorumkv_purged_total', 'Records purged after the grace period, by kind (tombstone, expired)');
  }

  start(): void {
    this.running = true;
    this.timer = this.deps.clock.setTimer(this.config.tickMs, () => this.tick());
  }

  stop(): void {
    this.running = false;
    if (this.timer !== undefined) this.deps.clock.cancel(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    if (!this.running) return;
    void this.purgeSlice(this.slice).finally(() => {
      this.slice = (this.slice + 1) % COMPACTION_SLICES;
      if (this.running) this.timer = this.deps.clock.setTimer(this.config.tickMs, () => this.tick());
    });
  }

  /** Purges what is purgeable in one slice of the ring; returns how many records went. */
  async purgeSlice(slice: number): Promise<number> {
    const { store, clock } = this.deps;
    const now = clock.nowMs();
    const lo = (slice * SLICE_WIDTH - 1 + 2 ** 32) % 2 ** 32;
    const hi = ((slice + 1) * SLICE_WIDTH - 1) % 2 ** 32;
    const doomed: Array<{ key: string; kind: string; wallMs: number }> = [];
    for (const [key, r] of store.range(lo, hi)) {
      if (isPurgeable(r, now, this.config.tombstoneGraceMs))
        doomed.push({ key, kind: r.deleted ? 'tombstone' : 'expired', wallMs: r.version.wallMs });
    }
    for (const d of doomed) {
      // re-check: a newer write may have landed since the scan
      const cur = store.get(d.key);
      if (!cur || !isPurgeable(cur, clock.nowMs(), this.config.tombstoneGraceMs)) continue;
      await store.delete(d.key);
      this.purged?.inc({ kind: d.kind });
    }
    return doomed.length;
  }

  /** Purges the whole ring now (tests, and an operator's repair). */
  async purgeAll(): Promise<number> {
    let n = 0;
    for (let s = 0; s < COMPACTION_SLICES; s++) n += await this.purgeSlice(s);
    return n;
  }
}
