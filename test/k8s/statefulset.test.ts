// The manifests in k8s/, run by the StatefulSet simulator (scripts/lib/statefulset-sim.ts): real
// quorumkv processes as pods, a real DNS server, kubelet's probe semantics. Each test prints its
// timeline. timeScale shrinks probe periods, back-off and the grace period to keep the suite fast;
// FINDINGS.md has the same scenarios at the manifest's own timing (npm run k8s-sim).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { StatefulSetSim, type StatefulSetSimOptions } from '../../scripts/lib/statefulset-sim';
import { mapLimit } from '../helpers/eventually';
import { get, http, put } from '../helpers/http';

let sim: StatefulSetSim | undefined;
let dataRoot: string | undefined;

async function run(opts: Partial<StatefulSetSimOptions> & { ipPrefix: string; dnsPort: number }): Promise<StatefulSetSim> {
  dataRoot = mkdtempSync(path.join(tmpdir(), 'qkv-sts-'));
  sim = new StatefulSetSim({ dataRoot, timeScale: 0.5, ...opts });
  await sim.start();
  return sim;
}

afterEach(async () => {
  if (sim) console.log(`timeline:\n${sim.timeline.join('\n')}`);
  await sim?.stop();
  sim = undefined;
  if (dataRoot) rmSync(dataRoot, { recursive: true, force: true });
});

const states = (s: StatefulSetSim) => s.allPods().map((p) => `${p.name}:${p.ready ? 'Ready' : 'NotReady'}`);

test('OrderedReady with the naive readiness rule (N-1 peers) deadlocks: pod 0 never ready, pod 1 never created', async () => {
  const s = await run({ podManagementPolicy: 'OrderedReady', readinessRule: 'naive', ipPrefix: '127.32', dnsPort: 15391 });
  // 20 s at half time: 8 readiness probes of pod 0, every one failing
  expect(await s.waitFor(() => s.allReady(), 20_000)).toBe(false);
  expect(states(s)).toEqual(['quorumkv-0:NotReady']);
  expect(
    s.timeline.filter((l) => l.includes('quorumkv-0: readiness failed (readiness: not ready (naive rule): 0 live peers, need 2)')).length,
  ).toBe(1);
  expect(s.timeline.some((l) => l.includes('quorumkv-1'))).toBe(false);
}, 60_000);

test.each(['OrderedReady', 'Parallel'] as const)(
  'with the two-phase rule all pods become ready under %s',
  async (policy) => {
    const s = await run({
      podManagementPolicy: policy,
      ipPrefix: policy === 'Parallel' ? '127.33' : '127.34',
      dnsPort: policy === 'Parallel' ? 15392 : 15393,
    });
    const start = Date.now();
    expect(await s.waitFor(() => s.allReady(), 60_000)).toBe(true);
    console.log(`${policy}: all 3 pods ready after ${((Date.now() - start) / 1000).toFixed(1)} s (probe periods x0.5)`);
    expect(states(s)).toEqual(['quorumkv-0:Ready', 'quorumkv-1:Ready', 'quorumkv-2:Ready']);
    if (policy === 'OrderedReady') {
      // pod i was created only after pod i-1 was Ready
      const at = (what: string) => s.timeline.findIndex((l) => l.includes(what));
      expect(at('quorumkv-0: Ready')).toBeLessThan(at('quorumkv-1: created'));
      expect(at('quorumkv-1: Ready')).toBeLessThan(at('quorumkv-2: created'));
    }
    // the cluster serves quorum writes through any pod
    const w = await put((s.pod(2) as { url: string }).url, 'through-pod-2', 'ok', '?consistency=all');
    expect(w.status).toBe(200);
  },
  90_000,
);

test('a pod deleted during writes comes back with a new IP, its identity and its data; no acknowledged write is lost', async () => {
  const s = await run({ podManagementPolicy: 'Parallel', ipPrefix: '127.35', dnsPort: 15394 });
  expect(await s.waitFor(() => s.allReady(), 60_000)).toBe(true);
  const old = s.pod(1) as NonNullable<ReturnType<typeof s.pod>>;
  const before = await put(old.url, 'written-before', 'kept on pod 1', '?consistency=all');
  expect(before.status).toBe(200);

  // Writers through pods 0 and 2 (the client Service's endpoints) while pod 1 is deleted and re-created.
  const acked: Array<{ key: string; value: number }> = [];
  let failed = 0;
  let writing = true;
  const writers = mapLimit([0, 2], 2, async (ordinal) => {
    for (let i = 0; writing && i < 5000; i++) {
      const pod = s.pod(ordinal);
      if (!pod) continue;
      const key = `w-${ordinal}-${i}`;
      const r = await put(pod.url, key, i).catch(() => undefined);
      if (r?.status === 200) acked.push({ key, value: i });
      else failed++;
    }
  });
  await s.deletePod(1);
  expect(await s.waitFor(() => s.pod(1) !== undefined && s.pod(1) !== old && s.allReady(), 60_000)).toBe(true);
  writing = false;
  await writers;

  const fresh = s.pod(1) as NonNullable<ReturnType<typeof s.pod>>;
  expect(fresh.ip).not.toBe(old.ip);
  const health = (await http('GET', `${fresh.url}/health`)).body;
  expect(health).toMatchObject({ id: 'quorumkv-1', address: `${fresh.ip}:8080` });
  expect(health.generation).toBeGreaterThan(0);
  // its data survived on its volume: read straight from its replica store
  const local = await http('POST', `${fresh.url}/internal/read`, {
    json: { type: 'read', key: 'written-before' },
    headers: { 'x-quorumkv-cluster-token': 'REPLACE-ME-placeholder-cluster-token-not-a-secret' },
  });
  expect(local.body.record?.value).toBe('kept on pod 1');

  const lost: string[] = [];
  await mapLimit(acked, 16, async (a) => {
    const r = await get((s.pod(a.value % 3) as { url: string }).url, a.key);
    if (r.status !== 200 || r.body.value !== a.value) lost.push(`${a.key}: ${r.status}`);
  });
  console.log(`delete pod 1: ${acked.length} writes acknowledged, ${failed} failed during the deletion; ${lost.length} lost`);
  expect(acked.length).toBeGreaterThan(50);
  expect(lost).toEqual([]);
}, 120_000);

test('a container whose process dies is restarted by kubelet and rejoins', async () => {
  const s = await run({ podManagementPolicy: 'Parallel', ipPrefix: '127.36', dnsPort: 15395 });
  expect(await s.waitFor(() => s.allReady(), 60_000)).toBe(true);
  const pod = s.pod(2) as NonNullable<ReturnType<typeof s.pod>>;
  const generation = (await http('GET', `${pod.url}/health`)).body.generation as number;
  s.signal(2, 'SIGKILL');
  expect(await s.waitFor(() => pod.restarts === 1 && pod.ready, 60_000)).toBe(true);
  const after = (await http('GET', `${pod.url}/health`)).body;
  expect(after.generation).toBeGreaterThan(generation);
  // the others see it alive again at its (unchanged) pod IP
  const view = (await http('GET', `${(s.pod(0) as { url: string }).url}/cluster`)).body as {
    members: Array<{ id: string; state: string; address: string }>;
  };
  expect(view.members.find((m) => m.id === 'quorumkv-2')).toMatchObject({ state: 'alive', address: `${pod.ip}:8080` });
}, 90_000);

test('a hung container fails liveness and kubelet restarts it; it rejoins', async () => {
  // a fifth of the manifest's timing: 3 liveness failures 2 s apart, a 6 s grace period
  const s = await run({ podManagementPolicy: 'Parallel', ipPrefix: '127.37', dnsPort: 15396, timeScale: 0.2 });
  expect(await s.waitFor(() => s.allReady(), 60_000)).toBe(true);
  const pod = s.pod(1) as NonNullable<ReturnType<typeof s.pod>>;
  s.signal(1, 'SIGSTOP');
  expect(await s.waitFor(() => pod.restarts === 1, 60_000)).toBe(true);
  expect(s.timeline.filter((l) => l.includes('quorumkv-1: liveness failed')).length).toBeGreaterThanOrEqual(3);
  expect(s.timeline.some((l) => l.includes('quorumkv-1: killing container: liveness probe failed'))).toBe(true);
  expect(await s.waitFor(() => pod.ready, 60_000)).toBe(true);
  const w = await put(pod.url, 'after-restart', 1, '?consistency=all');
  expect(w.status).toBe(200);
}, 120_000);
