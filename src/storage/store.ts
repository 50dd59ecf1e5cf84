// Where a replica keeps its records. Reads are synchronous (LMDB is memory-mapped and answers in
// microseconds) and see every write already issued, durable or not; writes resolve once durable.
// That pair lets a replica compare-and-put a key without a lock: nothing can run between the
// synchronous get and the put call that follows it.

import type { StoredRecord } from '../core/record';

export interface Store {
  /** The newest record written for `key`, including writes not yet durable. */
  get(key: string): StoredRecord | undefined;
  /** Stores `record` under `key`; resolves once it is durable (committed and synced). */
  put(key: string, record: StoredRecord): Promise<void>;
  /** Resolves once every write issued before the call is durable. */
  flushed(): Promise<void>;
  /** Every record, in ring order (token of the key, then the key's bytes). */
  entries(): Iterable<[string, StoredRecord]>;
  /** Number of keys stored (tombstones included). */
  count(): number;
  /** Small named values the node keeps about itself (its id, generation, members). */
  getMeta<T>(name: string): T | undefined;
  putMeta(name: string, value: unknown): Promise<void>;
  /** Open and answering reads (what the health probes report as "storage open"). */
  isOpen(): boolean;
  close(): Promise<void>;
}
