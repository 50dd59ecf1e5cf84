// Hash trees over token ranges, for anti-entropy (Dynamo §4.7, Cassandra's repair).
//
// A range (lo, hi] of the ring is split 16 ways per level, by token, down to level 4 (65,536
// leaves). A tree node's hash is the XOR of the digests of the records whose tokens fall in its
// sub-range; XOR makes a node's hash the combination of its children's and lets one scan of the
// range compute any level. Two replicas compare roots; where they differ, the children; and where a
// differing node holds few keys, the keys themselves. Identical replicas exchange one hash per range.
//
// A record's digest covers its key, version, tombstone flag and expiry: two replicas that hold the
// same write have equal digests. Pure: callers scan their store and pass the records in.

import murmurhash3js from 'murmurhash3js';
import { TOKEN_SPACE } from './hash';
import { formatVersion } from './hlc';
import type { StoredRecord } from './record';

export const FANOUT = 16;
export const MAX_LEVEL = 4;
/** A differing node with at most this many keys (on either side) is settled key by key. */
export const LEAF_KEYS = 8;

/** A ring range (lo, hi]; lo === hi is the whole ring. */
export interface TokenRange {
  lo: number;
  hi: number;
}

export function rangeWidth(r: TokenRange): number {
  const w = (r.hi - r.lo + TOKEN_SPACE) % TOKEN_SPACE;
  return w === 0 ? TOKEN_SPACE : w;
}

export function inRange(r: TokenRange, token: number): boolean {
  const offset = (token - r.lo - 1 + TOKEN_SPACE) % TOKEN_SPACE;
  return offset < rangeWidth(r);
}

/** Index of the node at `level` whose sub-range holds `token` (token must be in the range). */
export function bucketOf(r: TokenRange, token: number, level: number): number {
  const offset = (token - r.lo - 1 + TOKEN_SPACE) % TOKEN_SPACE;
  return Math.min(FANOUT ** level - 1, Math.floor((offset / rangeWidth(r)) * FANOUT ** level));
}

/**
 * Digests already computed, per record object: records are immutable, and an in-memory store hands
 * out the same object until the key is written again, so repeated scans hash each record once.
 */
const digests = new WeakMap<StoredRecord, { key: string; digest: [number, number] }>();

/** The 64-bit digest of a record, as two unsigned 32-bit halves. */
export function recordDigest(key: string, r: StoredRecord): [number, number] {
  const cached = digests.get(r);
  if (cached && cached.key === key) return cached.digest;
  const text = `${key}\u0000${formatVersion(r.version)}\u0000${r.deleted ? 'd' : 'v'}\u0000${r.expiresAt ?? ''}`;
  const digest: [number, number] = [murmurhash3js.x86.hash32(text, 0x5bd1e995) >>> 0, murmurhash3js.x86.hash32(text, 0x1b873593) >>> 0];
  digests.set(r, { key, digest });
  return digest;
}

export function digestHex(d: readonly [number, number]): string {
  return d[0].toString(16).padStart(8, '0') + d[1].toString(16).padStart(8, '0');
}

export interface NodeSummary {
  /** XOR of the digests below, as 16 hex digits ("0000000000000000" when empty). */
  hash: string;
  count: number;
}

export interface DigestedRecord {
  key: string;
  token: number;
  record: StoredRecord;
}

/**
 * Hashes of the nodes at `level` (all of them, or only the children of `parents`, the indices of
 * differing nodes one level up), from one pass over the range's records. Empty nodes are left out.
 */
export function levelHashes(
  records: Iterable<DigestedRecord>,
  r: TokenRange,
  level: number,
  parents?: ReadonlySet<number>,
): Map<number, NodeSummary> {
  const acc = new Map<number, { a: number; b: number; count: number }>();
  for (const { key, token, record } of records) {
    const index = bucketOf(r, token, level);
    if (parents && level > 0 && !parents.has(Math.floor(index / FANOUT))) continue;
    const [a, b] = recordDigest(key, record);
    const cur = acc.get(index);
    if (cur) {
      cur.a = (cur.a ^ a) >>> 0;
      cur.b = (cur.b ^ b) >>> 0;
      cur.count++;
    } else acc.set(index, { a, b, count: 1 });
  }
  const out = new Map<number, NodeSummary>();
  for (const [i, v] of acc) out.set(i, { hash: digestHex([v.a, v.b]), count: v.count });
  return out;
}

export const EMPTY_HASH = '0000000000000000';

/** Indices whose summaries differ between two sides (a node missing on one side counts as empty). */
export function differing(mine: ReadonlyMap<number, NodeSummary>, theirs: ReadonlyMap<number, NodeSummary>): number[] {
  const out: number[] = [];
  for (const i of new Set([...mine.keys(), ...theirs.keys()])) {
    if ((mine.get(i)?.hash ?? EMPTY_HASH) !== (theirs.get(i)?.hash ?? EMPTY_HASH)) out.push(i);
  }
  return out.sort((a, b) => a - b);
}
