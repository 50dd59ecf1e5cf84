// An in-memory Store for unit tests and the simulator. Writes are durable the moment they are
// issued, so a simulated crash keeps exactly what was put (the simulator keeps this object and
// hands it to the restarted node).

import { tokenOf } from '../core/hash';
import type { StoredRecord } from '../core/record';
import type { Store } from './store';

export class MemoryStore implements Store {
  private readonly records = new Map<string, StoredRecord>();
  private readonly meta = new Map<string, unknown>();

  get(key: string): StoredRecord | undefined {
    return this.records.get(key);
  }

  put(key: string, record: StoredRecord): Promise<void> {
    this.records.set(key, record);
    return Promise.resolve();
  }

  flushed(): Promise<void> {
    return Promise.resolve();
  }

  *entries(): Iterable<[string, StoredRecord]> {
    const keys = [...this.records.keys()].map((k) => ({ k, t: tokenOf(k) }));
    keys.sort((a, b) => a.t - b.t || (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
    for (const { k } of keys) yield [k, this.records.get(k) as StoredRecord];
  }

  count(): number {
    return this.records.size;
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
