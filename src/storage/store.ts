// Where a replica keeps its records. Reads are synchronous (LMDB is memory-mapped and answers in
// microseconds) and see every write already issued, durable or not; writes resolve once durable.
// That pair lets a replica compare-and-put a key without a lock: nothing can run between the
// synchronous get and the put call that follows it (putIfNewer, last write wins).

import { type StoredRecord, supersedes } from '../core/record';

/** What putIfNewer did: stored the record, or not, because `held` (what the key holds) supersedes it. */
export type PutOutcome = { applied: true } | { applied: false; held: StoredRecord | undefined };

/** A write kept for a replica that could not take it (hinted handoff), until it can. */
export interface Hint {
  /** Unique, and sorts by (target, createdAtMs, seq): the store assigns it. */
  id: string;
  /** Node id the write was meant for. */
  target: string;
  key: string;
  record: StoredRecord;
  createdAtMs: number;
}

export interface Store {
  /** The newest record written for `key`, including writes not yet durable. */
  get(key: string): StoredRecord | undefined;
  /** Stores `record` under `key`; resolves once it is durable (committed and synced). */
  put(key: string, record: StoredRecord): Promise<void>;
  /**
   * Last write wins: stores `record` unless what `key` holds supersedes it (core/record.ts), and
   * resolves once the outcome is durable (the record stored, or the one that won).
   */
  putIfNewer(key: string, record: StoredRecord): Promise<PutOutcome>;
  /**
   * Removes `key` and its record entirely; resolves once durable. Not a client's delete (that is a
   * put of a tombstone): this is how purged tombstones and expired values go.
   */
  delete(key: string): Promise<void>;
  /** Resolves once every write issued before the call is durable. */
  flushed(): Promise<void>;
  /**
   * The records whose key's token is in the ring range (fromToken, toToken], in ring order (token,
   * then the key's UTF-8 bytes), writes not yet durable and tombstones included. fromToken >= toToken
   * wraps: (fromToken, 2^32-1] then [0, toToken], so fromToken === toToken is the whole ring.
   * Reads only the records in the range.
   */
  range(fromToken: number, toToken: number): Iterable<[string, StoredRecord]>;
  /** Every record, in ring order from token 0 (range() over the whole ring). */
  entries(): Iterable<[string, StoredRecord]>;
  /** Number of keys stored (tombstones included), writes not yet durable included. */
  count(): number;
  /** Keeps a hint; resolves once it is durable, with the id the store gave it. */
  addHint(h: Omit<Hint, 'id'>): Promise<Hint>;
  /** The oldest hints for `target` (by createdAtMs, then the order they were added), at most `limit`. */
  hints(target: string, limit: number): Hint[];
  /** Removes hints by id; resolves once durable. Ids not stored (any more) are ignored. */
  removeHints(ids: readonly string[]): Promise<void>;
  /** Hints kept for `target`, or for every target when omitted. Cheap: kept as counters, not counted. */
  hintCount(target?: string): number;
  /** Targets that have at least one hint, sorted. */
  hintTargets(): string[];
  /** Small named values the node keeps about itself (its id, generation, members). */
  getMeta<T>(name: string): T | undefined;
  putMeta(name: string, value: unknown): Promise<void>;
  /** Open and answering reads (what the health probes report as "storage open"). */
  isOpen(): boolean;
  close(): Promise<void>;
}

/** putIfNewer by get, then put (in the same turn): for stores whose writes need nothing begun before the check. */
export async function checkThenPut(store: Store, key: string, record: StoredRecord): Promise<PutOutcome> {
  const held = store.get(key);
  if (!supersedes(record, held)) {
    await store.flushed(); // what superseded it must be durable before anyone is told so
    return { applied: false, held };
  }
  await store.put(key, record);
  return { applied: true };
}
