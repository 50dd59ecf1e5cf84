// Repair with real processes: hints bring a restarted node up to date, anti-entropy rebuilds a
// node whose data directory was deleted, read repair fixes the replica a read meets, TTL expires.

import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { cliPath, type LocalNode } from '../../scripts/lib/local-cluster';
import { cleanupClusters, FAST_ARGS, startCluster } from '../helpers/cluster';
import { eventually, mapLimit } from '../helpers/eventually';
import { get, http, put } from '../helpers/http';
import { replicaRecord } from '../helpers/peer';

const exec = promisify(execFile);
afterEach(cleanupClusters);

/** What one replica holds for `key`, read straight from its store. */
async function onReplica(
  n: LocalNode,
  key: string,
): Promise<{ value?: unknown; version?: { wallMs: number; counter: number; nodeId: string } } | null> {
  return replicaRecord(n.address, key) as Promise<{
    value?: unknown;
    version?: { wallMs: number; counter: number; nodeId: string };
  } | null>;
}

async function metric(n: LocalNode, name: string): Promise<number> {
  const text = await fetch(`${n.url}/metrics`).then((r) => r.text());
  return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)$`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);
}

/** Keys whose record on `n` is not the version the cluster acknowledged. */
async function mismatches(n: LocalNode, acked: Map<string, string>): Promise<string[]> {
  const bad: string[] = [];
  await mapLimit([...acked], 32, async ([key, version]) => {
    const rec = await onReplica(n, key);
    const v = rec?.version ? `${rec.version.wallMs}.${rec.version.counter}@${rec.version.nodeId}` : 'none';
    if (v !== version) bad.push(key);
  });
  return bad;
}

test('10k keys written while a node was stopped reach it by hinted handoff after it restarts', async () => {
  // anti-entropy off for this test, so what arrives came by hints; delivered at up to 20k a second
  // (the default 2,000 would make this test wait 5 s for the rate alone)
  const c = await startCluster('127.26.1', {
    args: [...FAST_ARGS, '--anti-entropy-interval-ms', '3600000', '--read-repair', 'false', '--hint-delivery-rate', '20000'],
  });
  const [n1, n2, n3] = c.nodes as [LocalNode, LocalNode, LocalNode];
  await n3.kill('SIGKILL');
  const acked = new Map<string, string>();
  await mapLimit(
    Array.from({ length: 10_000 }, (_, i) => i),
    32,
    async (i) => {
      const w = await put((i % 2 ? n1 : n2).url, `hinted-${i}`, i);
      if (w.status === 200) acked.set(`hinted-${i}`, w.body.version);
    },
  );
  expect(acked.size).toBe(10_000);
  expect((await metric(n1, 'quorumkv_hints_pending')) + (await metric(n2, 'quorumkv_hints_pending'))).toBe(10_000);

  await n3.start();
  const restarted = Date.now();
  await eventually(
    async () => expect((await metric(n1, 'quorumkv_hints_pending')) + (await metric(n2, 'quorumkv_hints_pending'))).toBe(0),
    {
      timeoutMs: 60_000,
      intervalMs: 200,
    },
  );
  const deliveredAfterS = (Date.now() - restarted) / 1000;
  expect(await mismatches(n3, acked)).toEqual([]);
  console.log(
    `hinted handoff: 10,000 hints delivered to the restarted node ${deliveredAfterS.toFixed(1)} s after it started; its replicas match`,
  );
}, 120_000);

async function writeKeys(via: LocalNode[], keys: number, query = ''): Promise<Map<string, string>> {
  const acked = new Map<string, string>();
  await mapLimit(
    Array.from({ length: keys }, (_, i) => i),
    32,
    async (i) => {
      const w = await put((via[i % via.length] as LocalNode).url, `kept-${i}`, { i, pad: 'x'.repeat(80) }, query);
      if (w.status === 200) acked.set(`kept-${i}`, w.body.version);
    },
  );
  expect(acked.size).toBe(keys);
  return acked;
}

test('anti-entropy (quorumkv repair) rebuilds a replica that missed every write', async () => {
  // no hints and no read repair: what reaches n3 comes by anti-entropy
  const c = await startCluster('127.26.2', {
    args: [...FAST_ARGS, '--max-hints-per-node', '0', '--read-repair', 'false', '--anti-entropy-interval-ms', '3600000'],
  });
  const [n1, n2, n3] = c.nodes as [LocalNode, LocalNode, LocalNode];
  const keys = 5_000;
  await n3.kill('SIGKILL');
  const acked = await writeKeys([n1, n2], keys);
  await n3.start();
  await c.waitFormed();
  expect((await mismatches(n3, acked)).length).toBe(keys);

  // on a terminal (script(1) gives the command one), the progress is a bar redrawn in place
  const started = Date.now();
  const { stdout: drawn } = await exec('script', ['-qec', `${process.execPath} ${cliPath()} repair --url ${n3.url}`, '/dev/null'], {
    timeout: 120_000,
  });
  const seconds = (Date.now() - started) / 1000;
  const frames = drawn.split('\r\x1b[2K').slice(1);
  expect(frames.length).toBeGreaterThan(0);
  expect(frames.at(-1)).toMatch(/^repair \[█{24}\] 100% {2}ranges (\d+)\/\1 {2}\d+ differed {2}[\d,]+ keys compared {2}5,000 repaired/);
  expect(drawn).toMatch(/repair finished\r?\n$/);
  expect(await mismatches(n3, acked)).toEqual([]);
  const status = (await http('GET', `${n3.url}/admin/repair`)).body;
  console.log(
    `anti-entropy rebuilt a replica that missed ${keys} writes in ${seconds.toFixed(1)} s (quorumkv repair): ` +
      `${status.keys_repaired} records moved, ${status.bytes_sent} bytes sent and ${status.bytes_received} received by the rebuilt node`,
  );
  expect(status.keys_repaired).toBe(keys);
  // anywhere else (a pipe, a log), the same facts as plain lines, without control characters
  const { stdout: plain } = await exec(process.execPath, [cliPath(), 'repair', '--url', n3.url], { timeout: 120_000 });
  const lines = plain.trim().split('\n');
  expect(lines.at(-2)).toMatch(/^repair: 100%, ranges (\d+)\/\1, 0 differed, [\d,]+ keys compared, 0 repaired, /);
  expect({ last: lines.at(-1), control: plain.includes('\r') || plain.includes('\x1b[') }).toEqual({
    last: 'repair finished',
    control: false,
  });
}, 180_000);

test('a node whose data directory was deleted streams its ranges back before it serves reads', async () => {
  const c = await startCluster('127.26.5', { args: [...FAST_ARGS, '--max-hints-per-node', '0', '--read-repair', 'false'] });
  const [n1, n2, n3] = c.nodes as [LocalNode, LocalNode, LocalNode];
  const keys = 5_000;
  const acked = await writeKeys([n1, n2], keys, '?consistency=all');
  await n3.kill('SIGKILL');
  rmSync(n3.spec.dataDir, { recursive: true, force: true });
  const started = Date.now();
  await n3.start();
  await c.waitFormed(60_000); // n3 is normal again only once it has streamed its ranges in
  const seconds = (Date.now() - started) / 1000;
  expect(await mismatches(n3, acked)).toEqual([]);
  const move = (await http('GET', `${n3.url}/admin/move`)).body;
  expect(move).toMatchObject({ status: 'normal', move: { kind: 'join', phase: 'done', replacing: true } });
  // it streamed its ranges from both other replicas (its own copy, which they counted on, is gone)
  expect(move.move.records_streamed).toBeGreaterThanOrEqual(keys);
  // every key reads back at quorum through n3 as coordinator
  const misses: string[] = [];
  await mapLimit([...acked.keys()].slice(0, 500), 32, async (k) => {
    if ((await get(n3.url, k)).status !== 200) misses.push(k);
  });
  expect(misses).toEqual([]);
  console.log(
    `a node with a deleted data directory rebuilt itself in ${seconds.toFixed(1)} s after restart: ` +
      `${move.move.records_streamed} records (${move.move.bytes_streamed} bytes) streamed from the other replicas`,
  );
}, 180_000);

test('a read that meets a stale replica repairs it: a later consistency=one read from it returns the new value', async () => {
  const c = await startCluster('127.26.3', { args: [...FAST_ARGS, '--max-hints-per-node', '0', '--anti-entropy-interval-ms', '3600000'] });
  const [n1, , n3] = c.nodes as [LocalNode, LocalNode, LocalNode];
  expect((await put(n1.url, 'k', 'old', '?consistency=all')).status).toBe(200);
  await n3.kill('SIGKILL');
  const w = await put(n1.url, 'k', 'new');
  expect(w.status).toBe(200);
  await n3.start();
  await c.waitFormed();
  expect((await onReplica(n3, 'k'))?.value).toBe('old');

  const r = await get(n1.url, 'k', '?consistency=all');
  expect(r.body).toMatchObject({ value: 'new', read_repaired: ['n3'] });
  expect((await onReplica(n3, 'k'))?.value).toBe('new');
  const one = await get(n3.url, 'k', '?consistency=one');
  expect(one.body.value).toBe('new');
  expect(await metric(n1, 'quorumkv_read_repairs_total')).toBe(1);
});

test('a value written with ?ttl expires: it reads as absent, with the time it expired', async () => {
  const c = await startCluster('127.26.4');
  const [n1, n2] = c.nodes as [LocalNode, LocalNode];
  const w = await put(n1.url, 'session', 'abc', '?ttl=1');
  expect(w.status).toBe(200);
  expect(Date.parse(w.body.expires_at) - Date.now()).toBeLessThanOrEqual(1000);
  expect((await get(n2.url, 'session')).body.value).toBe('abc');
  await eventually(async () => {
    const r = await get(n2.url, 'session');
    expect(r.status).toBe(404);
    expect(r.body.error).toMatchObject({ code: 'not_found', expired: true });
  });
  const bad = await put(n1.url, 'x', 1, '?ttl=0');
  expect(bad.status).toBe(400);
  expect(bad.body.error.message).toContain('ttl must be a whole number of seconds');
});
