// A record in a few bytes, written once per replica write. One encoding serves three places: the
// commit log (a write: op, key, record), the data database (the record bytes of that same buffer,
// stored as they are: nothing is encoded twice) and the hints database (key and record).
//
//   write:  u8 op (1 put, 2 remove) | u32 key bytes | key (UTF-8) | record (put only)
//   record: u8 format (1) | f64 version.wallMs | u32 version.counter | u16 nodeId bytes | nodeId
//           | u8 flags (1 tombstone, 2 has expiry) | [f64 expiresAt] | [u32 value bytes | value JSON]
//
// Little-endian throughout. The value is the client's JSON text as the node re-serialized it.

import type { Version } from '../core/hlc';
import type { JsonValue, StoredRecord } from '../core/record';

/** One write as the log keeps it: `record` undefined removes the key (a purge, not a client delete). */
export interface LoggedWrite {
  readonly key: string;
  readonly record: StoredRecord | undefined;
}

const OP_PUT = 1;
const OP_REMOVE = 2;
const RECORD_FORMAT = 1;
const FLAG_TOMBSTONE = 1;
const FLAG_EXPIRES = 2;

/** An encoded write: `bytes` holds `headroom` free bytes, then the write; the record starts at `recordAt`. */
export interface EncodedWrite {
  readonly bytes: Buffer;
  readonly recordAt: number;
}

/**
 * Encodes `w` after `headroom` bytes left for the caller (the log's frame header), in one
 * allocation. For a put, `bytes.subarray(recordAt)` is the record alone.
 */
export function encodeWrite(w: LoggedWrite, headroom = 0): EncodedWrite {
  const r = w.record;
  const keyBytes = Buffer.byteLength(w.key, 'utf8');
  if (r === undefined) {
    const out = Buffer.allocUnsafe(headroom + 5 + keyBytes);
    out[headroom] = OP_REMOVE;
    out.writeUInt32LE(keyBytes, headroom + 1);
    out.write(w.key, headroom + 5, 'utf8');
    return { bytes: out, recordAt: out.length };
  }
  const nodeBytes = Buffer.byteLength(r.version.nodeId, 'utf8');
  const valueText = r.deleted ? undefined : JSON.stringify(r.value);
  const valueBytes = valueText === undefined ? 0 : Buffer.byteLength(valueText, 'utf8');
  const recordAt = headroom + 5 + keyBytes;
  const size =
    recordAt + 1 + 8 + 4 + 2 + nodeBytes + 1 + (r.expiresAt !== undefined ? 8 : 0) + (valueText !== undefined ? 4 + valueBytes : 0);
  const out = Buffer.allocUnsafe(size);
  let at = headroom;
  out[at++] = OP_PUT;
  at = out.writeUInt32LE(keyBytes, at);
  at += out.write(w.key, at, 'utf8');
  out[at++] = RECORD_FORMAT;
  at = out.writeDoubleLE(r.version.wallMs, at);
  at = out.writeUInt32LE(r.version.counter, at);
  at = out.writeUInt16LE(nodeBytes, at);
  at += out.write(r.version.nodeId, at, 'utf8');
  out[at++] = (r.deleted ? FLAG_TOMBSTONE : 0) | (r.expiresAt !== undefined ? FLAG_EXPIRES : 0);
  if (r.expiresAt !== undefined) at = out.writeDoubleLE(r.expiresAt, at);
  if (valueText !== undefined) {
    at = out.writeUInt32LE(valueBytes, at);
    at += out.write(valueText, at, 'utf8');
  }
  if (at !== size) throw new Error(`record codec: wrote ${at} of ${size} bytes`);
  return { bytes: out, recordAt };
}

function truncated(at: number, end: number): Error {
  return new Error(`record codec: truncated at byte ${at} of ${end}`);
}

/** The record in buf[start, end); throws on anything encodeWrite cannot have produced. */
export function decodeRecord(buf: Buffer, start = 0, end = buf.length): StoredRecord {
  let at = start;
  if (at + 15 > end) throw truncated(at, end);
  const format = buf[at++];
  if (format !== RECORD_FORMAT) throw new Error(`record codec: unknown record format ${format}`);
  const wallMs = buf.readDoubleLE(at);
  const counter = buf.readUInt32LE(at + 8);
  const nodeBytes = buf.readUInt16LE(at + 12);
  at += 14;
  if (at + nodeBytes + 1 > end) throw truncated(at, end);
  const nodeId = buf.toString('utf8', at, at + nodeBytes);
  at += nodeBytes;
  const flags = buf[at++] as number;
  const version: Version = { wallMs, counter, nodeId };
  let expiresAt: number | undefined;
  if (flags & FLAG_EXPIRES) {
    if (at + 8 > end) throw truncated(at, end);
    expiresAt = buf.readDoubleLE(at);
    at += 8;
  }
  let record: StoredRecord;
  if (flags & FLAG_TOMBSTONE) {
    record = expiresAt === undefined ? { version, deleted: true } : { version, deleted: true, expiresAt };
  } else {
    if (at + 4 > end) throw truncated(at, end);
    const valueBytes = buf.readUInt32LE(at);
    at += 4;
    if (at + valueBytes > end) throw truncated(at, end);
    const value = JSON.parse(buf.toString('utf8', at, at + valueBytes)) as JsonValue;
    at += valueBytes;
    record = expiresAt === undefined ? { version, value } : { version, value, expiresAt };
  }
  if (at !== end) throw new Error(`record codec: ${end - at} bytes after the record`);
  return record;
}

/** The write in buf[start, end); throws on anything encodeWrite cannot have produced. */
export function decodeWrite(buf: Buffer, start = 0, end = buf.length): LoggedWrite {
  let at = start;
  if (at + 5 > end) throw truncated(at, end);
  const op = buf[at++];
  if (op !== OP_PUT && op !== OP_REMOVE) throw new Error(`record codec: unknown op ${op}`);
  const keyBytes = buf.readUInt32LE(at);
  at += 4;
  if (at + keyBytes > end) throw truncated(at, end);
  const key = buf.toString('utf8', at, at + keyBytes);
  at += keyBytes;
  if (op === OP_REMOVE) {
    if (at !== end) throw new Error('record codec: bytes after a remove');
    return { key, record: undefined };
  }
  return { key, record: decodeRecord(buf, at, end) };
}
