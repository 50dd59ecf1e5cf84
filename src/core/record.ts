// What a replica stores for a key, and the last-write-wins rule between two of them.

import { compareVersions, isVersion, type Version } from './hlc';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A live value or a tombstone (deleted: true, no value). */
export interface StoredRecord {
  readonly version: Version;
  readonly value?: JsonValue;
  readonly deleted?: true;
  /** Wall-clock ms after which a live value reads as absent (a TTL); kept with the write. */
  readonly expiresAt?: number;
}

export function liveRecord(value: JsonValue, version: Version, expiresAt?: number): StoredRecord {
  return expiresAt === undefined ? { value, version } : { value, version, expiresAt };
}

/** A live value past its TTL: it reads as absent everywhere, like a tombstone with the same version. */
export function isExpired(r: StoredRecord, nowMs: number): boolean {
  return !r.deleted && r.expiresAt !== undefined && r.expiresAt <= nowMs;
}

/**
 * A tombstone, or an expired value, older than the grace period can be purged: repair has had that
 * long to spread it to every replica (Cassandra's gc_grace_seconds). Purging earlier would let a
 * replica that missed the delete bring the old value back.
 */
export function isPurgeable(r: StoredRecord, nowMs: number, graceMs: number): boolean {
  if (r.deleted) return r.version.wallMs + graceMs < nowMs;
  return r.expiresAt !== undefined && r.expiresAt + graceMs < nowMs;
}

export function tombstone(version: Version): StoredRecord {
  return { version, deleted: true };
}

/**
 * Last write wins: the higher version. Two different records with the same version can only
 * come from a coordinator whose clock went backwards across a restart; Cassandra's rule breaks
 * that tie so every replica picks the same one: the tombstone, then the greater serialized value.
 */
export function compareRecords(a: StoredRecord, b: StoredRecord): -1 | 0 | 1 {
  const byVersion = compareVersions(a.version, b.version);
  if (byVersion !== 0) return byVersion;
  if (a.deleted !== b.deleted) return a.deleted ? 1 : -1;
  if (a.deleted) return 0;
  // the common tie: one write's record, read back from two replicas (equal strings, numbers, the
  // same object): equal without serializing both
  if (a.value === b.value) return 0;
  const av = JSON.stringify(a.value);
  const bv = JSON.stringify(b.value);
  if (av === bv) return 0;
  return av < bv ? -1 : 1;
}

/** True when `incoming` should replace `current` on a replica. */
export function supersedes(incoming: StoredRecord, current: StoredRecord | undefined): boolean {
  return current === undefined || compareRecords(incoming, current) > 0;
}

/** The newest of some records (undefined when there are none). */
export function newest(records: Iterable<StoredRecord | undefined>): StoredRecord | undefined {
  let best: StoredRecord | undefined;
  for (const r of records) if (r !== undefined && supersedes(r, best)) best = r;
  return best;
}

/** Shape check for records that arrive from the network. */
export function isStoredRecord(r: unknown): r is StoredRecord {
  if (typeof r !== 'object' || r === null) return false;
  const o = r as Record<string, unknown>;
  if (!isVersion(o.version)) return false;
  if (o.expiresAt !== undefined && !(Number.isSafeInteger(o.expiresAt) && (o.expiresAt as number) > 0)) return false;
  if (o.deleted === true) return o.value === undefined && o.expiresAt === undefined;
  return o.deleted === undefined && 'value' in o && o.value !== undefined;
}
