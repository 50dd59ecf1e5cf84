// Scaling with real processes: a fourth node joins and streams its ranges in; a node is
// decommissioned and hands its ranges over; a dead node is removed and its ranges rebuilt from the
// others; a node that comes back on the volume of a member that left clears it and joins anew.

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { cliPath, type LocalCluster, type LocalNode } from '../../scripts/lib/local-cluster';
import { cleanupClusters, logsOf, startCluster } from '../helpers/cluster';
import { eventually, mapLimit } from '../helpers/eventually';
import { get, http, put } from '../helpers/http';
import { replicaRecord } from '../helpers/peer';

const exec = promisify(execFile);
const scratch: string[] = [];
afterEach(async () => {
  await cleanupClusters();
  for (const d of scratch.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Writes `count` keys at quorum through the given nodes; returns key -> acknowledged version. */
async function writeKeys(via: LocalNode[], count: number, prefix: string): Promise<Map<string, string>> {
  const acked = new Map<string, string>();
  await mapLimit(
    Array.from({ length: count }, (_, i) => i),
    32,
    async (i) => {
      const w = await put((via[i % via.length] as LocalNode).url, `${prefix}-${i}`, { i });
      if (w.status === 200) acked.set(`${prefix}-${i}`, w.body.version);
    },
  );
  expect(acked.size).toBe(count);
  return acked;
}

/** Keys whose quorum read through `via` does not return the acknowledged version. */
async function missing(via: LocalNode, acked: Map<string, string>): Promise<string[]> {
  const bad: string[] = [];
  await mapLimit([...acked], 32, async ([key, version]) => {
    const r = await get(via.url, key);
    if (r.status !== 200 || r.body.version !== version) bad.push(`${key}: ${r.status} ${r.body?.version ?? r.body?.error?.code}`);
  });
  return bad;
}

/** What one replica holds for `key`, read straight from its store. */
async function onReplica(n: LocalNode, key: string): Promise<{ version?: unknown } | null> {
  return replicaRecord(n.address, key);
}

async function cli(...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [cliPath(), ...args], { timeout: 120_000 });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, out: (e.stdout ?? '') + (e.stderr ?? '') };
  }
}

function newDataRoot(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'qkv-elastic-'));
  scratch.push(d);
  return d;
}

async function joinFourth(c: LocalCluster, host: string): Promise<LocalNode> {
  const n4 = c.addNode(host, newDataRoot());
  await n4.start();
  await c.waitFormed(60_000);
  return n4;
}

test('a fourth node joins: it streams its ranges in before it is read, and every key reads back through it', async () => {
  const c = await startCluster('127.28.1');
  const [n1, n2, n3] = c.nodes as [LocalNode, LocalNode, LocalNode];
  const acked = await writeKeys([n1, n2, n3], 2000, 'before');
  // `quorumkv status --watch` on the joiner follows its join to the end
  const n4 = c.addNode('127.28.1.4', newDataRoot());
  await n4.start();
  await eventually(async () => expect((await http('GET', `${n4.url}/admin/move`)).body.move).not.toBeNull()); // its join has begun
  const watched = await cli('status', '--watch', '--url', n4.url);
  await c.waitFormed(60_000);
  const move = (await http('GET', `${n4.url}/admin/move`)).body;
  if (!/^node n4 \(normal\)/.test(watched.out)) {
    expect(watched.out).toMatch(/join: done: 100%, ranges (\d+)\/\1, [\d,]+ records \(.*\) streamed.*\njoin finished\n/);
  } else expect(watched.out).toMatch(/^node n4 \(normal\)/); // the join was over before the command asked
  expect(watched.code).toBe(0);
  expect(move).toMatchObject({ status: 'normal', move: { kind: 'join', phase: 'done', replacing: false } });
  expect(move.move.ranges_done).toBe(move.move.ranges_total);
  // it now replicates about 3/4 of the keys (N=3 of 4 members), and holds every one of them
  const ring = (await http('GET', `${n4.url}/ring`)).body;
  expect(ring).toMatchObject({ stable: true });
  expect(ring.members.map((m: { id: string }) => m.id)).toEqual(['n1', 'n2', 'n3', 'n4']);
  let owned = 0;
  const lacking: string[] = [];
  await mapLimit([...acked.keys()], 32, async (key) => {
    const r = await http('GET', `${n4.url}/kv/${key}`);
    expect(r.status).toBe(200);
    if (!r.body.replicas.includes('n4')) return;
    owned++;
    if ((await onReplica(n4, key)) === null) lacking.push(key);
  });
  expect(lacking).toEqual([]);
  expect(owned).toBeGreaterThan(2000 * 0.5);
  expect(move.move.records_streamed).toBeGreaterThanOrEqual(owned);
  expect(await missing(n4, acked)).toEqual([]);
  console.log(
    `join: n4 streamed ${move.move.records_streamed} records (${move.move.bytes_streamed} bytes) over ${move.move.ranges_total} ranges; ` +
      `it replicates ${owned} of the 2000 keys`,
  );
}, 120_000);

test('decommission hands a node ranges over; given its volume back, it clears it and joins as a new member', async () => {
  const c = await startCluster('127.28.2');
  const [n1, n2, n3] = c.nodes as [LocalNode, LocalNode, LocalNode];
  await joinFourth(c, '127.28.2.4');
  const acked = await writeKeys(c.nodes, 2000, 'kept');

  const r = await cli('decommission', '--url', n1.url);
  expect({ code: r.code, out: r.out }).toMatchObject({ code: 0 });
  expect(r.out).toContain('decommission finished');
  const after = (await http('GET', `${n1.url}/admin/move`)).body;
  expect(after).toMatchObject({ status: 'removed', move: { kind: 'leave', phase: 'done' } });
  // it no longer coordinates, and readiness fails
  expect((await get(n1.url, 'kept-1')).body.error).toMatchObject({ code: 'not_serving', status: 'removed' });
  expect((await http('GET', `${n1.url}/health/ready`)).status).toBe(503);
  // the pod's preStop, run now (a scale-down after the member already left): nothing to do, exit 0
  const prestop = await cli('prestop', '--url', n1.url, '--wait-ms', '100');
  expect({ code: prestop.code, out: prestop.out }).toEqual({
    code: 0,
    out: 'prestop: nothing to do: this member has already left the cluster (status removed)\n',
  });
  await n1.stop();
  c.forget(n1);
  await c.waitFormed(30_000);
  const ring = (await http('GET', `${n2.url}/ring`)).body;
  expect(ring.members.map((m: { id: string }) => m.id)).toEqual(['n2', 'n3', 'n4']);
  expect(await missing(n3, acked)).toEqual([]);

  // restarted on its old volume (a scale-up giving a retained volume back), it clears it and joins
  await n1.start();
  expect(n1.logTail.join('\n')).toMatch(/n1 from before it left the cluster on .*its decommission finished.*clearing it and joining/s);
  c.nodes.push(n1);
  await c.waitFormed(60_000);
  expect((await http('GET', `${n2.url}/ring`)).body.members.map((m: { id: string }) => m.id)).toEqual(['n1', 'n2', 'n3', 'n4']);
  expect(await missing(n1, acked)).toEqual([]);
  console.log(`decommission: ${after.move.records_streamed} records streamed to the members that took n1's ranges`);
  void n2;
}, 120_000);

test('removenode rebuilds a dead member ranges from the other replicas; back on its volume, it stops, then starts empty and joins', async () => {
  const c = await startCluster('127.28.3');
  const [n1, n2, n3] = c.nodes as [LocalNode, LocalNode, LocalNode];
  const n4 = await joinFourth(c, '127.28.3.4');
  const acked = await writeKeys(c.nodes, 2000, 'kept');

  // refused while it is alive (a live member must be decommissioned instead)
  const alive = await cli('removenode', 'n2', '--url', n3.url);
  expect(alive).toMatchObject({ code: 1, out: expect.stringMatching(/n2 is not down/) });
  await n2.kill('SIGKILL');
  // the node that runs the removal must itself see n2 down (each node judges liveness on its own)
  await eventually(
    async () => {
      const cluster = (await http('GET', `${n3.url}/cluster`)).body;
      expect(cluster.members.find((m: { id: string }) => m.id === 'n2').state).toBe('down');
    },
    { timeoutMs: 30_000 },
  );
  const r = await cli('removenode', 'n2', '--url', n3.url);
  expect(r).toEqual({ code: 0, out: expect.stringMatching(/removenode finished/) });
  c.forget(n2);
  await c.waitFormed(30_000);
  const ring = (await http('GET', `${n4.url}/ring`)).body;
  expect(ring.members.map((m: { id: string }) => m.id)).toEqual(['n1', 'n3', 'n4']);
  expect(await missing(n1, acked)).toEqual([]);
  // every key is on all three remaining replicas (each took n2's share from the others)
  const short: string[] = [];
  await mapLimit([...acked.keys()], 32, async (key) => {
    for (const n of [n1, n3, n4]) if ((await onReplica(n, key)) === null) short.push(`${key}@${n.id}`);
  });
  expect(short).toEqual([]);

  // n2 comes back on its old volume: the cluster says it was removed; it stops (exit 3)
  await n2.start().catch(() => {});
  await eventually(() => expect(n2.running).toBe(false), { timeoutMs: 30_000 });
  expect(n2.proc?.exitCode).toBe(3);
  expect(n2.logTail.join('\n')).toMatch(/removed n2.*stale/s);
  // and it never came back into the ring
  const again = (await http('GET', `${n1.url}/ring`)).body;
  expect(again.members.map((m: { id: string }) => m.id)).toEqual(['n1', 'n3', 'n4']);
  // started again (kubelet restarts the container), it clears the directory and joins as a new member
  await n2.start();
  expect(n2.logTail.join('\n')).toMatch(/the cluster removed it \(removenode\).*clearing it and joining/s);
  c.nodes.push(n2);
  await c.waitFormed(60_000);
  expect((await http('GET', `${n1.url}/ring`)).body.members.map((m: { id: string }) => m.id)).toEqual(['n1', 'n2', 'n3', 'n4']);
  expect(await missing(n2, acked)).toEqual([]);
  if (short.length) console.log(logsOf(c));
}, 180_000);
