// The invariants a run must keep. Each checker returns the violations it found, each naming the
// operations involved, so a failing seed says what went wrong without a re-run.

import { compareVersions, formatVersion, type Version } from '../core/hlc';
import { compareRecords, newest, type StoredRecord } from '../core/record';
import type { FinalState, Op } from './history';

export type CheckerName =
  | 'lost-write'
  | 'stale-read'
  | 'invented-value'
  | 'resurrection'
  | 'ring-disagreement'
  | 'stuck-move'
  | 'under-replicated'
  | 'malformed-message'
  | 'refusal-applied'
  | 'write-order';

export interface Violation {
  checker: CheckerName;
  message: string;
  ops: number[];
}

const fmt = (v: Version | undefined) => (v ? formatVersion(v) : 'nothing');
const isWrite = (o: Op) => o.kind === 'put' || o.kind === 'delete';

function byKey(history: readonly Op[]): Map<string, Op[]> {
  const m = new Map<string, Op[]>();
  for (const o of history) {
    const list = m.get(o.key);
    if (list) list.push(o);
    else m.set(o.key, [o]);
  }
  return m;
}

function newestOnReplicas(final: FinalState, key: string): StoredRecord | undefined {
  return newest((final.get(key) ?? []).map((r) => r.record));
}

/**
 * 1. No acknowledged write is lost: after heal and quiet, the newest record any replica of the key
 * holds is at least as new as every acknowledged write to it.
 */
export function checkNoLostWrites(history: readonly Op[], final: FinalState): Violation[] {
  const out: Violation[] = [];
  const ops = byKey(history);
  for (const o of history) {
    if (!isWrite(o) || o.outcome !== 'ok' || !o.version) continue;
    const held = newestOnReplicas(final, o.key);
    if (held && compareVersions(held.version, o.version) >= 0) continue;
    // Nothing left at all is a purged tombstone when a delete could have been the newest write:
    // an acknowledged one at least as new, or one whose outcome the client never learned.
    if (!held) {
      const deletes = (ops.get(o.key) ?? []).filter((d) => d.kind === 'delete');
      if (
        deletes.some(
          (d) => (d.outcome === 'ok' && d.version && compareVersions(d.version, o.version as Version) >= 0) || d.outcome !== 'ok',
        )
      )
        continue;
    }
    out.push({
      checker: 'lost-write',
      message: `${o.kind} #${o.id} of ${o.key} acknowledged at version ${fmt(o.version)}, but the newest on its replicas is ${fmt(held?.version)}`,
      ops: [o.id],
    });
  }
  return out;
}

/**
 * 2. With R + W > N, a read that starts after a write was acknowledged returns that write or a
 * newer one (by version: last write wins).
 */
export function checkQuorumReads(history: readonly Op[], n: number): Violation[] {
  const out: Violation[] = [];
  for (const [, ops] of byKey(history)) {
    const writes = ops.filter((o) => isWrite(o) && o.outcome === 'ok' && o.version);
    for (const r of ops) {
      if (r.kind !== 'get' || r.outcome !== 'ok' || !r.read) continue;
      let must: Op | undefined;
      for (const w of writes) {
        if (w.end < r.start && w.required + r.required > n && (!must || compareVersions(w.version as Version, must.version as Version) > 0))
          must = w;
      }
      if (!must) continue;
      const got = r.read.record?.version;
      if (!got || compareVersions(got, must.version as Version) < 0) {
        out.push({
          checker: 'stale-read',
          message: `get #${r.id} of ${r.key} (r=${r.required}) returned ${fmt(got)} after ${must.kind} #${must.id} (w=${must.required}) was acknowledged at ${fmt(must.version)}`,
          ops: [must.id, r.id],
        });
      }
    }
  }
  return out;
}

/**
 * 7. Replication holds across moves: every acknowledged write (at W) is held, at its version or a
 * newer one, by at least W of the key's replicas in `final` (what the ring's replicas hold on disk
 * right now). Checked when a join, decommission or removal has finished: streaming must have
 * carried each range to its new replicas (anti-entropy is kept off meanwhile, so it cannot mask a
 * range that was not streamed).
 */
export function checkReplication(history: readonly Op[], final: FinalState): Violation[] {
  const out: Violation[] = [];
  for (const o of history) {
    if (!isWrite(o) || o.outcome !== 'ok' || !o.version) continue;
    const replicas = final.get(o.key) ?? [];
    const holders = replicas.filter((r) => r.record && compareVersions(r.record.version, o.version as Version) >= 0);
    const need = Math.min(o.required, replicas.length);
    if (holders.length < need) {
      out.push({
        checker: 'under-replicated',
        message: `${o.kind} #${o.id} of ${o.key} acknowledged by ${o.required} at ${fmt(o.version)} is on ${holders.length} of its replicas now (${replicas
          .map((r) => `${r.node}: ${fmt(r.record?.version)}`)
          .join(', ')})`,
        ops: [o.id],
      });
    }
  }
  return out;
}

/**
 * 3. Nothing is invented: every value read (or held at the end) was written to that key by some
 * client, and when that write was acknowledged, with the version it was acknowledged with (or an
 * older one from the same coordinator: a write that lost to a newer version at a replica is written
 * again above it, and its first attempt may still be read until the second reaches everyone).
 */
export function checkNothingInvented(history: readonly Op[], final: FinalState): Violation[] {
  const out: Violation[] = [];
  const puts = new Map<string, Op>(); // key \0 value -> put
  for (const o of history) if (o.kind === 'put' && o.value !== undefined) puts.set(`${o.key}\0${o.value}`, o);
  const check = (key: string, record: StoredRecord | undefined, where: string, ops: number[]) => {
    if (!record || record.deleted) return;
    const w = puts.get(`${key}\0${String(record.value)}`);
    if (!w) {
      out.push({
        checker: 'invented-value',
        message: `${where}: ${key} = ${JSON.stringify(record.value)}, which no client wrote to it`,
        ops,
      });
    } else if (
      w.outcome === 'ok' &&
      w.version &&
      compareVersions(w.version, record.version) !== 0 &&
      // an earlier attempt of the same write: written again above a newer version it lost to
      !(record.version.nodeId === w.version.nodeId && compareVersions(record.version, w.version) < 0)
    ) {
      out.push({
        checker: 'invented-value',
        message: `${where}: ${key} = ${JSON.stringify(record.value)} at ${fmt(record.version)}, but put #${w.id} was acknowledged at ${fmt(w.version)}`,
        ops: [...ops, w.id],
      });
    }
  };
  for (const o of history) if (o.kind === 'get' && o.outcome === 'ok' && o.read) check(o.key, o.read.record, `get #${o.id}`, [o.id]);
  for (const [key, replicas] of final) for (const r of replicas) check(key, r.record, `replica ${r.node} at the end`, []);
  return out;
}

/**
 * Acknowledged writes to a key take effect in the order they happened: a write that started after
 * another was acknowledged has the newer version (else it lost as it landed, though the client was
 * told it was written: a coordinator whose clock was behind the key's last version). Promised only
 * between writes whose quorums must meet (W1 + W2 > N): two writes at consistency one can land on
 * different replicas, and then their coordinators' clocks decide, as in Cassandra.
 */
export function checkWriteOrder(history: readonly Op[], n: number): Violation[] {
  const out: Violation[] = [];
  for (const [key, ops] of byKey(history)) {
    const writes = ops.filter((o) => isWrite(o) && o.outcome === 'ok' && o.version);
    if (writes.length < 2) continue;
    const byEnd = [...writes].sort((a, b) => a.end - b.end);
    const byStart = [...writes].sort((a, b) => a.start - b.start);
    let i = 0;
    // the newest acknowledged write so far, by the quorum it was written at
    const newestAt = new Map<number, Op>();
    for (const b of byStart) {
      for (; i < byEnd.length && (byEnd[i] as Op).end < b.start; i++) {
        const a = byEnd[i] as Op;
        const known = newestAt.get(a.required);
        if (!known || compareVersions(a.version as Version, known.version as Version) > 0) newestAt.set(a.required, a);
      }
      let newest: Op | undefined;
      for (const [w, a] of newestAt) {
        if (w + b.required <= n) continue;
        if (!newest || compareVersions(a.version as Version, newest.version as Version) > 0) newest = a;
      }
      if (newest && compareVersions(b.version as Version, newest.version as Version) < 0) {
        out.push({
          checker: 'write-order',
          message: `${key}: ${b.kind} #${b.id} started after ${newest.kind} #${newest.id} was acknowledged, but its version ${fmt(b.version)} is older than ${fmt(newest.version)}: it lost as it landed`,
          ops: [newest.id, b.id],
        });
      }
    }
  }
  return out;
}

/**
 * A write refused as unavailable was decided before any replica was asked: its value must never be
 * read, nor be on any replica at the end (nor reach one later through a hint).
 */
export function checkRefusalsChangeNothing(history: readonly Op[], final: FinalState): Violation[] {
  const out: Violation[] = [];
  const refused = new Map<string, Op>();
  for (const o of history)
    if (o.kind === 'put' && o.outcome === 'unavailable' && o.value !== undefined) refused.set(`${o.key}\0${o.value}`, o);
  if (refused.size === 0) return out;
  const check = (key: string, record: StoredRecord | undefined, where: string, ops: number[]) => {
    if (!record || record.deleted) return;
    const w = refused.get(`${key}\0${String(record.value)}`);
    if (w)
      out.push({
        checker: 'refusal-applied',
        message: `${where}: ${key} = ${JSON.stringify(record.value)}, from put #${w.id}, refused as unavailable`,
        ops: [...ops, w.id],
      });
  };
  for (const o of history) if (o.kind === 'get' && o.outcome === 'ok' && o.read) check(o.key, o.read.record, `get #${o.id}`, [o.id]);
  for (const [key, replicas] of final) for (const r of replicas) check(key, r.record, `replica ${r.node} at the end`, []);
  return out;
}

/**
 * 4. No deleted key comes back while its tombstone is the newest version: no quorum read after an
 * acknowledged delete returns a value older than the tombstone, and no replica set ends with an
 * older value as its newest record.
 */
export function checkNoResurrection(history: readonly Op[], final: FinalState, n: number): Violation[] {
  const out: Violation[] = [];
  for (const [key, ops] of byKey(history)) {
    const deletes = ops.filter((o) => o.kind === 'delete' && o.outcome === 'ok' && o.version);
    if (deletes.length === 0) continue;
    for (const r of ops) {
      const rec = r.read?.record;
      if (r.kind !== 'get' || r.outcome !== 'ok' || !rec || rec.deleted) continue;
      const d = deletes.find(
        (x) => x.end < r.start && x.required + r.required > n && compareVersions(rec.version, x.version as Version) < 0,
      );
      if (d) {
        out.push({
          checker: 'resurrection',
          message: `get #${r.id} of ${key} returned ${JSON.stringify(rec.value)} (${fmt(rec.version)}) after delete #${d.id} was acknowledged at ${fmt(d.version)}`,
          ops: [d.id, r.id],
        });
      }
    }
    const held = newestOnReplicas(final, key);
    if (held && !held.deleted) {
      const d = deletes.find((x) => compareVersions(held.version, x.version as Version) < 0);
      if (d) {
        out.push({
          checker: 'resurrection',
          message: `${key} ends with ${JSON.stringify(held.value)} (${fmt(held.version)}) as its newest record, older than delete #${d.id} at ${fmt(d.version)}`,
          ops: [d.id],
        });
      }
    }
  }
  return out;
}

/** 5. Convergence: the share of keys whose replicas all hold the same record. */
export function convergence(final: FinalState): { keys: number; converged: number; diverged: string[] } {
  let converged = 0;
  const diverged: string[] = [];
  for (const [key, replicas] of final) {
    const first = replicas[0]?.record;
    const same = replicas.every((r) =>
      r.record === undefined ? first === undefined : first !== undefined && compareRecords(r.record, first) === 0,
    );
    if (same) converged++;
    else diverged.push(key);
  }
  return { keys: final.size, converged, diverged };
}

/** 6. Ring agreement: every live node computes the same ring checksum. */
export function checkRingAgreement(checksums: ReadonlyArray<{ node: string; checksum: string }>): Violation[] {
  const distinct = new Set(checksums.map((c) => c.checksum));
  if (distinct.size <= 1) return [];
  return [
    {
      checker: 'ring-disagreement',
      message: `live nodes disagree on the ring: ${checksums.map((c) => `${c.node}=${c.checksum}`).join(' ')}`,
      ops: [],
    },
  ];
}
