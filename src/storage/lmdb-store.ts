// The production Store: a commit log (commit-log.ts) in front of LMDB (lmdb-js).
//
// A write is durable, and its put resolves, once the commit log has it on disk (one O_DSYNC write
// shared by every write of that event turn). The store then applies logged writes to LMDB in
// batches, every APPLY_INTERVAL_MS or sooner when many are waiting: one LMDB transaction, committed
// and synced as LMDB always is, that also records how far in the log it reached. commit-log.ts
// argues why no acknowledged write is lost across a crash; on open, what the log holds beyond that
// point is replayed into LMDB before anything else.
//
// Records are keyed `token (4 bytes, big-endian) ‖ UTF-8 key`, so the keys of one token range are
// one contiguous cursor scan (what repair and streaming need). Values are record-codec's bytes: the
// very bytes the log wrote, so a write is encoded once.
//
// A replica's write (putIfNewer) goes to the log before its version check, so the check reads
// LMDB while the disk write is under way (when the log hands it to the thread pool); a write that
// loses leaves a void frame, which neither an apply nor a replay takes (commit-log.ts, point 3).
//
// Writes are not visible to LMDB reads until applied, so writes not yet applied (puts, and deletes
// as "no record") are kept in `pending`; `get`, `range` and `count` answer from there first: a
// replica sees its own writes at once. `range` reads the committed records of its token interval
// with one cursor and merges the pending writes of that interval into it, both in key-byte order.
//
// Hints live in their own database `hints`, keyed by id (hint-queues.ts: target ␀ createdAtMs ␀
// seq), so a target's hints are one cursor run, oldest first; they and the node's meta entries are
// written to LMDB directly (rare, and each resolves at its own synced commit). Hints being added or
// removed are kept in an overlay the same way. Per-target counts are kept in memory, counted once on open.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';
import { tokenOf } from '../core/hash';
import { type StoredRecord, supersedes } from '../core/record';
import { CommitLog, FRAME_HEADER_BYTES, type LogPosition } from './commit-log';
import { hintIdBounds, makeHint, parseHintId } from './hint-queues';
import { decodeRecord, decodeWrite, type EncodedWrite, encodeWrite } from './record-codec';
import { MAX_TOKEN, ringSegments } from './ring-index';
import type { Hint, PutOutcome, Store } from './store';

export function encodeKey(key: string): Buffer {
  const out = Buffer.allocUnsafe(4 + Buffer.byteLength(key, 'utf8'));
  out.writeUInt32BE(tokenOf(key), 0);
  out.write(key, 4, 'utf8');
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

/**
 * Meta entry: no hint seq below it is handed out again. Counting on the seqs on disk alone would
 * reuse the seq of the newest hint once it is delivered and removed, so each removal raises this.
 */
const HINT_SEQ_FLOOR = 'storage.hintSeqFloor';
/** Meta entry, written in the same transaction as each applied batch: [seq, offset] in the log. */
const APPLIED_THROUGH = 'storage.appliedThrough';
/** Meta entry: the layout of the data and hints databases (record-codec's bytes). */
const FORMAT = 'storage.format';
const FORMAT_VERSION = 2;

/** How long a logged write waits before LMDB takes it: longer batches mean fewer LMDB syncs. */
export const APPLY_INTERVAL_MS = 50;
/** Writes that make the store apply at once rather than at the next interval. */
const APPLY_AT_ONCE_WRITES = 4_096;

function hintKey(id: string): Buffer {
  return Buffer.from(id, 'utf8');
}

/**
 * A write not yet in LMDB; `record` is undefined for a delete. One object per write, so a write that
 * is applied can tell whether a later write to the key replaced it (and must stay in the overlay).
 */
interface Pending {
  readonly record: StoredRecord | undefined;
}

/** A logged write on its way to LMDB: its record bytes, and where in the log it ends. */
interface Unapplied {
  readonly key: string;
  readonly write: Pending;
  readonly value: Buffer | undefined;
  readonly position: LogPosition;
}

export interface LmdbStoreOptions {
  /** Directory of the environment; created if missing. */
  path: string;
  /**
   * Largest record the store must take (a value at the node's --max-value-bytes, with its key and
   * version): sizes the commit log's segments so any one fits. Default 1 MiB + 64 KiB.
   */
  maxRecordBytes?: number;
  /** Milliseconds a logged write waits before LMDB takes it (APPLY_INTERVAL_MS). */
  applyIntervalMs?: number;
  /** Commit log segment size, at least twice maxRecordBytes (default: that, and at least 4 MiB). */
  logSegmentBytes?: number;
  /** Whether the node has one message or none in hand (the commit log's `alone`). */
  alone?: () => boolean;
}

export class LmdbStore implements Store {
  private readonly pending = new Map<string, Pending>();
  private readonly pendingHintAdds = new Map<string, Hint>();
  /** Ids being removed, with the remove's promise (a second remove of one id waits for the first). */
  private readonly pendingHintRemoves = new Map<string, Promise<void>>();
  private unapplied: Unapplied[] = [];
  private applying: Promise<void> | undefined;
  private applyTimer: NodeJS.Timeout | undefined;
  /** The last append issued: the log acknowledges in order, so this settling means all have. */
  private lastAppend: Promise<unknown> = Promise.resolve();
  private applyFailure: Error | undefined;
  private closed = false;
  /** Records read by range() cursors, for tests that check a range reads only its own interval. */
  rangeRowsReadForTests = 0;

  private constructor(
    private readonly env: RootDatabase,
    private readonly data: Database<Buffer, Buffer>,
    private readonly meta: Database<unknown, string>,
    private readonly hintDb: Database<Buffer, Buffer>,
    private readonly log: CommitLog,
    private readonly applyIntervalMs: number,
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
    const data = env.openDB<Buffer, Buffer>({ name: 'data', keyEncoding: 'binary', encoding: 'binary' });
    const meta = env.openDB<unknown, string>({ name: 'meta', encoding: 'msgpack' });
    const hints = env.openDB<Buffer, Buffer>({ name: 'hints', keyEncoding: 'binary', encoding: 'binary' });
    const format = meta.get(FORMAT);
    if (format === undefined) {
      const stats = (db: Database<Buffer, Buffer>) => (db.getStats() as { entryCount: number }).entryCount;
      if (stats(data) + stats(hints) > 0) {
        env.close();
        throw new Error(`${options.path} holds records in an earlier storage format; start this node on an empty directory`);
      }
      meta.putSync(FORMAT, FORMAT_VERSION);
    } else if (format !== FORMAT_VERSION) {
      env.close();
      throw new Error(`${options.path} holds storage format ${String(format)}; this quorumkv reads format ${FORMAT_VERSION}`);
    }

    // the commit log: replay what LMDB has not applied, in one synced transaction, before anything else
    const logDir = join(options.path, 'log');
    mkdirSync(logDir, { recursive: true });
    const maxRecordBytes = options.maxRecordBytes ?? 1024 * 1024 + 64 * 1024;
    const segmentBytes = options.logSegmentBytes ?? Math.max(4 << 20, Math.ceil((2 * maxRecordBytes) / (1 << 20)) << 20);
    const applied = meta.get(APPLIED_THROUGH) as [number, number] | undefined;
    let store: LmdbStore | undefined;
    const { log, replay } = CommitLog.open(
      {
        dir: logDir,
        segmentBytes,
        maxSegments: 16,
        maxWaitingAppends: 10_000,
        onPressure: () => store?.applySoon(0),
        ...(options.alone ? { alone: options.alone } : {}),
      },
      applied === undefined ? undefined : { seq: applied[0], offset: applied[1] },
    );
    const last = replay[replay.length - 1];
    if (last !== undefined) {
      env.transactionSync(() => {
        for (const { write } of replay) {
          const key = encodeKey(write.key);
          if (write.record === undefined) data.removeSync(key);
          else {
            // last write wins, as when the write arrived: a frame whose write lost then is void
            // (putIfNewer), and loses again here to what the key holds (reads in this transaction
            // see its own writes)
            const held = data.get(key);
            if (held !== undefined && !supersedes(write.record, decodeRecord(held))) continue;
            const encoded = encodeWrite(write);
            data.putSync(key, encoded.bytes.subarray(encoded.recordAt));
          }
        }
        meta.putSync(APPLIED_THROUGH, [last.position.seq, last.position.offset]);
      });
      log.applied(last.position);
    }

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
    store = new LmdbStore(env, data, meta, hints, log, options.applyIntervalMs ?? APPLY_INTERVAL_MS, counts, total, nextSeq);
    store.replayedAtOpen = replay.length;
    return store;
  }

  /** Writes replayed from the commit log when this store opened (for tests and the startup log). */
  replayedAtOpen = 0;

  get(key: string): StoredRecord | undefined {
    const p = this.pending.get(key);
    if (p !== undefined) return p.record;
    const d = this.data.get(encodeKey(key));
    return d === undefined ? undefined : decodeRecord(d);
  }

  put(key: string, record: StoredRecord): Promise<void> {
    return this.write(key, record);
  }

  delete(key: string): Promise<void> {
    // in the overlay until applied: hides both the committed record and any put not yet applied
    // (applied in log order, so that put lands first and is removed)
    return this.write(key, undefined);
  }

  /**
   * The write goes to the log before the version check, so its disk write, when the log makes it
   * in the thread pool, is under way while LMDB is read (pages the last apply rewrote: tens of
   * microseconds, on every replica write's path; a lone write made on the loop's thread is on disk
   * by then, commit-log.ts). A write that loses leaves its frame in the log, void: it never joins
   * `pending` or `unapplied`, so no apply takes it, and a replay skips it, as it skips every frame
   * that does not supersede what the key holds by then (open()).
   */
  async putIfNewer(key: string, record: StoredRecord): Promise<PutOutcome> {
    const frame = this.append(key, record);
    // get and the pending entry below in one turn: no other write to this key can come between
    const held = this.get(key);
    if (!supersedes(record, held)) {
      // the log acknowledges in order: a held record still on its way to disk is durable with this frame
      await frame.appended;
      return { applied: false, held };
    }
    await this.logged(key, { record }, frame);
    return { applied: true };
  }

  private async write(key: string, record: StoredRecord | undefined): Promise<void> {
    await this.logged(key, { record }, this.append(key, record));
  }

  /** Sends the write to the commit log (its disk write may start at once); throws once closed. */
  private append(key: string, record: StoredRecord | undefined): { encoded: EncodedWrite; appended: Promise<LogPosition> } {
    if (this.closed) throw new Error('store closed');
    const encoded = encodeWrite({ key, record }, FRAME_HEADER_BYTES);
    const appended = this.log.append(encoded);
    this.lastAppend = appended;
    return { encoded, appended };
  }

  /** A write whose frame is on its way to the log: seen by reads at once, applied to LMDB once logged. */
  private async logged(
    key: string,
    write: Pending,
    { encoded, appended }: { encoded: EncodedWrite; appended: Promise<LogPosition> },
  ): Promise<void> {
    const { record } = write;
    this.pending.set(key, write);
    let position: LogPosition;
    try {
      position = await appended;
    } catch (err) {
      // never acknowledged: forget it (a later write to the key has its own entry)
      if (this.pending.get(key) === write) this.pending.delete(key);
      throw err;
    }
    this.unapplied.push({ key, write, value: record === undefined ? undefined : encoded.bytes.subarray(encoded.recordAt), position });
    this.applySoon(this.unapplied.length >= APPLY_AT_ONCE_WRITES ? 0 : this.applyIntervalMs);
  }

  /** Starts applying logged writes to LMDB after `delayMs`, unless an apply is due sooner or running. */
  private applySoon(delayMs: number): void {
    if (this.applying !== undefined || this.unapplied.length === 0) return;
    if (this.applyTimer !== undefined) {
      if (delayMs > 0) return;
      clearTimeout(this.applyTimer);
    }
    this.applyTimer = setTimeout(() => {
      this.applyTimer = undefined;
      this.applying = this.apply().finally(() => {
        this.applying = undefined;
        if (this.closed) return;
        const behind = this.log.waitingCount() > 0 || this.unapplied.length >= APPLY_AT_ONCE_WRITES;
        this.applySoon(this.applyFailure !== undefined ? 1_000 : behind ? 0 : this.applyIntervalMs);
      });
    }, delayMs);
  }

  /** One LMDB transaction: the waiting writes in log order, and how far in the log they reach. */
  private async apply(): Promise<void> {
    const batch = this.unapplied;
    if (batch.length === 0) return;
    this.unapplied = [];
    const last = (batch[batch.length - 1] as Unapplied).position;
    try {
      await this.env.transaction(() => {
        for (const u of batch) {
          if (u.value === undefined) this.data.removeSync(encodeKey(u.key));
          else this.data.putSync(encodeKey(u.key), u.value);
        }
        this.meta.putSync(APPLIED_THROUGH, [last.seq, last.offset]);
      });
      await this.env.flushed;
    } catch (err) {
      // kept, in order, for the next try; the log holds them meanwhile (and fills, and then refuses)
      this.unapplied = batch.concat(this.unapplied);
      this.applyFailure = err instanceof Error ? err : new Error(String(err));
      return;
    }
    this.applyFailure = undefined;
    for (const u of batch) if (this.pending.get(u.key) === u.write) this.pending.delete(u.key);
    this.log.applied(last);
  }

  async flushed(): Promise<void> {
    await this.lastAppend.catch(() => undefined);
    await this.env.flushed;
  }

  /** Applies every write logged so far to LMDB now; resolves once LMDB has them, synced. */
  async checkpoint(): Promise<void> {
    await this.lastAppend.catch(() => undefined);
    while (this.applying !== undefined) await this.applying;
    if (this.applyTimer !== undefined) clearTimeout(this.applyTimer);
    this.applyTimer = undefined;
    const run = this.apply();
    this.applying = run;
    try {
      await run;
    } finally {
      this.applying = undefined;
    }
    if (this.applyFailure !== undefined) throw this.applyFailure;
    this.applySoon(this.applyIntervalMs);
  }

  /** The commit log's disk writes and the writes they carried (group commit), and writes not yet in LMDB. */
  logStats(): { diskWrites: number; framesWritten: number; unapplied: number } {
    return { diskWrites: this.log.diskWrites, framesWritten: this.log.framesWritten, unapplied: this.pending.size };
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
        if (!replaced) yield [decodeKey(key), decodeRecord(value)];
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
      await this.hintDb.put(hintKey(hint.id), encodeWrite({ key: hint.key, record: hint.record }).bytes);
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
      const { key: hintedKey, record } = decodeWrite(value);
      if (record === undefined) continue;
      out.push({ id, target, key: hintedKey, record, createdAtMs: parsed.createdAtMs });
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
    // a log that failed a write acknowledges nothing more: not a store to send traffic to
    if (this.closed || !this.log.isHealthy()) return false;
    try {
      this.meta.get('node'); // a real read: the environment answers
      return true;
    } catch {
      return false;
    }
  }

  /** Applies every logged write to LMDB (so the next open replays nothing), then closes. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.lastAppend.catch(() => undefined);
    if (this.applyTimer !== undefined) clearTimeout(this.applyTimer);
    this.applyTimer = undefined;
    while (this.applying !== undefined) await this.applying;
    await this.apply();
    await this.log.close();
    await this.env.flushed;
    await this.env.close();
  }
}
