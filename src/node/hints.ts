// Hinted handoff (Dynamo §4.6, Cassandra's hints): a write a replica could not take is kept, in
// the store, as a hint for that replica, and delivered when the failure detector sees it alive
// again, at a bounded rate. Bounded per target and by age: a replica down for longer than the hint
// window gets no new hints (anti-entropy rebuilds it instead), and hints that outlived the window
// are dropped rather than delivered. Every drop is counted.

import type { Clock } from '../core/clock';
import type { Logger } from '../core/log';
import type { StoredRecord } from '../core/record';
import type { Counter, Metrics } from '../metrics';
import type { Transport } from '../net/transport';
import type { Store } from '../storage/store';
import { byteBatches, recordBytes } from './batches';
import { Loop } from './loop';
import type { Membership } from './membership';

export interface HintConfig {
  /** Cassandra's max_hint_window: 3 hours. */
  windowMs: number;
  /** Hints kept per target at most; more are dropped (and counted). */
  maxPerTarget: number;
  /** Hints delivered per second to one target at most. */
  deliveryRatePerSec: number;
  /** Pause between delivery rounds. */
  tickMs: number;
  timeoutMs: number;
}

export interface HintDeps {
  clock: Clock;
  transport: Transport;
  store: Store;
  log: Logger;
  membership: Membership;
  metrics?: Metrics | undefined;
}

export class HintedHandoff {
  private readonly loop: Loop;
  private delivering = false;
  private readonly stored: Counter | undefined;
  private readonly delivered: Counter | undefined;
  private readonly dropped: Counter | undefined;

  constructor(
    private readonly config: HintConfig,
    private readonly deps: HintDeps,
  ) {
    this.loop = new Loop(deps.clock, config.tickMs, () => this.deliver());
    const m = deps.metrics;
    this.stored = m?.counter('quorumkv_hints_stored_total', 'Hints stored for replicas that missed a write');
    this.delivered = m?.counter('quorumkv_hints_delivered_total', 'Hints delivered to their replica');
    this.dropped = m?.counter('quorumkv_hints_dropped_total', 'Hints not stored or not delivered, by reason (a bound that was hit)', [
      'reason',
    ]);
    m?.gauge(
      'quorumkv_hints_pending',
      'Hints waiting for delivery, by target',
      () => deps.store.hintTargets().map((t) => [{ target: t }, deps.store.hintCount(t)]),
      ['target'],
    );
  }

  start(): void {
    this.loop.start();
  }

  stop(): void {
    this.loop.stop();
  }

  pending(target?: string): number {
    return this.deps.store.hintCount(target);
  }

  /** Keeps `record` for `target` unless a bound says not to; resolves once it is durable. */
  async keep(target: string, key: string, record: StoredRecord): Promise<boolean> {
    const { store, clock, membership } = this.deps;
    const now = clock.nowMs();
    if (membership.table.get(target)?.status === 'removed') {
      this.dropped?.inc({ reason: 'target_removed' });
      return false;
    }
    const silent = membership.view().find((m) => m.id === target)?.sinceHeartbeatMs;
    if (silent !== undefined && silent > this.config.windowMs) {
      this.dropped?.inc({ reason: 'target_down_longer_than_window' });
      return false;
    }
    if (store.hintCount(target) >= this.config.maxPerTarget) {
      this.dropped?.inc({ reason: 'target_queue_full' });
      this.deps.log.warn(
        { target, max: this.config.maxPerTarget },
        'hint queue full: write not kept as a hint (anti-entropy will repair it)',
      );
      return false;
    }
    await store.addHint({ target, key, record, createdAtMs: now });
    this.stored?.inc();
    return true;
  }

  /** One delivery round: for every target that is alive, the oldest hints up to the rate's share. */
  async deliver(): Promise<void> {
    if (this.delivering) return;
    this.delivering = true;
    try {
      const { store, membership, clock, transport, log } = this.deps;
      const batch = Math.max(1, Math.floor((this.config.deliveryRatePerSec * this.config.tickMs) / 1000));
      for (const target of store.hintTargets()) {
        if (membership.table.get(target)?.status === 'removed') {
          // it left the cluster: its ranges have other replicas now, which hold these writes
          const gone = store.hints(target, Number.MAX_SAFE_INTEGER).map((h) => h.id);
          await store.removeHints(gone);
          this.dropped?.inc({ reason: 'target_removed' }, gone.length);
          log.info({ target, dropped: gone.length }, 'dropped the hints of a member that left the cluster');
          continue;
        }
        if (membership.liveness(target) !== 'alive') continue;
        const address = membership.addressOf(target);
        if (!address) continue;
        const hints = store.hints(target, batch);
        const now = clock.nowMs();
        const expired = hints.filter((h) => now - h.createdAtMs > this.config.windowMs);
        if (expired.length > 0) {
          await store.removeHints(expired.map((h) => h.id));
          this.dropped?.inc({ reason: 'older_than_window' }, expired.length);
        }
        const fresh = hints.filter((h) => now - h.createdAtMs <= this.config.windowMs);
        if (fresh.length === 0) continue;
        try {
          for (const chunk of byteBatches(fresh, (h) => recordBytes(h.key, h.record))) {
            await transport.send(
              address,
              { type: 'write-batch', records: chunk.map((h): [string, StoredRecord] => [h.key, h.record]) },
              this.config.timeoutMs,
            );
            await store.removeHints(chunk.map((h) => h.id));
            this.delivered?.inc(undefined, chunk.length);
          }
          log.debug({ target, delivered: fresh.length, left: store.hintCount(target) }, 'hints delivered');
        } catch (err) {
          log.debug({ target, err: String(err) }, 'hint delivery failed; will retry');
        }
      }
    } finally {
      this.delivering = false;
    }
  }
}
