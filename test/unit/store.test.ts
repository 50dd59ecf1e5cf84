// The Store contract, checked on every implementation: LmdbStore (production), MemoryStore (unit
// tests) and SimStore (the simulator, whose commits land only when its scheduler runs).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { tokenOf } from '../../src/core/hash';
import { SeededRandom } from '../../src/core/random';
import { liveRecord, type StoredRecord, tombstone } from '../../src/core/record';
import { Scheduler } from '../../src/sim/scheduler';
import { SimStore } from '../../src/sim/sim-store';
import { LmdbStore } from '../../src/storage/lmdb-store';
import { MemoryStore } from '../../src/storage/memory-store';
import { compareKeys, MAX_TOKEN } from '../../src/storage/ring-index';
import type { Hint, Store } from '../../src/storage/store';

const v = (wallMs: number) => ({ wallMs, counter: 0, nodeId: 'n1' });
const RING = 2 ** 32;

/** Two pairs of keys that share a token: ring order breaks the tie by the keys' UTF-8 bytes. */
const SAME_TOKEN = ['c119089', 'c100368', '\uffff146941', '😀1431'];

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'qkv-store-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

interface Harness {
  store: Store;
  /** Resolves with `p`, letting the store's commits happen meanwhile (SimStore's need its scheduler run). */
  done<T>(p: Promise<T>): Promise<T>;
}

function simHarness(): Harness & { store: SimStore } {
  const scheduler = new Scheduler(0);
  const store = new SimStore(scheduler, new SeededRandom(7));
  return {
    store,
    async done<T>(p: Promise<T>): Promise<T> {
      let settled = false;
      const mark = () => {
        settled = true;
      };
      p.then(mark, mark);
      if (!(await scheduler.runWhile(() => !settled, scheduler.now + 600_000))) throw new Error('the simulated write never landed');
      return p;
    },
  };
}

const harnesses: Array<[string, () => Harness]> = [
  ['LmdbStore', () => ({ store: LmdbStore.open({ path: dir }), done: (p) => p })],
  ['MemoryStore', () => ({ store: new MemoryStore(), done: (p) => p })],
  ['SimStore', simHarness],
];

/** What range(from, to) must return: the model's keys in (from, to], ring order from just after `from`. */
function expectedRange(model: ReadonlyMap<string, StoredRecord>, from: number, to: number): Array<[string, StoredRecord]> {
  const dist = (t: number) => (t - from - 1 + RING) % RING;
  const span = from < to ? to - from : to - from + RING;
  return [...model]
    .filter(([k]) => dist(tokenOf(k)) < span)
    .sort(([a], [b]) => dist(tokenOf(a)) - dist(tokenOf(b)) || Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

describe.each(harnesses)('%s', (_name, open) => {
  test('stores live records and tombstones with any JSON value', async () => {
    const { store: s, done } = open();
    const values = [null, 0, 'ü', [1, { a: [] }], { deep: { x: true } }];
    for (const [i, value] of values.entries()) await done(s.put(`k${i}`, liveRecord(value, v(i + 1))));
    await done(s.put('gone', tombstone(v(9))));
    for (const [i, value] of values.entries()) expect(s.get(`k${i}`)).toEqual({ version: v(i + 1), value });
    expect(s.get('gone')).toEqual({ version: v(9), deleted: true });
    expect(s.get('absent')).toBeUndefined();
    expect(s.count()).toBe(values.length + 1);
    await done(s.close());
  });

  test('a write is visible to get() before it is durable, and still after', async () => {
    const { store: s, done } = open();
    const p = s.put('k', liveRecord('now', v(1)));
    expect(s.get('k')?.value).toBe('now');
    expect(s.count()).toBe(1);
    await done(p);
    expect(s.get('k')?.value).toBe('now');
    await done(s.close());
  });

  test('putIfNewer: last write wins, and a write that loses says what the key held', async () => {
    const { store: s, done } = open();
    expect(await done(s.putIfNewer('k', liveRecord('first', v(2))))).toEqual({ applied: true });
    expect(await done(s.putIfNewer('k', liveRecord('older', v(1))))).toEqual({ applied: false, held: { version: v(2), value: 'first' } });
    expect(await done(s.putIfNewer('k', liveRecord('first', v(2))))).toEqual({ applied: false, held: { version: v(2), value: 'first' } });
    expect(await done(s.putIfNewer('k', tombstone(v(3))))).toEqual({ applied: true });
    // a record in flight counts as held: the check sees writes not yet durable
    const inFlight = s.putIfNewer('j', liveRecord('a', v(5)));
    const late = s.putIfNewer('j', liveRecord('b', v(4)));
    expect(await done(inFlight)).toEqual({ applied: true });
    expect(await done(late)).toEqual({ applied: false, held: { version: v(5), value: 'a' } });
    expect(s.get('k')).toEqual({ version: v(3), deleted: true });
    expect(s.get('j')?.value).toBe('a');
    expect(s.count()).toBe(2);
    await done(s.close());
  });

  test('entries come in ring order: by token of the key, then by its UTF-8 bytes', async () => {
    const { store: s, done } = open();
    const keys = [...Array.from({ length: 200 }, (_, i) => `key-${i}`), ...SAME_TOKEN];
    await done(Promise.all(keys.map((k, i) => s.put(k, liveRecord(i, v(1))))));
    const seen = [...s.entries()].map(([k]) => k);
    expect(seen.length).toBe(keys.length);
    const tokens = seen.map(tokenOf);
    expect(tokens).toEqual([...tokens].sort((a, b) => a - b));
    // the same order LMDB keeps on disk, whichever store: UTF-16 order would put the emoji first
    expect(seen.filter((k) => SAME_TOKEN.includes(k))).toEqual(['c100368', 'c119089', '\uffff146941', '😀1431']);
    await done(s.close());
  });

  test('meta values round-trip', async () => {
    const { store: s, done } = open();
    await done(s.putMeta('members', [{ id: 'n2', address: '127.0.0.2:8080', generation: 5 }]));
    expect(s.getMeta('members')).toEqual([{ id: 'n2', address: '127.0.0.2:8080', generation: 5 }]);
    expect(s.getMeta('nothing')).toBeUndefined();
    await done(s.close());
  });

  test('range(from, to) is exactly the records whose token is in (from, to], in ring order, writes in flight included', async () => {
    const { store: s, done } = open();
    const keys = [...Array.from({ length: 300 }, (_, i) => `key-${i}`), ...SAME_TOKEN];
    const model = new Map<string, StoredRecord>();
    const write = (k: string, r: StoredRecord | undefined): Promise<void> => {
      if (r === undefined) {
        model.delete(k);
        return s.delete(k);
      }
      model.set(k, r);
      return s.put(k, r);
    };
    await done(Promise.all(keys.map((k, i) => write(k, i % 7 === 0 ? tombstone(v(i)) : liveRecord(i, v(i))))));

    const tokens = keys.map(tokenOf);
    const token = fc.oneof(
      fc.integer({ min: 0, max: MAX_TOKEN }),
      fc.constantFrom(0, 1, MAX_TOKEN - 1, MAX_TOKEN),
      // on and next to the tokens of stored keys: the bounds' off-by-ones
      fc.tuple(fc.constantFrom(...tokens), fc.integer({ min: -1, max: 1 })).map(([t, d]) => (t + d + RING) % RING),
    );
    const bounds = fc.oneof(
      fc.tuple(token, token),
      token.map((t): [number, number] => [t, t]),
      token.map((t): [number, number] => [t, (t + 1) % RING]),
      token.map((t): [number, number] => [(t + 1) % RING, t]),
    );
    const op = fc.tuple(fc.integer({ min: 0, max: keys.length + 20 }), fc.constantFrom('put', 'tombstone', 'delete'));
    let wallMs = 1_000;
    const check = (ranges: Array<[number, number]>, when: string) => {
      for (const [from, to] of ranges) {
        const got = [...s.range(from, to)];
        const want = expectedRange(model, from, to);
        if (got.length !== want.length || got.some(([k], i) => k !== want[i]?.[0])) {
          throw new Error(`${when}: range(${from}, ${to}) gave ${got.length} keys, want ${want.length}`);
        }
        expect(got).toEqual(want);
      }
    };
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 30 }), fc.array(bounds, { minLength: 1, maxLength: 8 }), async (ops, ranges) => {
        const writes = ops.map(([i, kind]) => {
          const k = keys[i] ?? `new-${i}`;
          wallMs++;
          return write(k, kind === 'delete' ? undefined : kind === 'tombstone' ? tombstone(v(wallMs)) : liveRecord(wallMs, v(wallMs)));
        });
        check(ranges, 'writes in flight');
        expect(s.count()).toBe(model.size);
        await done(Promise.all(writes));
        check(ranges, 'writes durable');
        expect(s.count()).toBe(model.size);
      }),
      { numRuns: 60 },
    );
    expect([...s.entries()]).toEqual(expectedRange(model, MAX_TOKEN, MAX_TOKEN));
    await done(s.close());
  });

  test('a range over 1/64 of the ring reads about 1/64 of 20k keys, not all of them', async () => {
    const { store: s, done } = open();
    const n = 20_000;
    const keys = Array.from({ length: n }, (_, i) => `user:${i}`);
    await done(Promise.all(keys.map((k, i) => s.put(k, liveRecord(i, v(1))))));
    const from = 5 * 2 ** 26 - 1;
    const to = 6 * 2 ** 26 - 1;
    // LMDB: once the writes have left the commit log's overlay for the B-tree
    if (s instanceof LmdbStore) await s.checkpoint();
    const readBefore = s instanceof LmdbStore ? s.rangeRowsReadForTests : 0;
    let yielded = 0;
    for (const _ of s.range(from, to)) yielded++;
    expect(yielded).toBe(keys.filter((k) => tokenOf(k) > from && tokenOf(k) <= to).length);
    expect(yielded).toBeLessThan((2 * n) / 64);
    // LMDB: the rows its cursor went over, not only those that came out
    if (s instanceof LmdbStore) expect(s.rangeRowsReadForTests - readBefore).toBe(yielded);
    await done(s.close());
  });

  test('delete removes a key entirely: gone from get, range, entries and count', async () => {
    const { store: s, done } = open();
    await done(Promise.all(['a', 'b', 'c'].map((k, i) => s.put(k, i === 2 ? tombstone(v(3)) : liveRecord(k, v(i + 1))))));
    const deleting = Promise.all([s.delete('a'), s.delete('c'), s.delete('never-there')]);
    const check = () => {
      expect(s.get('a')).toBeUndefined();
      expect(s.get('c')).toBeUndefined();
      expect([...s.entries()].map(([k]) => k)).toEqual(['b']);
      expect([...s.range(tokenOf('a') - 1, tokenOf('a'))]).toEqual([]);
      expect(s.count()).toBe(1);
    };
    check(); // at once, before it is durable
    await done(deleting);
    check();
    await done(s.close());
  });

  test('a put still in flight when the key is deleted does not come back', async () => {
    const { store: s, done } = open();
    await done(s.put('k', liveRecord('committed', v(1))));
    const put = s.put('k', liveRecord('in flight', v(2)));
    const del = s.delete('k');
    expect(s.get('k')).toBeUndefined();
    expect([...s.entries()]).toEqual([]);
    await done(Promise.all([put, del]));
    expect(s.get('k')).toBeUndefined();
    expect([...s.entries()]).toEqual([]);
    expect(s.count()).toBe(0);
    await done(s.close());
  });

  test('a put issued after a delete wins, in flight and once durable', async () => {
    const { store: s, done } = open();
    await done(s.put('k', liveRecord('old', v(1))));
    const del = s.delete('k');
    const put = s.put('k', liveRecord('new', v(2)));
    expect(s.get('k')?.value).toBe('new');
    expect([...s.entries()].map(([k, r]) => [k, r.value])).toEqual([['k', 'new']]);
    await done(Promise.all([del, put]));
    expect(s.get('k')?.value).toBe('new');
    expect([...s.entries()].map(([k, r]) => [k, r.value])).toEqual([['k', 'new']]);
    expect(s.count()).toBe(1);
    await done(s.close());
  });

  test('hints: oldest first per target, at most limit, counted per target, removed by id', async () => {
    const { store: s, done } = open();
    const add = (target: string, key: string, createdAtMs: number) =>
      done(s.addHint({ target, key, record: liveRecord(key, v(createdAtMs)), createdAtMs }));
    // the clock may step back between two hints: createdAtMs orders them, then the order they came
    const a = await add('n1', 'a', 1_700_000_000_300);
    const b = await add('n1', 'b', 1_700_000_000_100);
    const c = await add('n10', 'c', 1_700_000_000_200);
    const d = await add('n1', 'd', 1_700_000_000_100);
    expect(a).toEqual({ id: a.id, target: 'n1', key: 'a', record: liveRecord('a', v(1_700_000_000_300)), createdAtMs: 1_700_000_000_300 });
    expect(new Set([a.id, b.id, c.id, d.id]).size).toBe(4);

    const keysOf = (hs: Hint[]) => hs.map((h) => h.key);
    expect(keysOf(s.hints('n1', 10))).toEqual(['b', 'd', 'a']);
    expect(s.hints('n1', 10)).toEqual([b, d, a]);
    expect(keysOf(s.hints('n1', 2))).toEqual(['b', 'd']);
    expect(s.hints('n1', 0)).toEqual([]);
    expect(keysOf(s.hints('n10', 10))).toEqual(['c']); // not n1's, though 'n1' is a prefix of 'n10'
    expect(s.hints('n2', 10)).toEqual([]);
    expect([s.hintCount('n1'), s.hintCount('n10'), s.hintCount('n2'), s.hintCount()]).toEqual([3, 1, 0, 4]);
    expect(s.hintTargets()).toEqual(['n1', 'n10']);
    // ids sort like the queue: (target, createdAtMs, then the order added)
    expect([b.id, d.id, a.id]).toEqual([a.id, b.id, d.id].sort());

    await done(s.removeHints([b.id, 'not-an-id', c.id, c.id, `n1\u0000${'0'.repeat(15)}\u0000${'0'.repeat(16)}`]));
    expect(keysOf(s.hints('n1', 10))).toEqual(['d', 'a']);
    expect([s.hintCount('n1'), s.hintCount('n10'), s.hintCount()]).toEqual([2, 0, 2]);
    expect(s.hintTargets()).toEqual(['n1']);
    await done(s.removeHints([b.id])); // again: already gone, ignored
    expect(s.hintCount()).toBe(2);
    await done(s.close());
  });

  test('hints being added or removed are seen at once, before they are durable', async () => {
    const { store: s, done } = open();
    const first = await done(s.addHint({ target: 'n2', key: 'x', record: tombstone(v(5)), createdAtMs: 50 }));
    const adding = s.addHint({ target: 'n2', key: 'y', record: liveRecord(1, v(6)), createdAtMs: 40 });
    expect(s.hints('n2', 10).map((h) => h.key)).toEqual(['y', 'x']);
    expect(s.hintCount('n2')).toBe(2);
    const removing = s.removeHints([first.id]);
    expect(s.hints('n2', 10).map((h) => h.key)).toEqual(['y']);
    expect(s.hintCount()).toBe(1);
    const second = await done(adding);
    await done(removing);
    expect(s.hints('n2', 10)).toEqual([second]);
    await done(s.removeHints([second.id]));
    expect(s.hintTargets()).toEqual([]);
    expect(s.hintCount()).toBe(0);
    await done(s.close());
  });

  test('a hint whose id could not keep the order is refused: negative time, NUL in the target', async () => {
    const { store: s, done } = open();
    await expect(done(s.addHint({ target: 'n2', key: 'k', record: tombstone(v(1)), createdAtMs: -1 }))).rejects.toThrow(/createdAtMs/);
    await expect(done(s.addHint({ target: 'n\u00002', key: 'k', record: tombstone(v(1)), createdAtMs: 1 }))).rejects.toThrow(/NUL/);
    expect(s.hintCount()).toBe(0);
    await done(s.close());
  });
});

describe('SimStore crash', () => {
  test('a crash keeps committed hints and loses those not yet committed, adds and removes alike', async () => {
    const { store: s, done } = simHarness();
    const kept = await done(s.addHint({ target: 'n2', key: 'a', record: tombstone(v(1)), createdAtMs: 10 }));
    const gone = await done(s.addHint({ target: 'n2', key: 'b', record: tombstone(v(2)), createdAtMs: 20 }));
    await done(s.removeHints([gone.id]));
    // neither commits before the crash
    void s.addHint({ target: 'n3', key: 'c', record: tombstone(v(3)), createdAtMs: 30 });
    void s.removeHints([kept.id]);
    expect(s.hintTargets()).toEqual(['n3']);
    s.crash();
    expect(s.hints('n2', 10)).toEqual([kept]);
    expect(s.hintTargets()).toEqual(['n2']);
    expect([s.hintCount('n2'), s.hintCount('n3'), s.hintCount()]).toEqual([1, 0, 1]);
    const after = await done(s.addHint({ target: 'n2', key: 'd', record: tombstone(v(4)), createdAtMs: 5 }));
    expect([kept.id, gone.id]).not.toContain(after.id);
    expect(s.hints('n2', 10).map((h) => h.key)).toEqual(['d', 'a']);
  });

  test('a crash before a delete commits loses the delete: the record stays, in get, range and count', async () => {
    const { store: s, done } = simHarness();
    await done(s.put('k', liveRecord('kept', v(1))));
    void s.delete('k');
    void s.put('fresh', liveRecord('lost', v(2)));
    expect(s.get('k')).toBeUndefined();
    expect([...s.entries()].map(([k]) => k)).toEqual(['fresh']);
    s.crash();
    expect(s.get('k')?.value).toBe('kept');
    expect(s.get('fresh')).toBeUndefined();
    expect([...s.entries()].map(([k, r]) => [k, r.value])).toEqual([['k', 'kept']]);
    expect([...s.range(tokenOf('k') - 1, tokenOf('k'))].map(([k]) => k)).toEqual(['k']);
    expect(s.count()).toBe(1);
  });
});

describe('ring order', () => {
  test('compareKeys orders strings as their UTF-8 bytes do', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (a, b) => {
        expect(Math.sign(compareKeys(a, b))).toBe(Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b))));
      }),
      { numRuns: 1_000 },
    );
    expect(compareKeys('\uffff', '😀')).toBeLessThan(0);
    expect(compareKeys('a', 'ab')).toBeLessThan(0);
  });
});
