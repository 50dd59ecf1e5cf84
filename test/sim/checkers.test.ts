// Every checker is fed a history that breaks its invariant and must say so (a checker that cannot
// fail is worthless), and one that keeps it and must stay quiet.

import type { Version } from '../../src/core/hlc';
import { liveRecord, type StoredRecord, tombstone } from '../../src/core/record';
import {
  checkNoLostWrites,
  checkNoResurrection,
  checkNothingInvented,
  checkQuorumReads,
  checkRefusalsChangeNothing,
  checkReplication,
  checkRingAgreement,
  checkWriteOrder,
  convergence,
} from '../../src/sim/checkers';
import type { FinalState, Op } from '../../src/sim/history';

const v = (wallMs: number, nodeId = 'n1'): Version => ({ wallMs, counter: 0, nodeId });
let nextId = 0;
function op(o: Partial<Op> & Pick<Op, 'kind' | 'key' | 'start' | 'end'>): Op {
  return { id: nextId++, client: 0, required: 2, coordinator: 'n1', outcome: 'ok', ...o };
}
function state(entries: Record<string, Array<StoredRecord | undefined>>): FinalState {
  return new Map(Object.entries(entries).map(([k, recs]) => [k, recs.map((record, i) => ({ node: `n${i + 1}`, record }))]));
}

describe('checker 1: no acknowledged write is lost', () => {
  const put = op({ kind: 'put', key: 'a', value: 'x', start: 0, end: 5, version: v(10) });

  test('reports an acknowledged write whose version no replica holds', () => {
    const found = checkNoLostWrites([put], state({ a: [liveRecord('older', v(5)), undefined, undefined] }));
    expect(found).toEqual([expect.objectContaining({ checker: 'lost-write', ops: [put.id] })]);
    expect(found[0]?.message).toContain('10.0@n1');
  });

  test('reports a key that vanished from every replica', () => {
    expect(checkNoLostWrites([put], state({}))).toHaveLength(1);
  });

  test('accepts the write on one replica, or superseded by a newer one', () => {
    expect(checkNoLostWrites([put], state({ a: [undefined, liveRecord('x', v(10)), undefined] }))).toEqual([]);
    expect(checkNoLostWrites([put], state({ a: [tombstone(v(11)), undefined, undefined] }))).toEqual([]);
  });

  test('a key gone from every replica is a purged tombstone when a delete was the newest write, not a loss', () => {
    const del = op({ kind: 'delete', key: 'a', start: 6, end: 8, version: v(20) });
    expect(checkNoLostWrites([put, del], state({}))).toEqual([]);
    // a delete whose outcome the client never learned could also have won
    const unknown = op({ kind: 'delete', key: 'a', start: 6, end: 8, outcome: 'unknown' });
    expect(checkNoLostWrites([put, unknown], state({}))).toEqual([]);
    // but an acknowledged delete older than the put does not explain the put's absence
    const older = op({ kind: 'delete', key: 'a', start: 6, end: 8, version: v(5) });
    expect(checkNoLostWrites([put, older], state({}))).toEqual([expect.objectContaining({ ops: [put.id] })]);
  });

  test('does not count writes that were not acknowledged', () => {
    const failed = { ...put, outcome: 'fail' as const };
    expect(checkNoLostWrites([failed], state({}))).toEqual([]);
  });
});

describe('checker 2: a quorum read sees every write acknowledged before it started', () => {
  const put = op({ kind: 'put', key: 'a', value: 'x', start: 0, end: 5, version: v(10) });

  test('reports a later quorum read that returned an older version, or nothing', () => {
    const stale = op({ kind: 'get', key: 'a', start: 6, end: 7, read: { record: liveRecord('old', v(3)) } });
    const empty = op({ kind: 'get', key: 'a', start: 6, end: 7, read: { record: undefined } });
    const found = checkQuorumReads([put, stale, empty], 3);
    expect(found.map((f) => f.ops)).toEqual([
      [put.id, stale.id],
      [put.id, empty.id],
    ]);
  });

  test('accepts reads that overlapped the write, or had R + W <= N', () => {
    const concurrent = op({ kind: 'get', key: 'a', start: 4, end: 7, read: { record: undefined } });
    const weak = op({ kind: 'get', key: 'a', required: 1, start: 6, end: 7, read: { record: undefined } });
    const newer = op({ kind: 'get', key: 'a', start: 6, end: 7, read: { record: liveRecord('y', v(12)) } });
    expect(checkQuorumReads([put, concurrent, weak, newer], 3)).toEqual([]);
  });
});

describe('checker 3: nothing is invented', () => {
  const put = op({ kind: 'put', key: 'a', value: 'x', start: 0, end: 5, version: v(10) });

  test('reports a value no client wrote to that key, read or held', () => {
    const read = op({ kind: 'get', key: 'a', start: 6, end: 7, read: { record: liveRecord('never written', v(10)) } });
    const found = checkNothingInvented([put, read], state({ a: [liveRecord('x', v(10)), liveRecord('nor this', v(9))] }));
    expect(found.map((f) => f.message)).toEqual([
      expect.stringContaining('"never written", which no client wrote'),
      expect.stringContaining('replica n2 at the end: a = "nor this"'),
    ]);
  });

  test('reports a value read with another version than its write was acknowledged with', () => {
    const read = op({ kind: 'get', key: 'a', start: 6, end: 7, read: { record: liveRecord('x', v(99)) } });
    expect(checkNothingInvented([put, read], state({}))).toEqual([expect.objectContaining({ ops: [read.id, put.id] })]);
  });

  test('accepts values of failed writes (a 503 write may still land)', () => {
    const failed = op({ kind: 'put', key: 'b', value: 'maybe', start: 0, end: 5, outcome: 'fail' });
    const read = op({ kind: 'get', key: 'b', start: 6, end: 7, read: { record: liveRecord('maybe', v(3)) } });
    expect(checkNothingInvented([failed, read], state({ b: [liveRecord('maybe', v(3))] }))).toEqual([]);
  });

  test('a value written to another key does not count', () => {
    const read = op({ kind: 'get', key: 'other', start: 6, end: 7, read: { record: liveRecord('x', v(10)) } });
    expect(checkNothingInvented([put, read], state({}))).toHaveLength(1);
  });
});

describe('checker 4: no deleted key comes back', () => {
  const put = op({ kind: 'put', key: 'a', value: 'x', start: 0, end: 5, version: v(10) });
  const del = op({ kind: 'delete', key: 'a', start: 6, end: 8, version: v(20) });

  test('reports a quorum read after the delete that returns the deleted value', () => {
    const back = op({ kind: 'get', key: 'a', start: 9, end: 10, read: { record: liveRecord('x', v(10)) } });
    expect(checkNoResurrection([put, del, back], state({ a: [tombstone(v(20))] }), 3)).toEqual([
      expect.objectContaining({ checker: 'resurrection', ops: [del.id, back.id] }),
    ]);
  });

  test('reports a key whose newest record at the end is older than the acknowledged tombstone', () => {
    expect(checkNoResurrection([put, del], state({ a: [liveRecord('x', v(10)), undefined, undefined] }), 3)).toEqual([
      expect.objectContaining({ checker: 'resurrection', ops: [del.id] }),
    ]);
  });

  test('accepts a newer write after the delete', () => {
    const again = op({ kind: 'put', key: 'a', value: 'y', start: 9, end: 10, version: v(30) });
    const read = op({ kind: 'get', key: 'a', start: 11, end: 12, read: { record: liveRecord('y', v(30)) } });
    expect(checkNoResurrection([put, del, again, read], state({ a: [liveRecord('y', v(30))] }), 3)).toEqual([]);
  });
});

describe('checker 5: convergence', () => {
  test('counts keys whose replicas all hold the same record', () => {
    const c = convergence(
      state({
        same: [liveRecord('x', v(1)), liveRecord('x', v(1)), liveRecord('x', v(1))],
        behind: [liveRecord('x', v(1)), liveRecord('y', v(2)), liveRecord('y', v(2))],
        missing: [tombstone(v(3)), undefined, tombstone(v(3))],
      }),
    );
    expect(c).toEqual({ keys: 3, converged: 1, diverged: ['behind', 'missing'] });
  });
});

describe('checker 6: ring agreement', () => {
  test('reports nodes that computed different rings', () => {
    expect(
      checkRingAgreement([
        { node: 'n1', checksum: 'aa' },
        { node: 'n2', checksum: 'aa' },
      ]),
    ).toEqual([]);
    expect(
      checkRingAgreement([
        { node: 'n1', checksum: 'aa' },
        { node: 'n2', checksum: 'bb' },
      ]),
    ).toEqual([expect.objectContaining({ checker: 'ring-disagreement', message: expect.stringContaining('n2=bb') })]);
  });
});

describe('checker 7: replication holds across moves', () => {
  const put = op({ kind: 'put', key: 'a', value: 'x', start: 0, end: 5, version: v(10), required: 2 });

  test('reports a write acknowledged by W that fewer than W of its replicas hold now', () => {
    const found = checkReplication([put], state({ a: [liveRecord('x', v(10)), liveRecord('old', v(5)), undefined] }));
    expect(found).toEqual([expect.objectContaining({ checker: 'under-replicated', ops: [put.id] })]);
    expect(found[0]?.message).toContain('on 1 of its replicas');
  });

  test('counts newer records as holders, and asks no more than the replicas there are', () => {
    expect(checkReplication([put], state({ a: [liveRecord('x', v(10)), tombstone(v(12)), undefined] }))).toEqual([]);
    const all = op({ kind: 'put', key: 'b', value: 'y', start: 0, end: 5, version: v(10), required: 3 });
    expect(checkReplication([all], state({ b: [liveRecord('y', v(10)), liveRecord('y', v(10))] }))).toEqual([]);
    expect(checkReplication([{ ...put, outcome: 'fail' }], state({ a: [undefined, undefined, undefined] }))).toEqual([]);
  });
});

describe('a refused write changes nothing', () => {
  const refused = op({ kind: 'put', key: 'r', value: 'refused', start: 0, end: 1, outcome: 'unavailable' });

  test('reports a refused write read later, or held by a replica at the end', () => {
    const read = op({ kind: 'get', key: 'r', start: 2, end: 3, read: { record: liveRecord('refused', v(1)) } });
    expect(checkRefusalsChangeNothing([refused, read], state({}))).toEqual([
      expect.objectContaining({ checker: 'refusal-applied', ops: [read.id, refused.id] }),
    ]);
    expect(checkRefusalsChangeNothing([refused], state({ r: [undefined, liveRecord('refused', v(1)), undefined] }))).toEqual([
      expect.objectContaining({ checker: 'refusal-applied', ops: [refused.id] }),
    ]);
  });

  test('is quiet when the value never shows, and about writes that failed after being sent', () => {
    const failed = { ...refused, id: nextId++, value: 'sent', outcome: 'fail' as const };
    expect(checkRefusalsChangeNothing([refused, failed], state({ r: [liveRecord('sent', v(1)), undefined, undefined] }))).toEqual([]);
  });
});

describe('acknowledged writes take effect in the order they happened', () => {
  test('reports a write that started after another was acknowledged but carries an older version', () => {
    const first = op({ kind: 'put', key: 'w', value: 'a', start: 0, end: 5, version: v(20, 'n1') });
    const later = op({ kind: 'put', key: 'w', value: 'b', start: 6, end: 9, version: v(10, 'n2') });
    expect(checkWriteOrder([first, later], 3)).toEqual([expect.objectContaining({ checker: 'write-order', ops: [first.id, later.id] })]);
  });

  test('is quiet about overlapping writes, newer versions, and writes whose quorums need not meet', () => {
    const a = op({ kind: 'put', key: 'w', value: 'a', start: 0, end: 5, version: v(20, 'n1') });
    const overlapping = op({ kind: 'put', key: 'w', value: 'b', start: 4, end: 9, version: v(10, 'n2') });
    const newer = op({ kind: 'delete', key: 'w', start: 10, end: 12, version: v(30, 'n2') });
    expect(checkWriteOrder([a, overlapping, newer], 3)).toEqual([]);
    const one = op({ kind: 'put', key: 'o', value: 'a', start: 0, end: 5, required: 1, version: v(20, 'n1') });
    const otherOne = op({ kind: 'put', key: 'o', value: 'b', start: 6, end: 9, required: 1, version: v(10, 'n2') });
    expect(checkWriteOrder([one, otherOne], 3)).toEqual([]);
  });
});
