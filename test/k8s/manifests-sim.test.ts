// Rendered kustomizations run by the StatefulSet simulator (scripts/lib/statefulset-sim.ts): a
// user's variant with another name prefix and namespace forms one cluster, and a variant whose
// discovery settings cannot be right never makes a pod Ready alone.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cliPath } from '../../scripts/lib/local-cluster';
import { StatefulSetSim } from '../../scripts/lib/statefulset-sim';
import { eventually } from '../helpers/eventually';
import { http, put } from '../helpers/http';
import { writeVariant } from './manifests';

let sim: StatefulSetSim | undefined;
const dirs: string[] = [];

async function run(kustomization: Record<string, unknown>, net: { ipPrefix: string; dnsPort: number }): Promise<StatefulSetSim> {
  const manifests = writeVariant(kustomization);
  const dataRoot = mkdtempSync(path.join(tmpdir(), 'qkv-kz-sim-'));
  dirs.push(manifests, dataRoot);
  sim = new StatefulSetSim({ manifests, dataRoot, timeScale: 0.5, podManagementPolicy: 'Parallel', ...net });
  await sim.start();
  return sim;
}

afterEach(async () => {
  if (sim) console.log(`timeline:\n${sim.timeline.join('\n')}`);
  await sim?.stop();
  sim = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

test('a variant with namePrefix prod- and namespace kv-prod forms one cluster of 3: every member sees 3, same ring', async () => {
  const s = await run(
    { resources: ['k8s/overlays/dev'], namePrefix: 'prod-', namespace: 'kv-prod' },
    { ipPrefix: '127.71', dnsPort: 15471 },
  );
  expect(await s.waitFor(() => s.allReady(), 60_000)).toBe(true);
  const pods = s.allPods();
  expect(pods.map((p) => p.name)).toEqual(['prod-quorumkv-0', 'prod-quorumkv-1', 'prod-quorumkv-2']);
  const views = await eventually(
    async () => {
      const v = await Promise.all(pods.map(async (p) => (await http('GET', `${p.url}/cluster`)).body));
      for (const c of v) expect(c.members.map((m: { id: string }) => m.id).sort()).toEqual(pods.map((p) => p.name));
      expect(new Set(v.map((c) => c.ring_checksum)).size).toBe(1);
      return v;
    },
    { timeoutMs: 20_000, intervalMs: 200 },
  );
  expect(views.map((c) => c.discovery.problems)).toEqual([[], [], []]);
  // and it serves a write that needs all three replicas
  expect((await put(pods[0]?.url as string, 'one-cluster', 'yes', '?consistency=all')).status).toBe(200);
}, 90_000);

test('a variant whose headless Service setting names no Service: startup fails naming the setting, no pod ever Ready', async () => {
  const s = await run(
    {
      resources: ['k8s/overlays/dev'],
      namePrefix: 'prod-',
      configMapGenerator: [{ name: 'quorumkv-config', behavior: 'merge', literals: ['QUORUMKV_HEADLESS_SERVICE=quorumkv-peers'] }],
    },
    { ipPrefix: '127.72', dnsPort: 15472 },
  );
  // The startup probe as kubelet runs it (the simulator reports only its last failure, after 60).
  const pod = await eventually(() => {
    const p = s.allPods().find((x) => x.running);
    expect(p).toBeDefined();
    return p as NonNullable<typeof p>;
  });
  const probe = await eventually(
    () => {
      const r = spawnSync(process.execPath, [cliPath(), 'health', 'startup', '--url', pod.url], { encoding: 'utf8', timeout: 10_000 });
      if (!r.stdout.includes('QUORUMKV_HEADLESS_SERVICE'))
        throw new Error(`startup probe: ${r.stdout}\nnode log:\n${pod.logTail.slice(-8).join('\n')}`);
      return r;
    },
    { timeoutMs: 20_000, intervalMs: 250 },
  );
  expect(probe.status).toBe(1);
  expect(probe.stdout).toContain(`"quorumkv-peers" must be the StatefulSet's spec.serviceName`);
  // Each pod alone would have passed startup and readiness before the fix; give them the time.
  expect(await s.waitFor(() => s.allPods().some((p) => p.ready || p.started), 5_000)).toBe(false);
  expect(s.timeline.filter((l) => /pod [\w-]+: (Ready|started) \(/.test(l))).toEqual([]);
}, 60_000);

test("serve gives the heap 75% of the container's memory limit, in a second process that gets the signals", async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'qkv-heap-'));
  dirs.push(dataDir);
  const url = 'http://127.73.0.1:18080';
  const child = spawn(process.execPath, [cliPath(), 'serve'], {
    env: {
      ...process.env,
      CONTAINER_MEMORY_LIMIT_BYTES: String(256 * 2 ** 20),
      QUORUMKV_HOST: '127.73.0.1',
      QUORUMKV_PORT: '18080',
      QUORUMKV_NODE_ID: 'heap-0',
      QUORUMKV_DATA_DIR: dataDir,
      QUORUMKV_REPLICATION_FACTOR: '1',
      QUORUMKV_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const limit = await eventually(
      async () => {
        const m = /^quorumkv_heap_limit_bytes (\d+)$/m.exec((await http('GET', `${url}/metrics`, { timeoutMs: 2000 })).text);
        expect(m).not.toBeNull();
        return Number(m?.[1]);
      },
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    // --max-old-space-size=192 plus the young generation (a few MiB to 32 MiB); Node's own default
    // on this machine is several GiB
    expect(limit).toBeGreaterThanOrEqual(192 * 2 ** 20);
    expect(limit).toBeLessThan(256 * 2 ** 20);
  } finally {
    child.kill('SIGTERM');
  }
  // SIGTERM reached the node through the first process: a clean shutdown, exit 0
  expect(await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 15_000).unref())])).toBe(0);
}, 40_000);
