import fc from 'fast-check';
import { isNewer, type MemberEntry, MemberTable } from '../../src/core/membership';

const opts = { convictThreshold: 8, windowSize: 100, initialIntervalMs: 2000, maxIntervalMs: 4000 };
const entry = (id: string, generation = 1, heartbeat = 0, address = `${id}:8080`): MemberEntry => ({
  id,
  address,
  generation,
  heartbeat,
  status: 'normal',
});

describe('member table', () => {
  test('keeps the newest state of each member: higher generation, then higher heartbeat', () => {
    const t = new MemberTable(entry('a'), opts);
    t.merge([entry('b', 5, 10)], 0);
    t.merge([entry('b', 5, 9)], 0);
    expect(t.get('b')?.heartbeat).toBe(10);
    t.merge([entry('b', 4, 99)], 0);
    expect(t.get('b')?.generation).toBe(5);
    t.merge([entry('b', 6, 0)], 0);
    expect(t.get('b')).toEqual(entry('b', 6, 0));
    expect(isNewer(entry('x', 2, 0), entry('x', 1, 50))).toBe(true);
  });

  test('a member restarted at a new address replaces its old entry: one entry per id', () => {
    const t = new MemberTable(entry('a'), opts);
    t.merge([entry('b', 1, 3, '10.0.0.2:8080')], 0);
    const r = t.merge([entry('b', 2, 0, '10.0.0.9:8080')], 10);
    expect(r.restarted).toEqual([{ entry: entry('b', 2, 0, '10.0.0.9:8080'), previousAddress: '10.0.0.2:8080' }]);
    expect(t.all().filter((m) => m.id === 'b')).toEqual([entry('b', 2, 0, '10.0.0.9:8080')]);
    expect(t.byAddress('10.0.0.2:8080')).toBeUndefined();
    expect(t.byAddress('10.0.0.9:8080')?.id).toBe('b');
    t.assertValid();
  });

  test('an entry claiming this node id from another incarnation is reported, never stored', () => {
    const t = new MemberTable(entry('a', 5), opts);
    const r = t.merge([entry('a', 9, 0, 'elsewhere:8080')], 0);
    expect(r.impostors).toHaveLength(1);
    expect(t.self()).toEqual(entry('a', 5));
    expect(t.size()).toBe(1);
  });

  test('diff sends what the peer lacks or has older, asks for what it has newer, and bounds the message', () => {
    const t = new MemberTable(entry('a', 1, 7), opts);
    t.merge([entry('b', 1, 5), entry('c', 1, 5)], 0);
    const { send, want } = t.diff(
      [
        { id: 'a', generation: 1, heartbeat: 7 },
        { id: 'b', generation: 1, heartbeat: 9 },
        { id: 'd', generation: 3, heartbeat: 0 },
      ],
      10,
    );
    expect(send.map((e) => e.id)).toEqual(['c']);
    expect(want).toEqual(['b', 'd']);
    expect(t.diff([], 2).send).toHaveLength(2);
  });

  test('a member silent for long enough is convicted; a fresh heartbeat brings it back', () => {
    const t = new MemberTable(entry('a'), opts);
    for (let i = 0; i <= 20; i++) t.merge([entry('b', 1, i)], i * 1000);
    expect(t.liveness('b', 20_000 + 500)).toBe('alive');
    expect(t.liveness('b', 20_000 + 10_000)).toBe('suspect');
    expect(t.liveness('b', 20_000 + 19_000)).toBe('down');
    t.merge([entry('b', 1, 21)], 40_000);
    expect(t.liveness('b', 40_000 + 100)).toBe('alive');
    expect(t.liveness('a', 1e12)).toBe('alive'); // never itself
  });

  test('a clean-shutdown notice marks the member down at once, until it shows a newer state', () => {
    const t = new MemberTable(entry('a'), opts);
    t.merge([entry('b', 1, 5)], 0);
    expect(t.markShutdown({ id: 'b', generation: 1, heartbeat: 6 })).toBe(true);
    expect(t.liveness('b', 10)).toBe('down');
    expect(t.view(10).find((m) => m.id === 'b')?.liveness).toBe('down');
    t.merge([entry('b', 1, 6)], 20); // older gossip still spreading: stays down
    expect(t.liveness('b', 30)).toBe('down');
    t.merge([entry('b', 2, 0)], 40); // restarted
    expect(t.liveness('b', 50)).toBe('alive');
    // a stale notice (the member already moved on) is ignored
    expect(t.markShutdown({ id: 'b', generation: 1, heartbeat: 9 })).toBe(false);
    expect(t.markShutdown({ id: 'nobody', generation: 1, heartbeat: 0 })).toBe(false);
  });

  test('a member that is down says why: it stopped cleanly, it was removed, or phi convicted it', () => {
    const t = new MemberTable(entry('a'), opts);
    for (let i = 0; i <= 20; i++) t.merge([entry('b', 1, i), entry('c', 1, i), entry('d', 1, i)], i * 1000);
    expect(['a', 'b', 'c', 'd'].map((id) => t.downReason(id, 20_500))).toEqual([undefined, undefined, undefined, undefined]);
    t.markShutdown({ id: 'b', generation: 1, heartbeat: 20 });
    t.setStatusOf('c', 'removed', 20_500);
    const later = 20_000 + 19_000; // d silent long enough to be convicted
    expect(t.view(later).map((m) => [m.id, m.liveness, m.downReason])).toEqual([
      ['a', 'alive', undefined],
      ['b', 'down', 'stopped'],
      ['c', 'down', 'removed'],
      ['d', 'down', 'convicted'],
    ]);
    // just after its notice, b is down as stopped, not by phi (which is still low)
    expect({ phi: t.phi('b', 20_600) < 1, reason: t.downReason('b', 20_600) }).toEqual({ phi: true, reason: 'stopped' });
  });

  test('members restored from disk are in the table at once, and convicted if they never speak', () => {
    const t = new MemberTable(entry('a', 9), opts);
    t.restore([{ id: 'b', address: 'b:1', generation: 3, status: 'normal' }], 1000);
    expect(t.ids()).toEqual(['a', 'b']);
    expect(t.get('b')?.heartbeat).toBe(0);
    expect(t.liveness('b', 1000 + 1000)).toBe('alive');
    expect(t.liveness('b', 1000 + 60_000)).toBe('down');
    // anything gossiped about b is newer than the restored entry
    expect(isNewer({ id: 'b', generation: 3, heartbeat: 1 }, t.get('b'))).toBe(true);
  });

  test('push-pull exchanges in any order make every table hold the same entries', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 8 }),
        fc.array(fc.tuple(fc.nat(), fc.nat()), { minLength: 30, maxLength: 120 }),
        (count, pairs) => {
          const tables = Array.from({ length: count }, (_, i) => new MemberTable(entry(`n${i}`, 1, 0, `n${i}:1`), opts));
          // node i knows only node 0 at first (a seed)
          for (const t of tables) t.merge([tables[0]?.self() as MemberEntry], 0);
          const exchange = (a: MemberTable, b: MemberTable) => {
            const { send, want } = b.diff(a.digests(), 256);
            a.merge(send, 1);
            b.merge(a.entries(want), 1);
          };
          for (const [x, y] of pairs) exchange(tables[x % count] as MemberTable, tables[y % count] as MemberTable);
          // then a deterministic sweep: every node with node 0 twice
          for (let r = 0; r < 2; r++) for (const t of tables) exchange(t, tables[0] as MemberTable);
          const states = tables.map((t) => JSON.stringify(t.all()));
          expect(new Set(states).size).toBe(1);
          expect(tables[0]?.size()).toBe(count);
        },
      ),
      { numRuns: 200 },
    );
  });
});
