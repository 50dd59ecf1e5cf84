import fc from 'fast-check';
import { compareRecords, isStoredRecord, liveRecord, newest, type StoredRecord, supersedes, tombstone } from '../../src/core/record';

const version = fc.record({
  wallMs: fc.integer({ min: 0, max: 5 }),
  counter: fc.integer({ min: 0, max: 2 }),
  nodeId: fc.constantFrom('a', 'b'),
});
const record: fc.Arbitrary<StoredRecord> = fc.oneof(
  fc.tuple(version, fc.jsonValue()).map(([v, value]) => liveRecord(value as never, v)),
  version.map((v) => tombstone(v)),
);

describe('last write wins', () => {
  test('every replica picks the same newest record, in whatever order the records arrive', () => {
    const recordsAndPermutation = fc
      .array(record, { minLength: 1, maxLength: 8 })
      .chain((rs) => fc.tuple(fc.constant(rs), fc.shuffledSubarray(rs, { minLength: rs.length, maxLength: rs.length })));
    fc.assert(
      fc.property(recordsAndPermutation, ([records, permuted]) => {
        const a = newest(records) as StoredRecord;
        const b = newest(permuted) as StoredRecord;
        expect(compareRecords(a, b)).toBe(0);
        expect(JSON.stringify(a.value)).toBe(JSON.stringify(b.value));
        expect(a.deleted).toBe(b.deleted);
      }),
    );
  });

  test('comparison is a total order: antisymmetric and transitive', () => {
    fc.assert(
      fc.property(record, record, record, (x, y, z) => {
        expect(compareRecords(x, y)).toBe(-compareRecords(y, x) || 0);
        if (compareRecords(x, y) <= 0 && compareRecords(y, z) <= 0) expect(compareRecords(x, z)).toBeLessThanOrEqual(0);
      }),
    );
  });

  test('a higher version wins; an equal version is not applied twice; on a tie of versions the tombstone wins', () => {
    const v1 = { wallMs: 1, counter: 0, nodeId: 'a' };
    const v2 = { wallMs: 2, counter: 0, nodeId: 'a' };
    expect(supersedes(liveRecord('new', v2), liveRecord('old', v1))).toBe(true);
    expect(supersedes(liveRecord('old', v1), liveRecord('new', v2))).toBe(false);
    expect(supersedes(liveRecord('x', v1), liveRecord('x', v1))).toBe(false);
    expect(supersedes(tombstone(v1), liveRecord('x', v1))).toBe(true);
    expect(supersedes(liveRecord('x', v1), tombstone(v1))).toBe(false);
    expect(supersedes(liveRecord('x', v1), undefined)).toBe(true);
  });

  test('records from the network are shape-checked', () => {
    const v = { wallMs: 1, counter: 0, nodeId: 'a' };
    expect(isStoredRecord({ version: v, value: null })).toBe(true);
    expect(isStoredRecord({ version: v, deleted: true })).toBe(true);
    expect(isStoredRecord({ version: v })).toBe(false);
    expect(isStoredRecord({ version: v, deleted: true, value: 1 })).toBe(false);
    expect(isStoredRecord({ version: { ...v, wallMs: -1 }, value: 1 })).toBe(false);
    expect(isStoredRecord({ version: { ...v, nodeId: '' }, value: 1 })).toBe(false);
    expect(isStoredRecord(null)).toBe(false);
  });
});
