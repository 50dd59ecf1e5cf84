// The chaos campaign's checkers (scripts/lib/chaos-checks.ts) on made-up histories: each finds the
// violation it is for, and a clean history gives none.

import { check, type FinalKey, type Op } from '../../scripts/lib/chaos-checks';
import type { StoredRecord } from '../../src/core/record';

let nextId = 0;
function op(o: Partial<Op> & Pick<Op, 'kind' | 'key' | 'outcome'>): Op {
  const startMs = o.startMs ?? nextId * 10;
  return { id: nextId++, client: 'c', coordinator: 'n1', startMs, endMs: o.endMs ?? startMs + 5, fault: -1, ...o };
}
const rec = (value: unknown, wallMs = 1, nodeId = 'n1'): StoredRecord => ({
  version: { wallMs, counter: 0, nodeId },
  value: value as string,
});
const tomb = (wallMs = 2): StoredRecord => ({ version: { wallMs, counter: 0, nodeId: 'n1' }, deleted: true });
const everywhere = (r: StoredRecord | null): FinalKey['replicas'] => [r, r, r];
const kinds = (ops: Op[], finals: Array<[string, FinalKey]>) => check(ops, new Map(finals)).map((v) => `${v.kind} ${v.key}`);

beforeEach(() => {
  nextId = 0;
});

test('an acknowledged unique write that is gone is a lost write; one refused as unavailable must stay invisible', () => {
  const ops = [
    op({ kind: 'write', key: 'u-lost', value: 'a', outcome: 'ok' }),
    op({ kind: 'write', key: 'u-kept', value: 'b', outcome: 'ok' }),
    op({ kind: 'write', key: 'u-refused', value: 'c', outcome: 'unavailable' }),
    op({ kind: 'write', key: 'u-maybe', value: 'd', outcome: 'quorum_not_met' }),
  ];
  expect(
    kinds(ops, [
      ['u-lost', { all: { status: 404 }, replicas: everywhere(null) }],
      ['u-kept', { all: { status: 200, value: 'b' }, replicas: everywhere(rec('b')) }],
      ['u-refused', { all: { status: 200, value: 'c' }, replicas: everywhere(rec('c')) }],
      ['u-maybe', { all: { status: 404 }, replicas: everywhere(null) }],
    ]),
  ).toEqual(['lost-write u-lost', 'refused-visible u-refused']);
});

test('a key whose acknowledged delete is undone is a resurrected delete; a refused delete changes nothing', () => {
  const ops = [
    op({ kind: 'write', key: 'u-back', value: 'a', outcome: 'ok' }),
    op({ kind: 'delete', key: 'u-back', outcome: 'ok' }),
    op({ kind: 'write', key: 'u-gone', value: 'b', outcome: 'ok' }),
    op({ kind: 'delete', key: 'u-gone', outcome: 'ok' }),
    op({ kind: 'write', key: 'u-refused-delete', value: 'c', outcome: 'ok' }),
    op({ kind: 'delete', key: 'u-refused-delete', outcome: 'unavailable' }),
  ];
  expect(
    kinds(ops, [
      ['u-back', { all: { status: 200, value: 'a' }, replicas: everywhere(rec('a', 3)) }],
      ['u-gone', { all: { status: 404 }, replicas: everywhere(tomb()) }],
      ['u-refused-delete', { all: { status: 404 }, replicas: everywhere(tomb()) }],
    ]),
  ).toEqual(['resurrected-delete u-back', 'lost-write u-refused-delete']);
});

test('replicas that differ are reported, and so is a value nobody wrote', () => {
  const ops = [op({ kind: 'write', key: 'u-1', value: 'a', outcome: 'ok' })];
  expect(kinds(ops, [['u-1', { all: { status: 200, value: 'a' }, replicas: [rec('a'), rec('a'), null] }]])).toEqual([
    'divergent-replicas u-1',
  ]);
  expect(kinds(ops, [['u-1', { all: { status: 200, value: 'x' }, replicas: everywhere(rec('x')) }]])).toEqual([
    'invented-value u-1',
    'lost-write u-1',
  ]);
});

test('a register read below the last acknowledged value is stale, below an earlier read went backwards, and a lower final value is a lost update', () => {
  const reg = (kind: 'reg-write' | 'reg-read', value: number | null, startMs: number, outcome: Op['outcome'] = 'ok') =>
    op({ kind, key: 'reg-0', value, startMs, outcome });
  const ops = [
    reg('reg-write', 1, 0),
    reg('reg-read', 1, 10),
    reg('reg-write', 2, 20, 'quorum_not_met'), // may have been applied
    reg('reg-read', 2, 30),
    reg('reg-read', 1, 40), // went backwards from 2 (not stale: 2 was never acknowledged)
    reg('reg-write', 3, 50),
    reg('reg-read', 2, 60), // stale: 3 was acknowledged before it began
  ];
  expect(kinds(ops, [['reg-0', { all: { status: 200, value: 2 }, replicas: everywhere(rec(2)) }]])).toEqual([
    'read-went-backwards reg-0',
    'stale-read reg-0',
    'lost-update reg-0',
  ]);
});

test('a clean history gives no violation', () => {
  const ops = [
    op({ kind: 'write', key: 'u-1', value: 'a', outcome: 'ok' }),
    op({ kind: 'delete', key: 'u-1', outcome: 'ok' }),
    op({ kind: 'reg-write', key: 'reg-0', value: 1, outcome: 'ok' }),
    op({ kind: 'reg-read', key: 'reg-0', value: 1, outcome: 'ok' }),
    op({ kind: 'reg-write', key: 'reg-0', value: 2, outcome: 'unavailable' }),
    op({ kind: 'reg-read', key: 'reg-0', value: 1, outcome: 'ok' }),
  ];
  expect(
    kinds(ops, [
      ['u-1', { all: { status: 404 }, replicas: everywhere(tomb()) }],
      ['reg-0', { all: { status: 200, value: 1 }, replicas: everywhere(rec(1)) }],
    ]),
  ).toEqual([]);
});
