// An in-memory Store for unit tests and the simulator. Writes are durable the moment they are
// issued, so a simulated crash keeps exactly what was put (the simulator keeps this object and
// hands it to the restarted node).

import type { StoredRecord } from '../core/record';
import { HintQueues, makeHint } from './hint-queues';
import { MAX_TOKEN, RingIndex } from './ring-index';
import { checkThenPut, type Hint, type PutOutcome, type Store } from './store';

function* withRecords(keys: Iterable<string>, records: ReadonlyMap<string, StoredRecord>): Generator<[string, StoredRecord]> {
  for (const k of keys) {
    const r = records.get(k);
    if (r !== undefined) yield [k, r]; // undefined: deleted since the index was sorted
  }
}

export class MemoryStore implements Store {
  private readonly records = new Map<string, StoredRecord>();
  private readonly index = new RingIndex({ has: (k) => this.records.has(k), keys: () => this.records.keys() });
  private readonly meta = new Map<string, unknown>();
  private readonly hintQueues = new HintQueues();
  private hintSeq = 0;

  get(key: string): StoredRecord | undefined {
    return this.records.get(key);
  }

  put(key: string, record: StoredRecord): Promise<void> {
    if (!this.records.has(key)) this.index.noteAdded(key);
    this.records.set(key, record);
    return Promise.resolve();
  }

  putIfNewer(key: string, record: StoredRecord): Promise<PutOutcome> {
    return checkThenPut(this, key, record);
  }

  delete(key: string): Promise<void> {
    if (this.records.delete(key)) this.index.noteRemoved(key);
    return Promise.resolve();
  }

  flushed(): Promise<void> {
    return Promise.resolve();
  }

  range(fromToken: number, toToken: number): Iterable<[string, StoredRecord]> {
    return withRecords(this.index.range(fromToken, toToken), this.records);
  }

  entries(): Iterable<[string, StoredRecord]> {
    return this.range(MAX_TOKEN, MAX_TOKEN);
  }

  count(): number {
    return this.records.size;
  }

  async addHint(h: Omit<Hint, 'id'>): Promise<Hint> {
    const hint = makeHint(h, this.hintSeq++);
    this.hintQueues.add(hint);
    return hint;
  }

  hints(target: string, limit: number): Hint[] {
    return this.hintQueues.list(target, limit);
  }

  removeHints(ids: readonly string[]): Promise<void> {
    for (const id of ids) this.hintQueues.remove(id);
    return Promise.resolve();
  }

  hintCount(target?: string): number {
    return this.hintQueues.count(target);
  }

  hintTargets(): string[] {
    return this.hintQueues.targets();
  }

  getMeta<T>(name: string): T | undefined {
    return this.meta.get(name) as T | undefined;
  }

  putMeta(name: string, value: unknown): Promise<void> {
    this.meta.set(name, structuredClone(value));
    return Promise.resolve();
  }

  private closed = false;

  isOpen(): boolean {
    return !this.closed;
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}
