// What LmdbStore keeps across a reopen (the contract every Store meets is in store.test.ts).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { open } from 'lmdb';
import { liveRecord, tombstone } from '../../src/core/record';
import { parseHintId } from '../../src/storage/hint-queues';
import { LmdbStore } from '../../src/storage/lmdb-store';

const v = (wallMs: number) => ({ wallMs, counter: 0, nodeId: 'n1' });

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'qkv-store-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('LmdbStore durability', () => {
  test('everything whose put resolved is there after reopening', async () => {
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

  test('100 concurrent puts share a handful of LMDB commits (group commit); 100 awaited one by one take one commit each', async () => {
    const s = LmdbStore.open({ path: dir });
    await s.put('warm-up', liveRecord(0, v(0)));
    // A second, read-only handle on the same environment: its lastTxnId is the id of the newest
    // committed write transaction (LMDB's meta page), so a difference counts commits; with
    // overlappingSync off, each commit is also one sync before its puts resolve.
    const observer = open({ path: dir, noSubdir: false, readOnly: true });
    const lastTxnId = () => (observer.getStats() as { lastTxnId: number }).lastTxnId;
    try {
      const n = 100;
      const beforeConcurrent = lastTxnId();
      await Promise.all(Array.from({ length: n }, (_, i) => s.put(`c${i}`, liveRecord(i, v(i)))));
      const concurrentCommits = lastTxnId() - beforeConcurrent;

      const beforeSequential = lastTxnId();
      for (let i = 0; i < n; i++) await s.put(`s${i}`, liveRecord(i, v(i)));
      const sequentialCommits = lastTxnId() - beforeSequential;

      // every put is there (committed, not only in the overlay of writes in flight)
      expect(Array.from({ length: n }, (_, i) => i).filter((i) => s.get(`c${i}`)?.value !== i)).toEqual([]);
      // the counter counts commits: an awaited put is a transaction of its own
      expect(sequentialCommits).toBe(n);
      // lmdb-js batches the puts issued in one event turn into one transaction (1 measured; a few allowed)
      expect(concurrentCommits).toBeGreaterThanOrEqual(1);
      expect(concurrentCommits).toBeLessThanOrEqual(5);
    } finally {
      await observer.close();
      await s.close();
    }
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

  test('a value with a TTL keeps its expiresAt through LMDB and a reopen; one without has none', async () => {
    const s = LmdbStore.open({ path: dir });
    const expiresAt = 1_767_225_660_000;
    await s.put('ttl', liveRecord({ a: 1 }, v(1), expiresAt));
    await s.put('plain', liveRecord('x', v(2)));
    await s.put('gone', tombstone(v(3)));
    await s.addHint({ target: 'n2', key: 'ttl', record: liveRecord('h', v(4), expiresAt), createdAtMs: 10 });
    await s.close();
    const again = LmdbStore.open({ path: dir });
    expect(again.get('ttl')).toEqual({ version: v(1), value: { a: 1 }, expiresAt });
    expect(Object.keys(again.get('plain') ?? {})).not.toContain('expiresAt');
    expect(again.get('gone')).toEqual({ version: v(3), deleted: true });
    expect(new Map(again.entries()).get('ttl')?.expiresAt).toBe(expiresAt);
    expect(again.hints('n2', 1)[0]?.record).toEqual({ version: v(4), value: 'h', expiresAt });
    await again.close();
  });

  test('a delete is durable: the key stays gone after a reopen, even with a put in flight before it', async () => {
    const s = LmdbStore.open({ path: dir });
    await s.put('deleted', liveRecord('old', v(1)));
    await s.put('overwritten', liveRecord('old', v(1)));
    const writes = [
      s.put('deleted', liveRecord('in flight', v(2))),
      s.delete('deleted'),
      s.delete('overwritten'),
      s.put('overwritten', liveRecord('new', v(2))),
    ];
    await Promise.all(writes);
    await s.close();
    const again = LmdbStore.open({ path: dir });
    expect(again.get('deleted')).toBeUndefined();
    expect(again.get('overwritten')?.value).toBe('new');
    expect([...again.entries()].map(([k]) => k)).toEqual(['overwritten']);
    expect(again.count()).toBe(1);
    await again.close();
  });

  test('hints survive a reopen: same queues, counts right at once, and new ids never repeat old ones', async () => {
    const s = LmdbStore.open({ path: dir });
    const added = [];
    for (let i = 0; i < 50; i++) {
      added.push(await s.addHint({ target: `n${i % 3}`, key: `k${i}`, record: liveRecord(i, v(i)), createdAtMs: 1_000 + (i % 7) }));
    }
    // the newest (highest seq) among them: a restart must not hand its seq out again
    const removed = added.filter((_, i) => i % 5 === 0 || i === 49);
    await s.removeHints(removed.map((h) => h.id));
    const before = { n0: s.hints('n0', 100), n1: s.hints('n1', 100), n2: s.hints('n2', 100), counts: s.hintCount() };
    const highestSeq = Math.max(...added.map((h) => parseHintId(h.id)?.seq ?? Number.NaN));
    await s.close();

    const again = LmdbStore.open({ path: dir });
    expect(again.hintCount()).toBe(39);
    expect(again.hintTargets()).toEqual(['n0', 'n1', 'n2']);
    expect([again.hintCount('n0'), again.hintCount('n1'), again.hintCount('n2')]).toEqual([
      before.n0.length,
      before.n1.length,
      before.n2.length,
    ]);
    expect({ n0: again.hints('n0', 100), n1: again.hints('n1', 100), n2: again.hints('n2', 100), counts: again.hintCount() }).toEqual(
      before,
    );
    const next = await again.addHint({ target: 'n0', key: 'after', record: tombstone(v(99)), createdAtMs: 1_000 });
    expect(added.map((h) => h.id)).not.toContain(next.id);
    expect(parseHintId(next.id)?.seq).toBeGreaterThan(highestSeq);
    expect(again.hintCount('n0')).toBe(before.n0.length + 1);
    await again.close();
  });
});
