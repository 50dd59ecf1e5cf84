import fc from 'fast-check';
import { compareVersions, formatVersion, Hlc, parseVersion, type Version } from '../../src/core/hlc';

describe('hybrid logical clock', () => {
  test('versions from one node strictly increase, even when its wall clock stalls or goes backwards', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 2_000_000 }), { minLength: 1, maxLength: 200 }), (times) => {
        const hlc = new Hlc('n1');
        let prev: Version | undefined;
        for (const t of times) {
          const v = hlc.now(t);
          if (prev) expect(compareVersions(prev, v)).toBe(-1);
          expect(v.wallMs).toBeGreaterThanOrEqual(t);
          prev = v;
        }
      }),
    );
  });

  test('a version issued after observing another is newer than it, whatever the skew between the two clocks', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1_000_000, max: 2_000_000 }),
        fc.integer({ min: -600_000, max: 600_000 }),
        fc.integer({ min: 0, max: 50 }),
        (now, skew, counterBurst) => {
          const fast = new Hlc('a');
          const slow = new Hlc('b');
          let remote = fast.now(now + skew);
          for (let i = 0; i < counterBurst; i++) remote = fast.now(now + skew); // same ms: counter climbs
          slow.observe(remote, now);
          const mine = slow.now(now);
          expect(compareVersions(mine, remote)).toBe(1);
        },
      ),
    );
  });

  test('under skew, a causal chain of writes across nodes gets increasing versions (a slow node never loses its later write)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ node: fc.integer({ min: 0, max: 4 }), advanceMs: fc.integer({ min: 0, max: 20 }) }), {
          minLength: 2,
          maxLength: 60,
        }),
        fc.array(fc.integer({ min: -300_000, max: 300_000 }), { minLength: 5, maxLength: 5 }),
        (steps, skews) => {
          const clocks = skews.map((_, i) => new Hlc(`n${i}`));
          let real = 1_700_000_000_000;
          let last: Version | undefined;
          for (const s of steps) {
            real += s.advanceMs;
            const hlc = clocks[s.node] as Hlc;
            const physical = real + (skews[s.node] as number);
            // the node reads the latest version (a quorum read) before writing: it observes it
            if (last) hlc.observe(last, physical);
            const v = hlc.now(physical);
            if (last) expect(compareVersions(v, last)).toBe(1);
            last = v;
          }
        },
      ),
    );
  });

  test('observing an older version does not move the clock back', () => {
    const hlc = new Hlc('n1');
    const v1 = hlc.now(5000);
    hlc.observe({ wallMs: 1000, counter: 99, nodeId: 'n2' }, 4000);
    expect(compareVersions(hlc.now(4000), v1)).toBe(1);
  });

  test('versions order by wall time, then counter, then node id', () => {
    const v = (wallMs: number, counter: number, nodeId: string) => ({ wallMs, counter, nodeId });
    expect(compareVersions(v(1, 9, 'z'), v(2, 0, 'a'))).toBe(-1);
    expect(compareVersions(v(2, 1, 'a'), v(2, 0, 'z'))).toBe(1);
    expect(compareVersions(v(2, 1, 'a'), v(2, 1, 'b'))).toBe(-1);
    expect(compareVersions(v(2, 1, 'a'), v(2, 1, 'a'))).toBe(0);
  });

  test('the text form round-trips, node ids with dots and @ included', () => {
    const v = { wallMs: 1732252800123, counter: 4, nodeId: 'kv-0.kv@x' };
    expect(formatVersion(v)).toBe('1732252800123.4@kv-0.kv@x');
    expect(parseVersion(formatVersion(v))).toEqual(v);
    expect(parseVersion('nope')).toBeUndefined();
  });
});
