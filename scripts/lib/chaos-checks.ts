// What the chaos campaign (scripts/chaos.ts) checks, as pure functions of what it recorded: every
// client operation with its outcome, and after the faults healed and the replicas converged, every
// key read at consistency=all and from each replica's own store. Nothing here talks to a node.
//
// The workload makes each rule checkable (one writer per key, so "the last acknowledged value" is
// well defined):
//   - unique keys `u…`, written once: an acknowledged write must survive, unless a delete of it may
//     have been applied; a write refused as unavailable must never become visible;
//   - deletes of keys whose write was acknowledged: an acknowledged delete must never be undone;
//   - registers `reg-…`: one client writes 1, 2, 3, … and reads each back. A read must return at
//     least the last value acknowledged before it began (R + W > N), never less than the client's
//     previous read, and at the end the register must hold at least the last acknowledged value.
// And for every key: the replicas hold identical records, and no read returns a value never written.

import type { StoredRecord } from '../../src/core/record';

export type OpKind = 'write' | 'delete' | 'reg-write' | 'reg-read';
/**
 * ok: 2xx; not_found: 404 on a read; unavailable: 503 refused before anything was sent
 * (may_have_been_applied: false); quorum_not_met: 503 after sending, may have been applied;
 * error: no reply (connection refused or reset, or the client's deadline); other: any other reply.
 */
export type Outcome = 'ok' | 'not_found' | 'unavailable' | 'quorum_not_met' | 'error' | 'other';
export const OUTCOMES: readonly Outcome[] = ['ok', 'not_found', 'unavailable', 'quorum_not_met', 'error', 'other'];

export interface Op {
  id: number;
  client: string;
  kind: OpKind;
  key: string;
  /** write: the value sent; reg-write: the counter sent; reg-read: the counter read (null on a 404). */
  value?: string | number | null;
  /** The node that coordinated it (the one the request went to). */
  coordinator: string;
  /** Milliseconds since the campaign began. */
  startMs: number;
  endMs: number;
  outcome: Outcome;
  /** HTTP status; absent when no reply came. */
  status?: number;
  /** The error code of the reply, or the network error. */
  code?: string;
  /** The version in the reply (ok writes and reads). */
  version?: string;
  /** Index of the fault under way when it started; -1 in quiet time. */
  fault: number;
}

export interface FinalKey {
  /** Read at consistency=all once the replicas converged: the status and the value or tombstone. */
  all: { status: number; value?: unknown; version?: string } | { error: string };
  /** Each node's own record for the key, in node order; null when it holds nothing. */
  replicas: Array<StoredRecord | null>;
}

export type ViolationKind =
  | 'lost-write'
  | 'resurrected-delete'
  | 'lost-update'
  | 'stale-read'
  | 'read-went-backwards'
  | 'refused-visible'
  | 'invented-value'
  | 'divergent-replicas'
  | 'final-read-failed'
  /** Not from the history: a node that exited when no fault stopped it, a campaign that could not finish. */
  | 'node-crashed'
  | 'campaign-aborted';

export interface Violation {
  kind: ViolationKind;
  key: string;
  message: string;
}

const show = (r: StoredRecord | null): string =>
  r === null
    ? 'nothing'
    : `${r.deleted ? 'tombstone' : JSON.stringify(r.value)} @${r.version.wallMs}.${r.version.counter}@${r.version.nodeId}`;

/** Replicas hold the same record (same version and content), or all hold nothing. */
export function identical(replicas: Array<StoredRecord | null>): boolean {
  const canon = replicas.map((r) =>
    r === null ? 'null' : JSON.stringify([r.version, r.deleted ?? false, r.value ?? null, r.expiresAt ?? null]),
  );
  return new Set(canon).size <= 1;
}

const describeOp = (o: Op | undefined): string =>
  o === undefined
    ? 'no write of it'
    : `op ${o.id} ${o.kind} ${JSON.stringify(o.value)} via ${o.coordinator} at ${(o.startMs / 1000).toFixed(2)}s: ${o.outcome}` +
      `${o.code ? ` (${o.code})` : ''}${o.version ? ` version ${o.version}` : ''}${o.fault >= 0 ? ` during fault #${o.fault}` : ''}`;

function finalDescription(f: FinalKey): string {
  const all = 'error' in f.all ? `failed: ${f.all.error}` : `${f.all.status} ${JSON.stringify(f.all.value ?? null)}`;
  return `read at all: ${all}; replicas: ${f.replicas.map(show).join(' | ')}`;
}

export function check(ops: readonly Op[], finals: ReadonlyMap<string, FinalKey>): Violation[] {
  const out: Violation[] = [];
  const byKey = new Map<string, Op[]>();
  for (const o of ops) {
    const list = byKey.get(o.key);
    if (list) list.push(o);
    else byKey.set(o.key, [o]);
  }

  for (const [key, f] of finals) {
    if (!identical(f.replicas)) out.push({ kind: 'divergent-replicas', key, message: finalDescription(f) });
    if ('error' in f.all) out.push({ kind: 'final-read-failed', key, message: finalDescription(f) });
  }

  for (const [key, list] of byKey) {
    const f = finals.get(key);
    if (f === undefined) continue;
    if (list.some((o) => o.kind === 'write')) checkUniqueKey(key, list, f, out);
    else checkRegister(key, list, f, out);
  }
  return out;
}

function checkUniqueKey(key: string, list: Op[], f: FinalKey, out: Violation[]): void {
  const write = list.find((o) => o.kind === 'write') as Op;
  const deletes = list.filter((o) => o.kind === 'delete');
  const finalValue = 'error' in f.all || f.all.status !== 200 ? undefined : f.all.value;
  const live = f.replicas.filter((r) => r !== null && !r.deleted);
  const context = () => `${describeOp(write)}; ${deletes.map(describeOp).join('; ') || 'no delete'}; ${finalDescription(f)}`;

  if (write.outcome === 'unavailable' && (finalValue !== undefined || f.replicas.some((r) => r !== null)))
    out.push({ kind: 'refused-visible', key, message: context() });
  // one report per key, whether the read at all or only a replica shows the foreign value
  if ((finalValue !== undefined && finalValue !== write.value) || live.some((r) => r?.value !== write.value))
    out.push({ kind: 'invented-value', key, message: context() });

  if (deletes.some((d) => d.outcome === 'ok')) {
    if (finalValue !== undefined || live.length > 0) out.push({ kind: 'resurrected-delete', key, message: context() });
    return;
  }
  // a delete refused as unavailable changed nothing; any other may have been applied
  const mayBeDeleted = deletes.some((d) => d.outcome !== 'unavailable');
  if (write.outcome === 'ok' && !mayBeDeleted && finalValue !== write.value) out.push({ kind: 'lost-write', key, message: context() });
}

function checkRegister(key: string, list: Op[], f: FinalKey, out: Violation[]): void {
  const ordered = [...list].sort((a, b) => a.startMs - b.startMs || a.id - b.id);
  const writes = ordered.filter((o) => o.kind === 'reg-write');
  const byValue = new Map(writes.map((w) => [w.value as number, w]));
  const refused = new Set(writes.filter((w) => w.outcome === 'unavailable').map((w) => w.value as number));
  const acked = writes.filter((w) => w.outcome === 'ok');
  const lastAckedBefore = (ms: number) => acked.filter((w) => w.endMs <= ms).reduce((m, w) => Math.max(m, w.value as number), 0);

  const seen = (value: number, where: string, o?: Op) => {
    if (value <= 0) return;
    const w = byValue.get(value);
    if (w === undefined)
      out.push({ kind: 'invented-value', key, message: `${where} ${value}, never written${o ? `: ${describeOp(o)}` : ''}` });
    else if (refused.has(value)) out.push({ kind: 'refused-visible', key, message: `${where} ${value}: ${describeOp(w)}` });
  };

  let highest: Op | undefined; // the read that returned the most so far
  for (const r of ordered) {
    if (r.kind !== 'reg-read' || (r.outcome !== 'ok' && r.outcome !== 'not_found')) continue;
    const v = typeof r.value === 'number' ? r.value : 0;
    seen(v, 'read', r);
    const floor = lastAckedBefore(r.startMs);
    if (v < floor)
      out.push({
        kind: 'stale-read',
        key,
        message: `${describeOp(r)} after ${floor} was acknowledged (${describeOp(byValue.get(floor))}); the value read was ${describeOp(byValue.get(v))}`,
      });
    const before = typeof highest?.value === 'number' ? highest.value : 0;
    if (v < before)
      out.push({ kind: 'read-went-backwards', key, message: `${describeOp(r)} after the client read ${before} (${describeOp(highest)})` });
    else highest = r;
  }

  const finalValue = 'error' in f.all || f.all.status !== 200 || typeof f.all.value !== 'number' ? 0 : f.all.value;
  seen(finalValue, 'final value');
  const lastAcked = acked.reduce<Op | undefined>(
    (m, w) => (m === undefined || (w.value as number) > (m.value as number) ? w : m),
    undefined,
  );
  if (lastAcked && finalValue < (lastAcked.value as number))
    out.push({
      kind: 'lost-update',
      key,
      message: `last acknowledged ${describeOp(lastAcked)}; ${finalDescription(f)}; the surviving value came from ${describeOp(byValue.get(finalValue))}`,
    });
}
