import fc from 'fast-check';
import { tokenOf } from '../../src/core/hash';
import { bucketOf, type DigestedRecord, differing, FANOUT, inRange, levelHashes, rangeWidth, recordDigest } from '../../src/core/merkle';
import { liveRecord, tombstone } from '../../src/core/record';

const v = (wallMs: number) => ({ wallMs, counter: 0, nodeId: 'n1' });
const rec = (key: string, wallMs: number): DigestedRecord => ({ key, token: tokenOf(key), record: liveRecord(key, v(wallMs)) });
const whole = { lo: 0, hi: 0 };

describe('hash trees over token ranges', () => {
  test('ranges wrap around the ring; lo === hi is the whole ring', () => {
    expect(rangeWidth({ lo: 10, hi: 20 })).toBe(10);
    expect(rangeWidth({ lo: 2 ** 32 - 10, hi: 5 })).toBe(15);
    expect(rangeWidth(whole)).toBe(2 ** 32);
    expect(inRange({ lo: 10, hi: 20 }, 10)).toBe(false);
    expect(inRange({ lo: 10, hi: 20 }, 11)).toBe(true);
    expect(inRange({ lo: 10, hi: 20 }, 20)).toBe(true);
    expect(inRange({ lo: 2 ** 32 - 10, hi: 5 }, 3)).toBe(true);
    expect(inRange({ lo: 2 ** 32 - 10, hi: 5 }, 2 ** 32 - 1)).toBe(true);
    expect(inRange({ lo: 2 ** 32 - 10, hi: 5 }, 6)).toBe(false);
  });

  test('a token falls in one node per level, and a node sits inside its parent', () => {
    fc.assert(
      fc.property(fc.nat(2 ** 32 - 1), fc.nat(2 ** 32 - 1), fc.nat(2 ** 32 - 1), (lo, hi, t) => {
        const r = { lo, hi };
        if (!inRange(r, t)) return;
        for (let level = 1; level <= 4; level++) {
          const i = bucketOf(r, t, level);
          expect(i).toBeGreaterThanOrEqual(0);
          expect(i).toBeLessThan(FANOUT ** level);
          expect(Math.floor(i / FANOUT)).toBe(bucketOf(r, t, level - 1));
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('identical record sets have identical roots, whatever order they are scanned in', () => {
    const a = Array.from({ length: 500 }, (_, i) => rec(`k${i}`, i));
    const b = [...a].reverse();
    expect(levelHashes(a, whole, 0).get(0)).toEqual(levelHashes(b, whole, 0).get(0));
  });

  test('one different record changes the root and exactly one node on each level below', () => {
    const a = Array.from({ length: 2000 }, (_, i) => rec(`k${i}`, i));
    const b = a.map((r) => (r.key === 'k777' ? { ...r, record: liveRecord('k777', v(99_999)) } : r));
    expect(differing(levelHashes(a, whole, 0), levelHashes(b, whole, 0))).toEqual([0]);
    for (let level = 1; level <= 4; level++) {
      const diff = differing(levelHashes(a, whole, level), levelHashes(b, whole, level));
      expect(diff).toEqual([bucketOf(whole, tokenOf('k777'), level)]);
    }
  });

  test('a missing record, a tombstone instead of a value, and an expiry each change the digest', () => {
    const base = recordDigest('k', liveRecord(1, v(5)));
    expect(recordDigest('k', tombstone(v(5)))).not.toEqual(base);
    expect(recordDigest('k', liveRecord(1, v(5), 99))).not.toEqual(base);
    expect(recordDigest('k', liveRecord(1, v(6)))).not.toEqual(base);
    expect(recordDigest('k', liveRecord(1, v(5)))).toEqual(base);
    const a = [rec('x', 1), rec('y', 2)];
    expect(differing(levelHashes(a, whole, 0), levelHashes(a.slice(1), whole, 0))).toEqual([0]);
  });

  test('under given parents, only their children are summarized', () => {
    const a = Array.from({ length: 3000 }, (_, i) => rec(`k${i}`, i));
    const all = levelHashes(a, whole, 2);
    const some = levelHashes(a, whole, 2, new Set([3]));
    expect([...some.keys()].every((i) => Math.floor(i / FANOUT) === 3)).toBe(true);
    for (const [i, s] of some) expect(all.get(i)).toEqual(s);
    expect(some.size).toBeGreaterThan(0);
  });
});
