// Tombstone garbage collection: deletes tombstones, and values past their TTL, once they are older
// than the grace period (Cassandra's gc_grace_seconds). Walks the ring one slice per tick, so a large
// store is never scanned in one go.
//
// The same walk cleans up (Cassandra's `nodetool cleanup`, done as a matter of course): records of
// keys this node no longer replicates, left behind when a join took ranges from it. Kept, they would
// be stale copies that come back to life if the node ever owned those ranges again after their
// tombstones elsewhere were purged. Only while no move is under way: `owns` says when it knows.

import type { Clock } from '../core/clock';
import { TOKEN_SPACE } from '../core/hash';
import type { Logger } from '../core/log';
import { isPurgeable } from '../core/record';
import type { Counter, Metrics } from '../metrics';
import type { Store } from '../storage/store';
import { Loop } from './loop';

/** The ring is walked in this many slices: one per tick. */
export const COMPACTION_SLICES = 256;
const SLICE_WIDTH = TOKEN_SPACE / COMPACTION_SLICES;

export interface CompactionConfig {
  tombstoneGraceMs: number;
  /** Pause between two slices. */
  tickMs: number;
}

export class Compaction {
  private readonly loop: Loop;
  private slice = 0;
  private readonly purged: Counter | undefined;

  constructor(
    private readonly config: CompactionConfig,
    private readonly deps: {
      clock: Clock;
      store: Store;
      log: Logger;
      metrics?: Metrics | undefined;
      /** Whether this node replicates `key`; undefined while that may change (a move under way). */
      owns?: ((key: string) => boolean | undefined) | undefined;
    },
  ) {
    this.loop = new Loop(deps.clock, config.tickMs, async () => {
      await this.purgeSlice(this.slice);
      this.slice = (this.slice + 1) % COMPACTION_SLICES;
    });
    this.purged = deps.metrics?.counter(
      'quorumkv_purged_total',
      'Records purged: tombstones and expired values after the grace period, records of ranges this node no longer replicates (kind)',
      ['kind'],
    );
  }

  start(): void {
    this.loop.start();
  }

  stop(): void {
    this.loop.stop();
  }

  /** Purges what is purgeable in one slice of the ring; returns how many records went. */
  async purgeSlice(slice: number): Promise<number> {
    const { store, clock } = this.deps;
    const now = clock.nowMs();
    const lo = (slice * SLICE_WIDTH - 1 + TOKEN_SPACE) % TOKEN_SPACE;
    const hi = ((slice + 1) * SLICE_WIDTH - 1) % TOKEN_SPACE;
    const owns = this.deps.owns;
    const doomed: Array<{ key: string; kind: string }> = [];
    for (const [key, r] of store.range(lo, hi)) {
      if (isPurgeable(r, now, this.config.tombstoneGraceMs)) doomed.push({ key, kind: r.deleted ? 'tombstone' : 'expired' });
      else if (owns?.(key) === false) doomed.push({ key, kind: 'unowned' });
    }
    // Re-check each one (a newer write may have landed, or the ring moved, since the scan) and
    // issue its delete in the same synchronous step, so that no write can come between the two; the
    // deletes of a slice then share commits (one awaited at a time, each paid for a sync).
    const deletes: Array<Promise<void>> = [];
    for (const d of doomed) {
      const cur = store.get(d.key);
      if (!cur) continue;
      const still = d.kind === 'unowned' ? owns?.(d.key) === false : isPurgeable(cur, clock.nowMs(), this.config.tombstoneGraceMs);
      if (!still) continue;
      deletes.push(store.delete(d.key).then(() => this.purged?.inc({ kind: d.kind })));
    }
    await Promise.all(deletes);
    return deletes.length;
  }

  /** Purges the whole ring now (tests, and an operator's repair). */
  async purgeAll(): Promise<number> {
    let n = 0;
    for (let s = 0; s < COMPACTION_SLICES; s++) n += await this.purgeSlice(s);
    return n;
  }
}
