import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { tokenOf } from '../../src/core/hash';
import { liveRecord, tombstone } from '../../src/core/record';
import { LmdbStore } from '../../src/storage/lmdb-store';
import { MemoryStore } from '../../src/storage/memory-store';
import type { Store } from '../../src/storage/store';

const v = (wallMs: number) => ({ wallMs, counter: 0, nodeId: 'n1' });

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'qkv-store-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe.each([
  ['LmdbStore', () => LmdbStore.open({ path: dir })],
  ['MemoryStore', () => new MemoryStore()],
] as Array<[string, () => Store]>)('%s', (_name, open) => {
  test('stores live records and tombstones with any JSON value', async () => {
    const s = open();
    const values = [null, 0, 'ü', [1, { a: [] }], { deep: { x: true } }];
    for (const [i, value] of values.entries()) await s.put(`k${i}`, liveRecord(value, v(i + 1)));
    await s.put('gone', tombstone(v(9)));
    for (const [i, value] of values.entries()) expect(s.get(`k${i}`)).toEqual({ version: v(i + 1), value });
    expect(s.get('gone')).toEqual({ version: v(9), deleted: true });
    expect(s.get('absent')).toBeUndefined();
    expect(s.count()).toBe(values.length + 1);
    await s.close();
  });

  test('a write is visible to get() before it is durable, and still after', async () => {
    const s = open();
    const p = s.put('k', liveRecord('now', v(1)));
    expect(s.get('k')?.value).toBe('now');
    await p;
    expect(s.get('k')?.value).toBe('now');
    await s.close();
  });

  test('entries come in ring order: by token of the key', async () => {
    const s = open();
    const keys = Array.from({ length: 200 }, (_, i) => `key-${i}`);
    await Promise.all(keys.map((k, i) => s.put(k, liveRecord(i, v(1)))));
    const seen = [...s.entries()].map(([k]) => k);
    expect(seen.length).toBe(200);
    const tokens = seen.map(tokenOf);
    expect(tokens).toEqual([...tokens].sort((a, b) => a - b));
    await s.close();
  });

  test('meta values round-trip', async () => {
    const s = open();
    await s.putMeta('members', [{ id: 'n2', address: '127.0.0.2:8080', generation: 5 }]);
    expect(s.getMeta('members')).toEqual([{ id: 'n2', address: '127.0.0.2:8080', generation: 5 }]);
    expect(s.getMeta('nothing')).toBeUndefined();
    await s.close();
  });
});

describe('LmdbStore durability', () => {
  test('everything whose put resolved is there after reopening, and concurrent puts share commits', async () => {
    const s = LmdbStore.open({ path: dir });
    const n = 2000;
    await Promise.all(Array.from({ length: n }, (_, i) => s.put(`k${i}`, liveRecord({ i }, v(i)))));
    await s.close();
    const again = LmdbStore.open({ path: dir });
    const missing = Array.from({ length: n }, (_, i) => i).filter((i) => again.get(`k${i}`)?.value === undefined);
    expect(missing).toEqual([]);
    expect(again.get('k1999')).toEqual({ version: v(1999), value: { i: 1999 } });
    await again.close();
  });

  test('a data directory whose name has a dot (a node id like kv-0.east) opens as a directory', async () => {
    const dotted = path.join(dir, 'kv-0.east');
    const s = LmdbStore.open({ path: dotted });
    await s.put('k', liveRecord(1, v(1)));
    await s.close();
    const again = LmdbStore.open({ path: dotted });
    expect(again.get('k')?.value).toBe(1);
    await again.close();
  });

  test('a superseded pending write does not hide the newer one', async () => {
    const s = LmdbStore.open({ path: dir });
    const a = s.put('k', liveRecord('first', v(1)));
    const b = s.put('k', liveRecord('second', v(2)));
    await a;
    expect(s.get('k')?.value).toBe('second');
    await b;
    expect(s.get('k')?.value).toBe('second');
    await s.close();
  });
});
