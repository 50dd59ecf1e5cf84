import fc from 'fast-check';
import murmurhash3js from 'murmurhash3js';
import { TOKEN_SPACE, tokenOf } from '../../src/core/hash';
import { Ring } from '../../src/core/ring';

const ids = (n: number, prefix = 'n') => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);
const sampleKeys = (count: number) => Array.from({ length: count }, (_, i) => `key:${i}`);

describe('ring', () => {
  test('every member computes the same ring from the same ids, whatever their order', () => {
    const a = new Ring(['n1', 'n2', 'n3'], 64);
    const b = new Ring(['n3', 'n1', 'n2', 'n1'], 64);
    expect(b.checksum()).toBe(a.checksum());
    expect(Array.from(b.tokens)).toEqual(Array.from(a.tokens));
    for (const k of sampleKeys(500)) expect(b.preferenceList(k, 3)).toEqual(a.preferenceList(k, 3));
  });

  test('the checksum differs when members or vnodes differ', () => {
    const base = new Ring(['n1', 'n2', 'n3'], 64).checksum();
    expect(new Ring(['n1', 'n2', 'n4'], 64).checksum()).not.toBe(base);
    expect(new Ring(['n1', 'n2'], 64).checksum()).not.toBe(base);
    expect(new Ring(['n1', 'n2', 'n3'], 32).checksum()).not.toBe(base);
  });

  test('tokens are murmur3 of "<id>#<i>", sorted', () => {
    const r = new Ring(['a'], 4);
    expect(Array.from(r.tokens)).toEqual([0, 1, 2, 3].map((i) => tokenOf(`a#${i}`)).sort((x, y) => x - y));
  });

  test('murmur3 tokens match the reference implementation, also for non-ASCII keys', () => {
    // Reference values: MurmurHash3_x86_32 with seed 0 over the UTF-8 bytes (smhasher).
    expect(tokenOf('')).toBe(0);
    expect(tokenOf('hello')).toBe(0x248bfa47);
    expect(tokenOf('The quick brown fox jumps over the lazy dog')).toBe(0x2e4ff723);
    // "é" is two UTF-8 bytes (c3 a9): the token is the hash of those bytes, not of the UTF-16 unit e9
    expect(tokenOf('é')).toBe(murmurhash3js.x86.hash32('\xc3\xa9') >>> 0);
    expect(tokenOf('é')).not.toBe(murmurhash3js.x86.hash32('\xe9') >>> 0);
    expect(tokenOf('😀')).toBe(murmurhash3js.x86.hash32('\xf0\x9f\x98\x80') >>> 0);
  });

  test('a preference list holds min(N, members) distinct members, and starts at the owner of the key token', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 32 }),
        fc.string({ minLength: 1, maxLength: 40 }),
        (members, n, vnodes, key) => {
          const ring = new Ring(ids(members), vnodes);
          const list = ring.preferenceList(key, n);
          expect(list.length).toBe(Math.min(n, members));
          expect(new Set(list).size).toBe(list.length);
          // the first replica owns the first vnode token at or after the key's token
          const t = tokenOf(key);
          let i = ring.tokens.findIndex((x) => x >= t);
          if (i === -1) i = 0;
          expect(list[0]).toBe(ring.owners[i]);
        },
      ),
      { numRuns: 500 },
    );
  });

  test('3 nodes x 64 vnodes: each owns close to a third of the token space (measured share printed)', () => {
    const ring = new Ring(['n1', 'n2', 'n3'], 64);
    const share = ring.primaryOwnership();
    const values = [...share.values()];
    expect(values.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    const maxOverMin = Math.max(...values) / Math.min(...values);
    // and by counting keys: 100k keys' primaries
    const counts = new Map<string, number>();
    for (const k of sampleKeys(100_000)) {
      const p = ring.preferenceList(k, 1)[0] as string;
      counts.set(p, (counts.get(p) ?? 0) + 1);
    }
    console.log(
      `ring balance (3 nodes x 64 vnodes): token share ${[...share].map(([id, s]) => `${id}=${(s * 100).toFixed(1)}%`).join(' ')}, ` +
        `max/min ${maxOverMin.toFixed(3)}; primaries of 100k keys ${[...counts].map(([id, c]) => `${id}=${c}`).join(' ')}`,
    );
    for (const s of values) {
      expect(s).toBeGreaterThan(0.25);
      expect(s).toBeLessThan(0.42);
    }
    for (const [id, c] of counts) expect(Math.abs(c / 100_000 - (share.get(id) as number))).toBeLessThan(0.01);
  });

  test('balance improves with vnodes: the spread of ownership over 10 nodes shrinks from 1 to 256 vnodes', () => {
    const spread = (v: number) => {
      const s = [...new Ring(ids(10), v).primaryOwnership().values()];
      return Math.max(...s) / Math.min(...s);
    };
    const figures = [1, 8, 64, 256].map((v) => [v, spread(v)] as const);
    console.log(`ownership max/min over 10 nodes by vnodes: ${figures.map(([v, s]) => `${v}:${s.toFixed(2)}`).join(' ')}`);
    // Tokens are hashes, so shares scatter like 1/sqrt(vnodes): ~12% at 64.
    expect(spread(256)).toBeLessThan(spread(64));
    expect(spread(64)).toBeLessThan(spread(8));
    expect(spread(64)).toBeLessThan(2);
  });

  test('when a 4th node joins, about a quarter of the keys change primary, and every moved key moves to the new node', () => {
    const before = new Ring(['n1', 'n2', 'n3'], 64);
    const after = new Ring(['n1', 'n2', 'n3', 'n4'], 64);
    const keys = sampleKeys(100_000);
    let movedPrimary = 0;
    let changedList = 0;
    let movedElsewhere = 0;
    const notAnInsertion: string[] = [];
    for (const k of keys) {
      const a = before.preferenceList(k, 1)[0];
      const b = after.preferenceList(k, 1)[0];
      if (a !== b) {
        movedPrimary++;
        if (b !== 'n4') movedElsewhere++;
      }
      const la = before.preferenceList(k, 3);
      const lb = after.preferenceList(k, 3);
      if (la.join() !== lb.join()) changedList++;
      // with N=3, the new list is the old one with n4 inserted and the last member dropped (or unchanged)
      if (lb.filter((x) => x !== 'n4').join() !== la.slice(0, lb.includes('n4') ? 2 : 3).join()) notAnInsertion.push(k);
    }
    const share = after.primaryOwnership().get('n4') as number;
    console.log(
      `adding n4 to 3 nodes (64 vnodes): ${((movedPrimary / keys.length) * 100).toFixed(1)}% of 100k keys changed primary ` +
        `(ideal 25%, n4's token share ${(share * 100).toFixed(1)}%); ${((changedList / keys.length) * 100).toFixed(1)}% changed preference list (N=3)`,
    );
    expect(movedElsewhere).toBe(0);
    expect(notAnInsertion).toEqual([]);
    expect(movedPrimary / keys.length).toBeGreaterThan(0.18);
    expect(movedPrimary / keys.length).toBeLessThan(0.32);
    expect(Math.abs(movedPrimary / keys.length - share)).toBeLessThan(0.01);
  });

  test('the ring covers the whole token space: ownership sums to 1 for any membership', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 64 }), (members, vnodes) => {
        const total = [...new Ring(ids(members), vnodes).primaryOwnership().values()].reduce((a, b) => a + b, 0);
        expect(total).toBeCloseTo(1, 9);
      }),
      { numRuns: 100 },
    );
  });

  test('keys at the very ends of the token space wrap to the first vnode', () => {
    const ring = new Ring(['n1', 'n2'], 8);
    const last = ring.tokens[ring.tokens.length - 1] as number;
    expect(ring.preferenceListForToken(TOKEN_SPACE - 1, 1)[0]).toBe(
      last === TOKEN_SPACE - 1 ? ring.owners[ring.tokens.length - 1] : ring.owners[0],
    );
    expect(ring.preferenceListForToken(0, 1)[0]).toBe(ring.owners[0]);
  });

  test('an empty ring has empty preference lists', () => {
    expect(new Ring([], 64).preferenceList('k', 3)).toEqual([]);
  });
});
