// What LmdbStore keeps across a reopen (the contract every Store meets is in store.test.ts).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { open } from 'lmdb';
import { liveRecord, tombstone } from '../../src/core/record';
import { parseHintId } from '../../src/storage/hint-queues';
import { APPLY_INTERVAL_MS, LmdbStore } from '../../src/storage/lmdb-store';

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

  test('100 concurrent puts share a handful of log writes (group commit), 100 awaited one by one take one each, and LMDB takes them in a few commits', async () => {
    const s = LmdbStore.open({ path: dir });
    await s.put('warm-up', liveRecord(0, v(0)));
    await s.checkpoint();
    // A second, read-only handle on the same environment: its lastTxnId is the id of the newest
    // committed write transaction (LMDB's meta page), so a difference counts LMDB commits.
    const observer = open({ path: dir, noSubdir: false, readOnly: true });
    const lastTxnId = () => (observer.getStats() as { lastTxnId: number }).lastTxnId;
    try {
      const n = 100;
      const txnsBefore = lastTxnId();
      const started = Date.now();
      const beforeConcurrent = s.logStats().diskWrites;
      await Promise.all(Array.from({ length: n }, (_, i) => s.put(`c${i}`, liveRecord(i, v(i)))));
      const concurrentWrites = s.logStats().diskWrites - beforeConcurrent;

      const beforeSequential = s.logStats().diskWrites;
      for (let i = 0; i < n; i++) await s.put(`s${i}`, liveRecord(i, v(i)));
      const sequentialWrites = s.logStats().diskWrites - beforeSequential;
      const elapsedMs = Date.now() - started;
      await s.checkpoint();
      const lmdbCommits = lastTxnId() - txnsBefore;

      // every put is there, and in LMDB (the overlay of writes not yet applied is empty)
      expect(Array.from({ length: n }, (_, i) => i).filter((i) => s.get(`c${i}`)?.value !== i || s.get(`s${i}`)?.value !== i)).toEqual([]);
      expect(s.logStats().unapplied).toBe(0);
      // an awaited put is a log write of its own; the puts of one event turn share one (1 measured; a few allowed)
      expect(sequentialWrites).toBe(n);
      expect(concurrentWrites).toBeGreaterThanOrEqual(1);
      expect(concurrentWrites).toBeLessThanOrEqual(5);
      // LMDB commits once per apply interval at most, plus the checkpoint: never once per put
      expect(lmdbCommits).toBeGreaterThanOrEqual(1);
      expect(lmdbCommits).toBeLessThanOrEqual(Math.ceil(elapsedMs / APPLY_INTERVAL_MS) + 2);
      expect(lmdbCommits).toBeLessThan(2 * n);
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

describe('LmdbStore across a kill -9: the commit log', () => {
  // A real process writes and reports each write the moment its put resolves (the moment a node
  // would acknowledge it), and is killed with SIGKILL mid-stream; the store reopened here must hold
  // every reported write. With a 60 s apply interval nothing has reached LMDB when the kill lands:
  // all of it comes back from the log's replay; with the default interval, part of it does.
  const storeModule = path.join(__dirname, '..', '..', 'dist', 'src', 'storage', 'lmdb-store.js');
  const writer = `
    const { LmdbStore } = require(${JSON.stringify(storeModule)});
    const [dir, interval, segment] = process.argv.slice(1);
    const s = LmdbStore.open({ path: dir, applyIntervalMs: Number(interval), maxRecordBytes: 4096, logSegmentBytes: Number(segment) });
    const v = (i) => ({ wallMs: i, counter: 0, nodeId: 'n1' });
    let i = 0;
    async function one() {
      for (;;) {
        const n = i++;
        // every 7th write puts a key of its own and then removes it (a purge): it must stay gone;
        // the rest overwrite 500 keys with a value naming the write: each must hold its last or later
        if (n % 7 === 6) {
          await s.put('d' + n, { version: v(n), value: n });
          await s.delete('d' + n);
          process.stdout.write('del d' + n + ' ' + n + '\\n');
        } else {
          const key = 'k' + (n % 500);
          await s.put(key, { version: v(n), value: { n, pad: 'x'.repeat(n % 300) } });
          process.stdout.write('put ' + key + ' ' + n + '\\n');
        }
      }
    }
    for (let c = 0; c < 16; c++) one();
  `;

  async function writeThenKill(applyIntervalMs: number, segmentBytes: number, acks: number): Promise<Map<string, number | 'deleted'>> {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['-e', writer, dir, String(applyIntervalMs), String(segmentBytes)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // the last acknowledged write of each key: 16 writers, so acks of one key can come out of order
    const last = new Map<string, { n: number; kind: 'put' | 'del' }>();
    let seen = 0;
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    await new Promise<void>((resolve, reject) => {
      let buffered = '';
      const deadline = setTimeout(() => reject(new Error(`writer acknowledged ${seen} writes in 30 s; stderr: ${stderr}`)), 30_000);
      child.stdout.on('data', (d: Buffer) => {
        buffered += d.toString();
        const lines = buffered.split('\n');
        buffered = lines.pop() as string;
        for (const line of lines) {
          const [kind, key, n] = line.split(' ') as ['put' | 'del', string, string];
          const prev = last.get(key);
          if (prev === undefined || prev.n < Number(n)) last.set(key, { n: Number(n), kind });
          if (++seen === acks) {
            clearTimeout(deadline);
            child.kill('SIGKILL');
            resolve();
          }
        }
      });
      child.on('exit', () => {
        clearTimeout(deadline);
        if (seen < acks) reject(new Error(`writer exited after ${seen} writes; stderr: ${stderr}`));
      });
    });
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.on('exit', r)));
    return new Map([...last].map(([k, { n, kind }]) => [k, kind === 'del' ? 'deleted' : n]));
  }

  test('a write that lost to what its key held stays lost across a kill -9 and the replay of its frame', async () => {
    // putIfNewer logs a write before it checks the version, so the frame of a write that loses is
    // in the log; with nothing applied to LMDB yet (a 60 s interval), the replay meets it after the
    // write it lost to, and must skip it
    const { spawn } = await import('node:child_process');
    const script = `
      const { LmdbStore } = require(${JSON.stringify(storeModule)});
      const s = LmdbStore.open({ path: process.argv[1], applyIntervalMs: 60000 });
      const v = (wallMs) => ({ wallMs, counter: 0, nodeId: 'n1' });
      (async () => {
        await s.put('k', { version: v(5), value: 'newer' });
        const lost = await s.putIfNewer('k', { version: v(3), value: 'older' });
        const won = await s.putIfNewer('j', { version: v(3), value: 'only' });
        process.stdout.write(JSON.stringify({ lost, won }) + '\\n');
      })();
    `;
    const child = spawn(process.execPath, ['-e', script, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.trim());
      });
      child.on('exit', (code) => reject(new Error(`writer exited (${code}) before reporting: ${out}`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.on('exit', r)));
    expect(JSON.parse(line)).toEqual({ lost: { applied: false, held: { version: v(5), value: 'newer' } }, won: { applied: true } });
    const s = LmdbStore.open({ path: dir });
    try {
      expect(s.replayedAtOpen).toBe(3);
      expect(s.get('k')).toEqual({ version: v(5), value: 'newer' });
      expect(s.get('j')).toEqual({ version: v(3), value: 'only' });
    } finally {
      await s.close();
    }
  });

  // 4 MiB segments hold the whole run; 64 KiB ones are filled, reused and waited for many times over
  test.each([
    [60_000, 4 << 20],
    [50, 4 << 20],
    [50, 64 << 10],
  ])(
    'every write acknowledged before the kill is there after reopening (apply interval %i ms, segments of %i bytes)',
    async (interval, segmentBytes) => {
      const acked = await writeThenKill(interval, segmentBytes, 3_000);
      const s = LmdbStore.open({ path: dir, maxRecordBytes: 4096, logSegmentBytes: segmentBytes });
      try {
        if (interval === 60_000) expect(s.replayedAtOpen).toBeGreaterThanOrEqual(3_000);
        // a write acknowledged later than the last ack seen here may have landed too: newer is fine, older is a loss
        const lost = [...acked].filter(([key, want]) => {
          const got = s.get(key);
          if (want === 'deleted') return got !== undefined;
          return got === undefined || (got.value as { n: number }).n < want;
        });
        expect(lost).toEqual([]);
        expect([...acked.values()].filter((w) => w === 'deleted').length).toBeGreaterThan(100);
        // and the replayed state is what LMDB now holds: a checkpoint and a second reopen change nothing
        const before = [...s.entries()];
        await s.close();
        const again = LmdbStore.open({ path: dir, maxRecordBytes: 4096, logSegmentBytes: segmentBytes });
        expect(again.replayedAtOpen).toBe(0);
        expect([...again.entries()]).toEqual(before);
        await again.close();
      } finally {
        await s.close();
      }
    },
  );
});
