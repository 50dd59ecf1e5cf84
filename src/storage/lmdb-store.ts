// The production Store on LMDB (lmdb-js).
//
// Records are keyed `token (4 bytes, big-endian) ‖ UTF-8 key`, so the keys of one token range are
// one contiguous cursor scan (what repair and streaming need). lmdb-js batches every put issued in
// one event turn into a single transaction: concurrent writes share a commit and its fsync (group
// commit). `overlappingSync` is off, so a commit is synced to disk before its put resolves (with it
// on, puts resolve at commit and the sync follows: measured here, no faster for our writes: 64
// concurrent 100-byte puts ran 57k/s waiting for the overlapped flush, 78k/s with it off).
//
// Writes are not visible to LMDB reads until committed, so writes in flight (puts, and deletes as
// "no record") are kept in `pending`; `get`, `range` and `count` answer from there first: a replica
// sees its own writes at once. `range` reads the committed records of its token interval with one
// cursor and merges the pending writes of that interval into it, both in key-byte order.
//
// Hints live in their own database `hints`, keyed by id (hint-queues.ts: target ␀ createdAtMs ␀
// seq), so a target's hints are one cursor run, oldest first. Hints being added or removed are kept
// in an overlay the same way. Per-target counts are kept in memory, counted once on open.

import { mkdirSync } from 'node:fs';
import { type Database, open, type RootDatabase } from 'lmdb';
import { tokenOf } from '../core/hash';
import type { Version } from '../core/hlc';
import type { JsonValue, StoredRecord } from '../core/record';
import { hintIdBounds, makeHint, parseHintId } from './hint-queues';
import { MAX_TOKEN, ringSegments } from './ring-index';
import type { Hint, Store } from './store';

/** On-disk shape, short field names: this is written once per key per replica. */
interface DiskRecord {
  w: number; // version.wallMs
  c: number; // version.counter
  n: string; // version.nodeId
  v?: string; // value as JSON text (exactly what the client sent, re-serialized)
  d?: 1; // tombstone
  x?: number; // expiresAt (ms since the epoch), for a value with a TTL
}

/** A hint on disk; its target and createdAtMs are in its id (the key). */
interface DiskHint {
  k: string; // key
  r: DiskRecord;
}

export function encodeKey(key: string): Buffer {
  const keyBytes = Buffer.from(key, 'utf8');
  const out = Buffer.allocUnsafe(4 + keyBytes.length);
  out.writeUInt32BE(tokenOf(key), 0);
  keyBytes.copy(out, 4);
  return out;
}

export function decodeKey(buf: Buffer): string {
  return buf.toString('utf8', 4);
}

/** The smallest record key with this token: where a token interval's cursor starts. */
function tokenStart(token: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(token, 0);
  return out;
}

function toDisk(r: StoredRecord): DiskRecord {
  const d: DiskRecord = { w: r.version.wallMs, c: r.version.counter, n: r.version.nodeId };
  if (r.deleted) d.d = 1;
  else d.v = JSON.stringify(r.value);
  if (r.expiresAt !== undefined) d.x = r.expiresAt;
  return d;
}

function fromDisk(d: DiskRecord): StoredRecord {
  const version: Version = { wallMs: d.w, counter: d.c, nodeId: d.n };
  if (d.d === 1) return { version, deleted: true };
  const r: { version: Version; value: JsonValue; expiresAt?: number } = { version, value: JSON.parse(d.v as string) as JsonValue };
  if (d.x !== undefined) r.expiresAt = d.x;
  return r;
}

/**
 * Meta entry: no hint seq below it is handed out again. Counting on the seqs on disk alone would
 * reuse the seq of the newest hint once it is delivered and removed, so each removal raises this.
 */
const HINT_SEQ_FLOOR = 'storage.hintSeqFloor';

function hintKey(id: string): Buffer {
  return Buffer.from(id, 'utf8');
}

/**
 * A write in flight; `record` is undefined for a delete. One object per write, so a write that
 * completes can tell whether a later write to the key replaced it (and must stay in the overlay).
 */
interface Pending {
  readonly record: StoredRecord | undefined;
}

export interface LmdbStoreOptions {
  /** Directory of the environment; created if missing. */
  path: string;
}

export class LmdbStore implements Store {
  private readonly pending = new Map<string, Pending>();
  private readonly pendingHintAdds = new Map<string, Hint>();
  /** Ids being removed, with the remove's promise (a second remove of one id waits for the first). */
  private readonly pendingHintRemoves = new Map<string, Promise<void>>();
  private closed = false;
  /** Records read by range() cursors, for tests that check a range reads only its own interval. */
  rangeRowsReadForTests = 0;

  private constructor(
    private readonly env: RootDatabase,
    private readonly data: Database<DiskRecord, Buffer>,
    private readonly meta: Database<unknown, string>,
    private readonly hintDb: Database<DiskHint, Buffer>,
    /** Hints per target as reads see them (committed, plus adds less removes in flight); no zeros. */
    private readonly hintCounts: Map<string, number>,
    private hintTotal: number,
    /** Next hint seq: above every seq on disk and the floor, so ids stay unique across restarts. */
    private hintSeq: number,
  ) {}

  static open(options: LmdbStoreOptions): LmdbStore {
    mkdirSync(options.path, { recursive: true });
    // noSubdir: false explicitly: lmdb-js guesses "a file" for a path with an extension (kv-0.data)
    const env = open({ path: options.path, noSubdir: false, maxDbs: 8, overlappingSync: false });
    const data = env.openDB<DiskRecord, Buffer>({ name: 'data', keyEncoding: 'binary', encoding: 'msgpack' });
    const meta = env.openDB<unknown, string>({ name: 'meta', encoding: 'msgpack' });
    const hints = env.openDB<DiskHint, Buffer>({ name: 'hints', keyEncoding: 'binary', encoding: 'msgpack' });
    // one pass over the hint ids (keys only): the counts hintCount answers from, and the next seq
    const counts = new Map<string, number>();
    let total = 0;
    let nextSeq = (meta.get(HINT_SEQ_FLOOR) as number | undefined) ?? 0;
    for (const key of hints.getKeys({})) {
      const parsed = parseHintId(key.toString('utf8'));
      if (parsed === undefined) continue;
      counts.set(parsed.target, (counts.get(parsed.target) ?? 0) + 1);
      total++;
      nextSeq = Math.max(nextSeq, parsed.seq + 1);
    }
    return new LmdbStore(env, data, meta, hints, counts, total, nextSeq);
  }

  get(key: string): StoredRecord | undefined {
    const p = this.pending.get(key);
    if (p !== undefined) return p.record;
    const d = this.data.get(encodeKey(key));
    return d === undefined ? undefined : fromDisk(d);
  }

  async put(key: string, record: StoredRecord): Promise<void> {
    const write: Pending = { record };
    this.pending.set(key, write);
    try {
      await this.data.put(encodeKey(key), toDisk(record));
    } finally {
      if (this.pending.get(key) === write) this.pending.delete(key);
    }
  }

  async delete(key: string): Promise<void> {
    // in the overlay until it commits: hides both the committed record and any put still in flight
    // (lmdb-js applies writes in the order they were issued, so that put lands first and is removed)
    const write: Pending = { record: undefined };
    this.pending.set(key, write);
    try {
      await this.data.remove(encodeKey(key));
    } finally {
      if (this.pending.get(key) === write) this.pending.delete(key);
    }
  }

  async flushed(): Promise<void> {
    await this.env.committed;
  }

  range(fromToken: number, toToken: number): Iterable<[string, StoredRecord]> {
    return this.scan(ringSegments(fromToken, toToken));
  }

  private *scan(segments: ReadonlyArray<readonly [number, number]>): Generator<[string, StoredRecord]> {
    // the writes in flight as of the first read: few (one per concurrent write), so a filter and sort is cheap
    const inFlight = [...this.pending].map(([key, write]) => ({ key, token: tokenOf(key), write }));
    for (const [lo, hi] of segments) {
      const overlay = inFlight
        .filter((p) => p.token >= lo && p.token <= hi)
        .map((p) => ({ ...p, bytes: encodeKey(p.key) }))
        .sort((a, b) => Buffer.compare(a.bytes, b.bytes));
      let i = 0;
      const end = hi === MAX_TOKEN ? undefined : tokenStart(hi + 1);
      for (const { key, value } of this.data.getRange({ start: tokenStart(lo), end })) {
        this.rangeRowsReadForTests++;
        // pending writes to keys before this one; one to this very key replaces the committed record
        let replaced = false;
        for (let p = overlay[i]; p !== undefined; p = overlay[i]) {
          const order = Buffer.compare(p.bytes, key);
          if (order > 0) break;
          if (p.write.record !== undefined) yield [p.key, p.write.record];
          replaced = order === 0;
          i++;
          if (replaced) break;
        }
        if (!replaced) yield [decodeKey(key), fromDisk(value)];
      }
      for (; i < overlay.length; i++) {
        const p = overlay[i] as (typeof overlay)[number];
        if (p.write.record !== undefined) yield [p.key, p.write.record];
      }
    }
  }

  entries(): Iterable<[string, StoredRecord]> {
    return this.range(MAX_TOKEN, MAX_TOKEN);
  }

  count(): number {
    // the B-tree's own entry count (mdb_stat): getCount() walks a cursor over every key instead,
    // 8 ms against 0.1 ms at 200k keys
    let n = (this.data.getStats() as { entryCount: number }).entryCount;
    for (const [key, write] of this.pending) n += (write.record !== undefined ? 1 : 0) - (this.data.doesExist(encodeKey(key)) ? 1 : 0);
    return n;
  }

  async addHint(h: Omit<Hint, 'id'>): Promise<Hint> {
    const hint = makeHint(h, this.hintSeq++);
    this.pendingHintAdds.set(hint.id, hint);
    this.countHint(hint.target, 1);
    try {
      await this.hintDb.put(hintKey(hint.id), { k: hint.key, r: toDisk(hint.record) });
    } catch (err) {
      if (!this.pendingHintRemoves.has(hint.id)) this.countHint(hint.target, -1); // never stored
      throw err;
    } finally {
      this.pendingHintAdds.delete(hint.id);
    }
    return hint;
  }

  hints(target: string, limit: number): Hint[] {
    const out: Hint[] = [];
    if (limit <= 0 || !this.hintCounts.has(target)) return out;
    const adding = [...this.pendingHintAdds.values()]
      .filter((h) => h.target === target && !this.pendingHintRemoves.has(h.id))
      .sort((a, b) => (a.id < b.id ? -1 : 1));
    let i = 0;
    const { start, end } = hintIdBounds(target);
    for (const { key, value } of this.hintDb.getRange({ start: hintKey(start), end: hintKey(end) })) {
      const id = key.toString('utf8');
      // an add that just committed is still in `adding`, and comes from there
      if (this.pendingHintRemoves.has(id) || this.pendingHintAdds.has(id)) continue;
      for (let a = adding[i]; a !== undefined && a.id < id && out.length < limit; a = adding[i]) {
        out.push(a);
        i++;
      }
      if (out.length >= limit) break;
      const parsed = parseHintId(id);
      if (parsed === undefined) continue;
      out.push({ id, target, key: value.k, record: fromDisk(value.r), createdAtMs: parsed.createdAtMs });
      if (out.length >= limit) break;
    }
    for (; i < adding.length && out.length < limit; i++) out.push(adding[i] as Hint);
    return out;
  }

  async removeHints(ids: readonly string[]): Promise<void> {
    const waits: Array<Promise<void>> = [];
    for (const id of ids) {
      const inFlight = this.pendingHintRemoves.get(id);
      if (inFlight !== undefined) {
        waits.push(inFlight);
        continue;
      }
      const parsed = parseHintId(id);
      if (parsed === undefined || !(this.pendingHintAdds.has(id) || this.hintDb.doesExist(hintKey(id)))) continue;
      const { target } = parsed;
      const removal = this.hintDb.remove(hintKey(id)).then(
        () => {
          this.pendingHintRemoves.delete(id);
        },
        (err: unknown) => {
          this.pendingHintRemoves.delete(id);
          this.countHint(target, 1); // still there
          throw err;
        },
      );
      this.pendingHintRemoves.set(id, removal);
      this.countHint(target, -1);
      waits.push(removal);
    }
    // committed with the removals (one lmdb-js batch): the seqs they free are never handed out again
    if (waits.length > 0) waits.push(this.meta.put(HINT_SEQ_FLOOR, this.hintSeq).then(() => {}));
    await Promise.all(waits);
  }

  private countHint(target: string, delta: 1 | -1): void {
    const n = (this.hintCounts.get(target) ?? 0) + delta;
    if (n > 0) this.hintCounts.set(target, n);
    else this.hintCounts.delete(target);
    this.hintTotal += delta;
  }

  hintCount(target?: string): number {
    return target === undefined ? this.hintTotal : (this.hintCounts.get(target) ?? 0);
  }

  hintTargets(): string[] {
    return [...this.hintCounts.keys()].sort();
  }

  getMeta<T>(name: string): T | undefined {
    return this.meta.get(name) as T | undefined;
  }

  async putMeta(name: string, value: unknown): Promise<void> {
    await this.meta.put(name, value);
  }

  isOpen(): boolean {
    if (this.closed) return false;
    try {
      this.meta.get('node'); // a real read: the environment answers
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.flushed();
    await this.env.close();
  }
}
