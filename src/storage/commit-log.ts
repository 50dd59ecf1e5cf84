// The commit log: where a replica's write becomes durable before it is acknowledged, with one
// synchronous disk write per group of writes, before LMDB has it.
//
// Why a log in front of LMDB. An LMDB commit syncs twice (its data pages, then its meta page), and
// a quorum write waits for the slower of W replicas' commits. A log append is one sequential write
// of a few hundred bytes to blocks that already exist, made with O_DSYNC: one sync. LMDB then takes
// the writes in batches (the store applies them every few tens of milliseconds, each batch one
// ordinary, synced LMDB commit: LMDB never runs without its syncs, so it is never left corrupt).
//
// Why it is safe (the argument the store and this file keep together):
//  1. A write is acknowledged only once its frame, and every frame before it, is on disk: one disk
//     write is in flight at a time, each covering the frames appended since the last, in order.
//  2. The store applies logged writes to LMDB in log order, and each batch's transaction also
//     records how far it reached (`appliedThrough`, a log position). LMDB's transaction makes the
//     pair atomic: after any crash, LMDB holds exactly the writes up to that position.
//  3. On open, every valid frame after `appliedThrough` is replayed in order, then committed with
//     the new position. So LMDB ends with every acknowledged write, applied in the order written.
//     A frame can hold a write that lost to a newer version of its key (the store logs a write
//     before it checks the version, so the disk write starts sooner): the replay applies a write
//     only if it supersedes what the key holds by then, as the replica did when it arrived, so a
//     write that lost stays lost.
//  4. A segment is reused only once `appliedThrough` has passed it. Reusing means writing a new
//     header (a higher sequence number) and syncing it before any frame in it is acknowledged;
//     frames carry their segment's sequence number inside their checksum, so frames left from
//     the segment's earlier use read as the end of the log, never as writes.
//
// Segments are preallocated and zero-filled, so an append changes no file size or extent: the
// O_DSYNC write syncs data only (no journal commit), which is what makes it one sync.
//
// Disk writes go through libuv's thread pool, so the event loop goes on while one is under way.
// Except a lone write (one message in hand, see scheduleKick) while the disk is fast: the pool's
// hand-off costs it two thread wake-ups, the pool thread's and then the loop's, each paid in full on
// a virtual CPU that was idle, and there is nothing else for the loop to do meanwhile. So it is
// written on the loop's own thread. A disk write that takes longer than `loopWriteMaxMs` sends the
// lone writes back to the pool until one written there comes back within it: a slow disk stalls
// the loop for one write, not for every write while it is slow.
//
// Layout. Segment: header (magic, u32 seq, u32 crc32 of both) in its first 4 KiB, frames from 4 KiB.
// Frame: u32 payload bytes | u32 crc32 of (seq ‖ payload) | u32 seq | payload (record-codec's write).

import {
  closeSync,
  constants,
  promises as fsp,
  fstatSync,
  fsyncSync,
  openSync,
  readdirSync,
  readSync,
  rmSync,
  write as writeAsync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { decodeWrite, type EncodedWrite, type LoggedWrite } from './record-codec';

/** A point in the log: the end of a frame in segment `seq`. */
export interface LogPosition {
  readonly seq: number;
  readonly offset: number;
}

export interface CommitLogOptions {
  dir: string;
  /** Bytes per segment; a frame never spans two, so it bounds the largest write. */
  segmentBytes: number;
  /** Segments kept at most; when all hold writes LMDB has not applied, appends wait. */
  maxSegments: number;
  /** Appends allowed to wait for a free segment; more are refused. */
  maxWaitingAppends: number;
  /** Called when appends are waiting for LMDB to catch up (the store applies at once). */
  onPressure: () => void;
  /** Whether the node has one message or none in hand: only then may a lone write go to disk at once (always, when not given). */
  alone?: () => boolean;
  /** A lone write is written on the event loop's thread while the last disk write took at most this (default LOOP_WRITE_MAX_MS). */
  loopWriteMaxMs?: number;
}

/** Milliseconds a disk write may take for the next lone write to be made on the event loop's thread. */
export const LOOP_WRITE_MAX_MS = 2;

/** Bytes before a frame's payload: length, checksum, segment seq. */
export const FRAME_HEADER_BYTES = 12;
const HEADER_BYTES = 4096;
const MAGIC = Buffer.from('QKVLOG01', 'latin1');
const ZEROS = Buffer.alloc(1 << 20);

interface Segment {
  readonly slot: number;
  readonly fd: number;
  /** Sequence number of its current use; 0 when it holds no valid header. */
  seq: number;
}

/** One disk write: a header, or the frames appended in one turn or while the last write was in flight. */
interface Batch {
  readonly segment: Segment;
  readonly offset: number;
  readonly chunks: Buffer[];
  bytes: number;
  readonly waiters: Array<{ resolve: (p: LogPosition) => void; reject: (e: Error) => void; position: LogPosition }>;
}

interface Waiting {
  readonly frame: EncodedWrite;
  readonly resolve: (p: LogPosition) => void;
  readonly reject: (e: Error) => void;
}

export interface Replayed {
  readonly write: LoggedWrite;
  readonly position: LogPosition;
}

function segmentPath(dir: string, slot: number): string {
  return join(dir, `segment-${String(slot).padStart(4, '0')}.log`);
}

function headerBytes(seq: number): Buffer {
  const h = Buffer.alloc(16);
  MAGIC.copy(h, 0);
  h.writeUInt32LE(seq, 8);
  h.writeUInt32LE(crc32(h.subarray(0, 12)), 12);
  return h;
}

function readHeaderSeq(fd: number): number {
  const h = Buffer.alloc(16);
  if (readSync(fd, h, 0, 16, 0) !== 16) return 0;
  if (!h.subarray(0, 8).equals(MAGIC) || crc32(h.subarray(0, 12)) !== h.readUInt32LE(12)) return 0;
  return h.readUInt32LE(8);
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export class CommitLog {
  private readonly queue: Batch[] = [];
  private writing = false;
  /** The batch on its way to disk (queue[0] while writing): nothing more joins it. */
  private inFlight: Batch | undefined;
  private kickScheduled = false;
  /** Frames the last disk write of frames carried (headers aside): more than one, and appends wait for the turn's end. */
  private lastWriteFrames = 0;
  /** The last disk write took at most loopWriteMaxMs: a lone write may be made on the loop's thread. */
  private diskFast = true;
  /** A write was made on the loop's thread this turn: what the turn appends after it waits for the turn's end. */
  private loopWroteThisTurn = false;
  private readonly turnEnded = (): void => {
    this.loopWroteThisTurn = false;
  };
  private readonly waiting: Waiting[] = [];
  /**
   * The segment appends go to; none at open when every segment holds writes still to replay (the
   * first append then chooses one, after the store has applied them and freed their segments).
   */
  private active: Segment | undefined;
  private writeOffset = HEADER_BYTES;
  private nextSeq: number;
  /** Where LMDB has applied through: segments before its seq can be reused. */
  private appliedSeq: number;
  private failure: Error | undefined;
  private closed = false;
  /** Slot number the next new segment file takes. */
  private nextSlot: number;
  /** A spare segment being made in the background (so moving on never waits for a new file). */
  private makingSpare: Promise<void> | undefined;
  private idle: Array<() => void> = [];
  /** Disk writes made and frames they carried, for the benchmark's report; the writes made on the loop's thread. */
  diskWrites = 0;
  framesWritten = 0;
  loopWrites = 0;

  private constructor(
    private readonly options: CommitLogOptions,
    private readonly segments: Segment[],
    maxSeq: number,
    appliedSeq: number,
  ) {
    this.nextSeq = maxSeq + 1;
    this.appliedSeq = appliedSeq;
    this.nextSlot = segments.reduce((m, s) => Math.max(m, s.slot + 1), 0);
    // a segment that holds nothing unapplied (or a new file) is made ready now, at start-up, not
    // on the first write; when every segment holds writes still to replay, the first append
    // chooses one, once the store has applied them
    const free = this.freeSegment();
    if (free !== undefined) {
      this.active = free;
      this.startSegment(free);
    }
  }

  /**
   * Opens the log in `options.dir` (which must exist) and returns it with the writes logged after
   * `appliedThrough`, in log order. The caller applies those to LMDB, with their last position as
   * the new appliedThrough, before it calls applied() with that position.
   */
  static open(options: CommitLogOptions, appliedThrough: LogPosition | undefined): { log: CommitLog; replay: Replayed[] } {
    if (options.segmentBytes < HEADER_BYTES * 2 || options.segmentBytes % HEADER_BYTES !== 0) {
      throw new Error(`commit log: segmentBytes must be a multiple of ${HEADER_BYTES}, at least ${HEADER_BYTES * 2}`);
    }
    const slots = readdirSync(options.dir)
      .map((name) => /^segment-(\d{4})\.log$/.exec(name))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    const segments: Segment[] = [];
    for (const slot of slots) {
      const fd = openSync(segmentPath(options.dir, slot), constants.O_RDWR | constants.O_DSYNC);
      segments.push({ slot, fd, seq: readHeaderSeq(fd) });
    }
    const applied = appliedThrough ?? { seq: 0, offset: HEADER_BYTES };
    const replay: Replayed[] = [];
    const live = segments.filter((s) => s.seq !== 0 && s.seq >= applied.seq).sort((a, b) => a.seq - b.seq);
    for (const s of live) {
      // the whole file: a node restarted with a smaller --max-value-bytes has smaller segments now
      const size = fstatSync(s.fd).size;
      const buf = Buffer.allocUnsafe(size);
      const n = readSync(s.fd, buf, 0, size, 0);
      let at = s.seq === applied.seq ? applied.offset : HEADER_BYTES;
      for (;;) {
        if (at + FRAME_HEADER_BYTES > n) break;
        const len = buf.readUInt32LE(at);
        const end = at + FRAME_HEADER_BYTES + len;
        if (len === 0 || end > n || buf.readUInt32LE(at + 8) !== s.seq) break;
        if (crc32(buf.subarray(at + 8, end)) !== buf.readUInt32LE(at + 4)) break;
        replay.push({ write: decodeWrite(buf, at + FRAME_HEADER_BYTES, end), position: { seq: s.seq, offset: end } });
        at = end;
      }
    }
    const maxSeq = segments.reduce((m, s) => Math.max(m, s.seq), 0);
    // until the caller has applied the replayed writes, only segments already applied are free
    const log = new CommitLog(options, segments, maxSeq, applied.seq);
    return { log, replay };
  }

  /**
   * Appends a write encoded with FRAME_HEADER_BYTES of headroom (encodeWrite(w, FRAME_HEADER_BYTES));
   * resolves with its position once it and every write appended before it are on disk.
   */
  append(frame: EncodedWrite): Promise<LogPosition> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new Error('commit log: closed'));
    return new Promise((resolve, reject) => {
      // behind appends already waiting, or when no segment has room: wait for one
      if (this.waiting.length > 0 || !this.place(frame, resolve, reject)) this.wait({ frame, resolve, reject });
    });
  }

  /** LMDB has applied (and synced) every write up to `position`: segments before it are free. */
  applied(position: LogPosition): void {
    if (position.seq > this.appliedSeq) this.appliedSeq = position.seq;
    this.placeWaiting();
  }

  /** Places the appends waiting for a segment, in order, as far as segments allow. */
  private placeWaiting(): void {
    while (this.waiting.length > 0 && this.failure === undefined) {
      const w = this.waiting[0] as Waiting;
      if (!this.place(w.frame, w.resolve, w.reject)) break;
      this.waiting.shift();
    }
  }

  /** Resolves once every write appended so far is on disk (or the log failed). */
  drained(): Promise<void> {
    if (!this.writing && this.queue.length === 0 && this.waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** False once a disk write failed: nothing more is acknowledged (the data may be on disk or not). */
  isHealthy(): boolean {
    return this.failure === undefined && !this.closed;
  }

  /** Writes waiting for LMDB to catch up before they can be placed. */
  waitingCount(): number {
    return this.waiting.length;
  }

  async close(): Promise<void> {
    await this.drained();
    await this.makingSpare;
    this.closed = true;
    for (const w of this.waiting.splice(0)) w.reject(new Error('commit log: closed'));
    for (const s of this.segments) closeSync(s.fd);
  }

  private wait(w: Waiting): void {
    if (this.waiting.length >= this.options.maxWaitingAppends) {
      w.reject(new Error(`commit log: full (${this.options.maxSegments} segments not yet applied to the database)`));
      return;
    }
    this.waiting.push(w);
    this.options.onPressure();
  }

  /**
   * Gives the frame its place in the active segment (starting a new one if needed), or refuses it
   * (too large); false, with nothing done, when it needs a new segment and none is free.
   */
  private place(frame: EncodedWrite, resolve: (p: LogPosition) => void, reject: (e: Error) => void): boolean {
    const bytes = frame.bytes;
    const payload = bytes.length - FRAME_HEADER_BYTES;
    if (HEADER_BYTES + bytes.length > this.options.segmentBytes) {
      reject(new Error(`commit log: a write of ${payload} bytes does not fit a ${this.options.segmentBytes}-byte segment`));
      return true;
    }
    let seg = this.active;
    if (seg === undefined || this.writeOffset + bytes.length > this.options.segmentBytes) {
      const next = this.freeSegment();
      if (next === undefined) return false;
      seg = next;
      this.active = next;
      this.startSegment(next);
    }
    bytes.writeUInt32LE(payload, 0);
    bytes.writeUInt32LE(seg.seq, 8);
    bytes.writeUInt32LE(crc32(bytes.subarray(8)), 4);
    const offset = this.writeOffset;
    this.writeOffset += bytes.length;
    if (this.writeOffset * 2 > this.options.segmentBytes) this.spareSoon();
    let batch = this.queue[this.queue.length - 1];
    if (batch === undefined || batch === this.inFlight || batch.segment !== seg || batch.offset + batch.bytes !== offset) {
      batch = { segment: seg, offset, chunks: [], bytes: 0, waiters: [] };
      this.queue.push(batch);
    }
    batch.chunks.push(bytes);
    batch.bytes += bytes.length;
    batch.waiters.push({ resolve, reject, position: { seq: seg.seq, offset: offset + bytes.length } });
    this.scheduleKick();
    return true;
  }

  /** A segment that holds nothing LMDB lacks: never used, or used before appliedThrough's segment. */
  private freeSegment(): Segment | undefined {
    const free = this.segments.find((s) => s !== this.active && (s.seq === 0 || s.seq < this.appliedSeq));
    if (free !== undefined) return free;
    if (this.segments.length >= this.options.maxSegments) return undefined;
    return this.createSegment();
  }

  /** A new zero-filled segment file, made here and now (when no spare was ready). */
  private createSegment(): Segment {
    const slot = this.nextSlot++;
    const path = segmentPath(this.options.dir, slot);
    const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL);
    try {
      for (let at = 0; at < this.options.segmentBytes; at += ZEROS.length) {
        writeSync(fd, ZEROS, 0, Math.min(ZEROS.length, this.options.segmentBytes - at), at);
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    fsyncDir(this.options.dir);
    const seg: Segment = { slot, fd: openSync(path, constants.O_RDWR | constants.O_DSYNC), seq: 0 };
    this.segments.push(seg);
    return seg;
  }

  /**
   * Makes a spare segment in the background once the active one is half full and none is free, so
   * moving on to the next segment does not stop the event loop for a new file.
   */
  private spareSoon(): void {
    if (this.makingSpare !== undefined || this.closed || this.segments.length >= this.options.maxSegments) return;
    if (this.segments.some((s) => s !== this.active && (s.seq === 0 || s.seq < this.appliedSeq))) return;
    const slot = this.nextSlot++;
    const path = segmentPath(this.options.dir, slot);
    const make = async (): Promise<void> => {
      const handle = await fsp.open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL);
      try {
        for (let at = 0; at < this.options.segmentBytes; at += ZEROS.length) {
          await handle.write(ZEROS, 0, Math.min(ZEROS.length, this.options.segmentBytes - at), at);
        }
        await handle.sync();
      } finally {
        await handle.close();
      }
      const dir = await fsp.open(this.options.dir, 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
      // closed meanwhile, or the log made a segment of its own while this one was on its way (it
      // could not wait): the log keeps at most maxSegments files
      if (this.closed || this.segments.length >= this.options.maxSegments) {
        await fsp.rm(path, { force: true });
        return;
      }
      this.segments.push({ slot, fd: openSync(path, constants.O_RDWR | constants.O_DSYNC), seq: 0 });
    };
    this.makingSpare = make()
      .catch(() => {
        // not fatal: the next move to a new segment makes its file then, or reports the failure
        rmSync(path, { force: true });
      })
      .finally(() => {
        this.makingSpare = undefined;
        // appends that found no segment while it was being made can have it now
        this.placeWaiting();
      });
  }

  /** Gives `seg` the next seq; its header is written (and synced) before any frame placed after it. */
  private startSegment(seg: Segment): void {
    seg.seq = this.nextSeq++;
    this.writeOffset = HEADER_BYTES;
    this.queue.push({ segment: seg, offset: 0, chunks: [headerBytes(seg.seq)], bytes: 16, waiters: [] });
    this.scheduleKick();
  }

  private scheduleKick(): void {
    if (this.kickScheduled || this.writing) return;
    if (this.lastWriteFrames <= 1 && !this.loopWroteThisTurn && (this.options.alone?.() ?? true)) {
      // a lone write (the node has one message in hand, the last disk write carried one frame, and
      // none is in flight): to disk now, not after the rest of this turn, and on this thread while
      // the disk is fast. What this turn appends after it waits for it, and goes in the next disk
      // write: at its completion when it went to the pool, at the turn's end when it did not.
      this.kick(this.diskFast);
      return;
    }
    this.kickScheduled = true;
    // after every I/O callback of this turn: the writes of one turn leave in one disk write
    setImmediate(this.kick);
  }

  /** Writes the first batch queued, if none is in flight: on this thread (`onLoop`), or the pool's. */
  private readonly kick = (onLoop = false): void => {
    this.kickScheduled = false;
    if (this.writing) return;
    const batch = this.queue[0];
    if (batch === undefined) {
      for (const f of this.idle.splice(0)) f();
      return;
    }
    this.writing = true;
    this.inFlight = batch;
    const buf = batch.chunks.length === 1 ? (batch.chunks[0] as Buffer) : Buffer.concat(batch.chunks, batch.bytes);
    const began = performance.now();
    const done = (err: Error | null, written: number) => {
      this.diskFast = performance.now() - began <= (this.options.loopWriteMaxMs ?? LOOP_WRITE_MAX_MS);
      this.queue.shift();
      this.writing = false;
      this.inFlight = undefined;
      const failure =
        err ?? (written !== batch.bytes ? new Error(`commit log: short write (${written} of ${batch.bytes} bytes)`) : undefined);
      if (failure !== undefined) {
        this.fail(failure);
        return;
      }
      this.diskWrites++;
      this.framesWritten += batch.waiters.length;
      if (batch.waiters.length > 0) this.lastWriteFrames = batch.waiters.length;
      for (const w of batch.waiters) w.resolve(w.position);
      this.kick();
    };
    if (!onLoop) {
      writeAsync(batch.segment.fd, buf, 0, batch.bytes, batch.offset, done);
      return;
    }
    this.loopWrites++;
    this.loopWroteThisTurn = true;
    setImmediate(this.turnEnded);
    let written = 0;
    let error: Error | null = null;
    try {
      written = writeSync(batch.segment.fd, buf, 0, batch.bytes, batch.offset);
    } catch (err) {
      error = err instanceof Error ? err : new Error(String(err));
    }
    done(error, written);
  };

  private fail(err: Error): void {
    // after a failed write the file's state is unknown: nothing more is written or acknowledged
    this.failure = new Error(`commit log: disk write failed: ${err.message}`);
    for (const b of this.queue.splice(0)) for (const w of b.waiters) w.reject(this.failure);
    for (const w of this.waiting.splice(0)) w.reject(this.failure);
    for (const f of this.idle.splice(0)) f();
  }
}
