// A Store with a simulated disk: a write becomes durable only when its commit lands, a few virtual
// milliseconds later, in the order writes were issued; a crash loses every write not yet committed.
// A replica that acknowledged before its commit landed would lose an acknowledged write, and the
// checkers would say so.

import { type Random, randomInt } from '../core/random';
import type { StoredRecord } from '../core/record';
import { HintQueues, makeHint } from '../storage/hint-queues';
import { MAX_TOKEN, RingIndex } from '../storage/ring-index';
import { checkThenPut, type Hint, type PutOutcome, type Store } from '../storage/store';
import type { Scheduler } from './scheduler';

/**
 * A write in flight; `record` is undefined for a delete. One object per write, so a commit can tell
 * whether a later write to the key replaced it (and must stay in the view).
 */
interface Pending {
  readonly record: StoredRecord | undefined;
}

export class SimStore implements Store {
  private readonly durable = new Map<string, StoredRecord>();
  private readonly durableMeta = new Map<string, unknown>();
  private readonly pending = new Map<string, Pending>();
  private readonly pendingMeta = new Map<string, unknown>();
  /** The keys of the get() view (pending over durable), in ring order. */
  private readonly index = new RingIndex({ has: (k) => this.get(k) !== undefined, keys: () => this.viewKeys() });
  private readonly durableHints = new Map<string, Hint>();
  /** Hints as reads see them: durable ones, plus adds and less removes still in flight. */
  private hintView = new HintQueues();
  /** Never reset, not even by a crash: an id is never handed out twice. */
  private hintSeq = 0;
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
    const p = this.pending.get(key);
    return p !== undefined ? p.record : this.durable.get(key);
  }

  put(key: string, record: StoredRecord): Promise<void> {
    if (this.get(key) === undefined) this.index.noteAdded(key);
    const write: Pending = { record };
    this.pending.set(key, write);
    return this.commit(() => {
      this.durable.set(key, record);
      if (this.pending.get(key) === write) this.pending.delete(key);
    });
  }

  putIfNewer(key: string, record: StoredRecord): Promise<PutOutcome> {
    return checkThenPut(this, key, record);
  }

  delete(key: string): Promise<void> {
    if (this.get(key) !== undefined) this.index.noteRemoved(key);
    const write: Pending = { record: undefined };
    this.pending.set(key, write);
    return this.commit(() => {
      this.durable.delete(key);
      if (this.pending.get(key) === write) this.pending.delete(key);
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

  range(fromToken: number, toToken: number): Iterable<[string, StoredRecord]> {
    return this.withRecords(this.index.range(fromToken, toToken));
  }

  private *withRecords(keys: Iterable<string>): Generator<[string, StoredRecord]> {
    for (const k of keys) {
      const r = this.get(k);
      if (r !== undefined) yield [k, r]; // undefined: left the view since the index was sorted
    }
  }

  entries(): Iterable<[string, StoredRecord]> {
    return this.range(MAX_TOKEN, MAX_TOKEN);
  }

  private *viewKeys(): Generator<string> {
    for (const k of this.durable.keys()) if (this.get(k) !== undefined) yield k;
    for (const [k, p] of this.pending) if (p.record !== undefined && !this.durable.has(k)) yield k;
  }

  count(): number {
    let n = this.durable.size;
    for (const [k, p] of this.pending) n += (p.record !== undefined ? 1 : 0) - (this.durable.has(k) ? 1 : 0);
    return n;
  }

  async addHint(h: Omit<Hint, 'id'>): Promise<Hint> {
    const hint = makeHint(h, this.hintSeq++);
    this.hintView.add(hint);
    await this.commit(() => this.durableHints.set(hint.id, hint));
    return hint;
  }

  hints(target: string, limit: number): Hint[] {
    return this.hintView.list(target, limit);
  }

  removeHints(ids: readonly string[]): Promise<void> {
    const gone = ids.filter((id) => this.hintView.remove(id));
    // a commit even when nothing is left to remove: an earlier remove of these ids may still be in
    // flight, and commits land in order, so this one resolving means that one landed too
    return this.commit(() => {
      for (const id of gone) this.durableHints.delete(id);
    });
  }

  hintCount(target?: string): number {
    return this.hintView.count(target);
  }

  hintTargets(): string[] {
    return this.hintView.targets();
  }

  getMeta<T>(name: string): T | undefined {
    return (this.pendingMeta.has(name) ? this.pendingMeta.get(name) : this.durableMeta.get(name)) as T | undefined;
  }

  putMeta(name: string, value: unknown): Promise<void> {
    const copy = value === undefined ? undefined : JSON.parse(JSON.stringify(value)); // meta is plain data
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
    this.index.reset();
    this.hintView = HintQueues.of(this.durableHints.values());
  }

  /** What survives a crash right now (for the checkers: the god's-eye view of the disk). */
  durableRecord(key: string): StoredRecord | undefined {
    return this.durable.get(key);
  }

  durableKeys(): string[] {
    return [...this.durable.keys()];
  }
}
