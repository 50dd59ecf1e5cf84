// A Store with a simulated disk: a write becomes durable only when its commit lands, a few virtual
// milliseconds later, in the order writes were issued; a crash loses every write not yet committed.
// A replica that acknowledged before its commit landed would lose an acknowledged write, and the
// checkers would say so.

import { tokenOf } from '../core/hash';
import { type Random, randomInt } from '../core/random';
import type { StoredRecord } from '../core/record';
import type { Store } from '../storage/store';
import type { Scheduler } from './scheduler';

export class SimStore implements Store {
  private readonly durable = new Map<string, StoredRecord>();
  private readonly durableMeta = new Map<string, unknown>();
  private readonly pending = new Map<string, StoredRecord>();
  private readonly pendingMeta = new Map<string, unknown>();
  /** Bumped by a crash: commits scheduled before it never land. */
  private epoch = 0;
  private lastCommitAt = 0;
  /** Writes that reached the disk (for the summary). */
  commits = 0;

  constructor(
    private readonly scheduler: Scheduler,
    private readonly random: Random,
    private readonly maxCommitDelayMs = 3,
  ) {}

  private commit(apply: () => void): Promise<void> {
    const epoch = this.epoch;
    // FIFO: a commit never lands before one issued earlier (LMDB commits in order). Now and then an
    // fsync stalls for tens of ms, as real disks do: that is when an early ack would be caught.
    const stall = this.random.next() < 0.05 ? randomInt(this.random, 10, 60) : 0;
    this.lastCommitAt = Math.max(this.lastCommitAt, this.scheduler.now + randomInt(this.random, 0, this.maxCommitDelayMs) + stall);
    return new Promise((resolve) => {
      this.scheduler.at(this.lastCommitAt, () => {
        if (epoch !== this.epoch) return; // crashed meanwhile: lost, and nobody is waiting any more
        apply();
        this.commits++;
        resolve();
      });
    });
  }

  get(key: string): StoredRecord | undefined {
    return this.pending.get(key) ?? this.durable.get(key);
  }

  put(key: string, record: StoredRecord): Promise<void> {
    this.pending.set(key, record);
    return this.commit(() => {
      this.durable.set(key, record);
      if (this.pending.get(key) === record) this.pending.delete(key);
    });
  }

  flushed(): Promise<void> {
    const epoch = this.epoch;
    return new Promise((resolve) => {
      this.scheduler.at(this.lastCommitAt, () => {
        if (epoch === this.epoch) resolve();
      });
    });
  }

  *entries(): Iterable<[string, StoredRecord]> {
    const keys = [...this.durable.keys()].map((k) => ({ k, t: tokenOf(k) }));
    keys.sort((a, b) => a.t - b.t || (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
    for (const { k } of keys) yield [k, this.durable.get(k) as StoredRecord];
  }

  count(): number {
    return new Set([...this.durable.keys(), ...this.pending.keys()]).size;
  }

  getMeta<T>(name: string): T | undefined {
    return (this.pendingMeta.has(name) ? this.pendingMeta.get(name) : this.durableMeta.get(name)) as T | undefined;
  }

  putMeta(name: string, value: unknown): Promise<void> {
    const copy = structuredClone(value);
    this.pendingMeta.set(name, copy);
    return this.commit(() => {
      this.durableMeta.set(name, copy);
      if (this.pendingMeta.get(name) === copy) this.pendingMeta.delete(name);
    });
  }

  private closed = false;

  isOpen(): boolean {
    return !this.closed;
  }

  close(): Promise<void> {
    this.closed = true;
    return this.flushed();
  }

  /** The process died: writes not yet committed are gone. */
  crash(): void {
    this.epoch++;
    this.pending.clear();
    this.pendingMeta.clear();
  }

  /** What survives a crash right now (for the checkers: the god's-eye view of the disk). */
  durableRecord(key: string): StoredRecord | undefined {
    return this.durable.get(key);
  }

  durableKeys(): string[] {
    return [...this.durable.keys()];
  }
}
