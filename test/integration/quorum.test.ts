// Quorum reads and writes on three real `quorumkv serve` processes on loopback, with nodes killed,
// hung (SIGSTOP) and restarted on their data. Request deadline: 1000 ms (set in helpers/cluster).

import { cleanupClusters, logsOf, startCluster } from '../helpers/cluster';
import { eventually, mapLimit } from '../helpers/eventually';
import { del, get, put } from '../helpers/http';
import { replicaRecord } from '../helpers/peer';

const DEADLINE_MS = 1000;
/** What a reply may take beyond the deadline: scheduling, JSON, loopback. Generous for loaded CI. */
const SLACK_MS = 750;

afterEach(cleanupClusters);

test('a value PUT through one node reads back through another; the reply lists 3 replicas and at least 2 writes', async () => {
  const c = await startCluster('127.21.1');
  const [n1, n2] = c.nodes as [(typeof c.nodes)[0], (typeof c.nodes)[0]];

  const w = await put(n1.url, 'user:42', { name: 'Ada', langs: ['en', 'fr'] });
  expect(w.status).toBe(200);
  expect(w.body).toMatchObject({ key: 'user:42', coordinator: 'n1', quorum_required: 2, total_replicas: 3 });
  expect([...w.body.replicas].sort()).toEqual(['n1', 'n2', 'n3']);
  expect(w.body.successful_writes).toBeGreaterThanOrEqual(2);

  const r = await get(n2.url, 'user:42');
  expect(r.status).toBe(200);
  expect(r.body).toMatchObject({ key: 'user:42', value: { name: 'Ada', langs: ['en', 'fr'] }, version: w.body.version, coordinator: 'n2' });
  expect(r.body.replicas_responded).toBeGreaterThanOrEqual(2);
});

test('with one of three nodes killed (-9), quorum PUT and GET still succeed', async () => {
  const c = await startCluster('127.21.2');
  await c.node('n3').kill('SIGKILL');

  for (let i = 0; i < 10; i++) {
    const w = await put(c.node('n1').url, `k${i}`, i);
    expect({ i, status: w.status, body: w.body }).toMatchObject({ status: 200, body: { successful_writes: 2 } });
    const r = await get(c.node('n2').url, `k${i}`);
    expect({ i, status: r.status, value: r.body?.value }).toEqual({ i, status: 200, value: i });
  }
});

test('with one node killed, a consistency=all PUT answers 503 naming the dead replica within the deadline', async () => {
  const c = await startCluster('127.21.3');
  await c.node('n3').kill('SIGKILL');

  const w = await put(c.node('n1').url, 'all-or-nothing', 'v', '?consistency=all');
  expect(w.status).toBe(503);
  expect(w.body.error).toMatchObject({ code: 'quorum_not_met', quorum_required: 3, total_replicas: 3 });
  expect(w.body.error.failures).toEqual([expect.objectContaining({ replica: 'n3', address: c.node('n3').address })]);
  expect(w.body.error.message).toContain('n3');
  expect(w.elapsedMs).toBeLessThan(DEADLINE_MS + SLACK_MS);
});

test('with two of three nodes down, a quorum PUT answers 503 within the deadline', async () => {
  const c = await startCluster('127.21.4');
  await c.node('n2').kill('SIGKILL');
  await c.node('n3').kill('SIGKILL');

  const w = await put(c.node('n1').url, 'lonely', 'v');
  expect(w.status).toBe(503);
  expect(w.body.error.code).toBe('quorum_not_met');
  expect(w.body.error.failures.map((f: { replica: string }) => f.replica).sort()).toEqual(['n2', 'n3']);
  expect(w.elapsedMs).toBeLessThan(DEADLINE_MS + SLACK_MS);

  const r = await get(c.node('n1').url, 'lonely');
  expect(r.status).toBe(503);
  expect(r.elapsedMs).toBeLessThan(DEADLINE_MS + SLACK_MS);
});

test('with one node hung (SIGSTOP), quorum writes succeed within the deadline', async () => {
  const c = await startCluster('127.21.5');
  c.node('n3').pause();
  try {
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => put(c.node(i % 2 ? 'n1' : 'n2').url, `hung-${i}`, i)));
    for (const [i, w] of replies.entries()) {
      expect({ i, status: w.status }).toEqual({ i, status: 200 });
      expect(w.body.successful_writes).toBeGreaterThanOrEqual(2);
      expect(w.elapsedMs).toBeLessThan(DEADLINE_MS + SLACK_MS);
    }
    // and a read at quorum, from the two that answer
    const r = await get(c.node('n1').url, 'hung-3');
    expect(r.status).toBe(200);
    expect(r.body.value).toBe(3);
  } finally {
    c.node('n3').resume();
  }
});

test('after all three nodes crash (kill -9) and restart on their data, every acknowledged key reads back', async () => {
  const c = await startCluster('127.21.6');
  const acked: Array<{ key: string; value: number; version: string }> = [];
  const refused: string[] = [];
  await mapLimit(
    Array.from({ length: 300 }, (_, i) => i),
    16,
    async (i) => {
      const w = await put(c.nodes[i % 3]?.url as string, `durable-${i}`, i);
      if (w.status === 200) acked.push({ key: `durable-${i}`, value: i, version: w.body.version });
      else refused.push(`durable-${i}: ${w.status} ${w.text}`);
    },
  );
  expect(refused).toEqual([]);
  // each node is a replica of every key: its commit log made 300 writes durable, in at most as many syncs
  await eventually(async () => {
    const text = await fetch(`${c.nodes[0]?.url}/metrics`).then((r) => r.text());
    const value = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
    const records = value('quorumkv_commit_log_records_total');
    expect(records).toBeGreaterThanOrEqual(300);
    expect(value('quorumkv_commit_log_syncs_total')).toBeGreaterThanOrEqual(1);
    expect(value('quorumkv_commit_log_syncs_total')).toBeLessThanOrEqual(records);
    expect(value('quorumkv_storage_unapplied_writes')).toBeGreaterThanOrEqual(0);
  });

  // killed within the store's 50 ms apply interval of the last acknowledgements: those come back from the log
  await c.stopAll('SIGKILL');
  await Promise.all(c.nodes.map((n) => n.start()));

  const missing: string[] = [];
  for (const a of acked) {
    const r = await get(c.nodes[a.value % 3]?.url as string, a.key);
    if (r.status !== 200 || r.body.value !== a.value || r.body.version !== a.version) missing.push(`${a.key}: ${r.status} ${r.text}`);
  }
  expect(missing).toEqual([]);
});

test('after a clean stop (SIGTERM) of all nodes and a restart, keys read back and the ring is the same', async () => {
  const c = await startCluster('127.21.7');
  const w = await put(c.node('n2').url, 'survives', { ok: true });
  expect(w.status).toBe(200);
  const ringBefore = (await get(c.node('n1').url, 'survives')).body;

  const codes = await Promise.all(c.nodes.map((n) => n.stop()));
  expect(codes).toEqual([0, 0, 0]);
  // Restart one node alone: it remembers its members, so it computes the same preference lists.
  await c.node('n1').start();
  const health = (await fetch(`${c.node('n1').url}/health`).then((r) => r.json())) as { members: number };
  expect(health.members).toBe(3);
  await Promise.all([c.node('n2').start(), c.node('n3').start()]);

  const r = await get(c.node('n3').url, 'survives');
  expect(r.status).toBe(200);
  expect(r.body.value).toEqual({ ok: true });
  expect(r.body.replicas).toEqual(ringBefore.replicas);
});

test('a DELETE at quorum while one replica is down stays deleted after that replica restarts', async () => {
  const c = await startCluster('127.21.8');
  expect((await put(c.node('n1').url, 'doomed', 'old')).status).toBe(200);
  // the write reached every replica: n3 holds "old" when it goes down
  await eventually(async () => expect((await get(c.node('n3').url, 'doomed', '?consistency=all')).status).toBe(200));

  await c.node('n3').kill('SIGKILL');
  const d = await del(c.node('n1').url, 'doomed');
  expect(d.status).toBe(200);
  expect(d.body).toMatchObject({ deleted: true, successful_writes: 2 });

  await c.node('n3').start();
  for (const n of c.nodes) {
    const r = await get(n.url, 'doomed');
    expect({ via: n.id, status: r.status, code: r.body?.error?.code }).toEqual({ via: n.id, status: 404, code: 'not_found' });
  }
}, 30_000);

test('a hung node does not make the other nodes wait: its failure is reported as a timeout', async () => {
  const c = await startCluster('127.21.9');
  c.node('n2').pause();
  try {
    const w = await put(c.node('n1').url, 'needs-all', 1, '?w=3');
    expect(w.status).toBe(503);
    expect(w.body.error.failures).toEqual([expect.objectContaining({ replica: 'n2', reason: expect.stringContaining('timeout') })]);
    expect(w.elapsedMs).toBeGreaterThanOrEqual(DEADLINE_MS - 50);
    expect(w.elapsedMs).toBeLessThan(DEADLINE_MS + SLACK_MS);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${logsOf(c)}`);
  } finally {
    c.node('n2').resume();
  }
});

/** Resolves once `viewer` sees `member` in the given failure-detector state. */
async function seesAs(viewerUrl: string, member: string, state: 'down' | 'alive'): Promise<void> {
  await eventually(
    async () => {
      const view = (await fetch(`${viewerUrl}/cluster`).then((r) => r.json())) as {
        members: Array<{ id: string; state: string }>;
      };
      expect(view.members.find((m) => m.id === member)?.state).toBe(state);
    },
    { timeoutMs: 15_000 },
  );
}

async function hintsPending(url: string): Promise<number> {
  const text = await fetch(`${url}/metrics`).then((r) => r.text());
  return [...text.matchAll(/^quorumkv_hints_pending(?:\{[^}]*\})? (\d+)$/gm)].reduce((a, m) => a + Number(m[1]), 0);
}

test('a write refused as unavailable changes nothing anywhere: no replica write, no hint, even after the replica is back', async () => {
  const c = await startCluster('127.21.11');
  const [n1, n2, n3] = c.nodes as [(typeof c.nodes)[0], (typeof c.nodes)[0], (typeof c.nodes)[0]];
  await n3.kill('SIGKILL');
  await seesAs(n1.url, 'n3', 'down');

  const w = await put(n1.url, 'refused', 'v', '?consistency=all');
  expect(w.status).toBe(503);
  expect(w.body.error).toMatchObject({ code: 'unavailable', quorum_required: 3, alive_replicas: 2, may_have_been_applied: false });
  expect(w.body.error.message).toContain('nothing was written');
  expect(w.body.error.failures).toEqual([expect.objectContaining({ replica: 'n3' })]);
  expect(await hintsPending(n1.url)).toBe(0);

  await n3.start();
  await c.waitFormed();
  // had a hint been kept, it would be delivered now
  await new Promise((r) => setTimeout(r, 1500));
  for (const n of [n1, n2, n3])
    expect({ node: n.id, record: await replicaRecord(n.address, 'refused') }).toEqual({ node: n.id, record: null });
  expect((await get(n2.url, 'refused', '?consistency=all')).status).toBe(404);
});

test('a write sent and then short of its quorum says it may have been applied, and which replicas acknowledged', async () => {
  const c = await startCluster('127.21.12');
  const [n1, , n3] = c.nodes as [(typeof c.nodes)[0], (typeof c.nodes)[0], (typeof c.nodes)[0]];
  n3.pause();
  try {
    const w = await put(n1.url, 'maybe', 'v', '?consistency=all');
    expect(w.status).toBe(503);
    expect(w.body.error).toMatchObject({ code: 'quorum_not_met', successful_writes: 2, may_have_been_applied: true });
    expect([...w.body.error.acknowledged_by].sort()).toEqual(['n1', 'n2']);
    expect(w.body.error.message).toContain('may have been applied');
  } finally {
    n3.resume();
  }
  // it was applied: the replicas that acknowledged keep it, and the hung one gets it by hint
  await eventually(async () => expect((await replicaRecord(n3.address, 'maybe'))?.value).toBe('v'), { timeoutMs: 15_000 });
});
