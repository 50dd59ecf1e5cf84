// The probes kubelet runs (quorumkv health ...), draining and graceful shutdown, on real processes.

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { type DnsServer, startDnsmasq } from '../../scripts/lib/dnsmasq';
import { cliPath, LocalNode } from '../../scripts/lib/local-cluster';
import { cleanupClusters, FAST_ARGS, startCluster } from '../helpers/cluster';
import { eventually } from '../helpers/eventually';
import { http, put } from '../helpers/http';

const exec = promisify(execFile);

/** Runs `quorumkv health <probe>` as kubelet would; resolves with exit code, output and time taken. */
async function probe(kind: string, url: string, ...extra: string[]): Promise<{ code: number; line: string; ms: number }> {
  const start = Date.now();
  try {
    const { stdout } = await exec(process.execPath, [cliPath(), 'health', kind, '--url', url, ...extra], { timeout: 10_000 });
    return { code: 0, line: stdout.trim(), ms: Date.now() - start };
  } catch (err) {
    const e = err as { code?: number; stdout?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, line: (e.stdout ?? '').trim(), ms: Date.now() - start };
  }
}

const extra: LocalNode[] = [];
const dirs: string[] = [];
let dns: DnsServer | undefined;
afterEach(async () => {
  await Promise.all(extra.splice(0).map((n) => n.kill('SIGKILL')));
  await cleanupClusters();
  await dns?.stop();
  dns = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

test('readiness is two-phase: pod 0 alone is ready while the StatefulSet is still creating pods, not once all exist without peers', async () => {
  const ips = ['127.25.1.1', '127.25.1.2', '127.25.1.3'];
  const name = (i: number) => `quorumkv-${i}.quorumkv-headless.default.svc.cluster.local`;
  dns = await startDnsmasq({ port: 15357, domain: 'cluster.local', hosts: [{ ip: ips[0] as string, names: [name(0)] }] });
  const data = mkdtempSync(path.join(tmpdir(), 'qkv-health-'));
  dirs.push(data);
  const pods = ips.map((ip, i) => {
    const args = [...FAST_ARGS, '--discovery', 'statefulset', '--expected-replicas', '3', '--dns-server', dns?.address as string];
    const n = new LocalNode({ id: `quorumkv-${i}`, host: ip, port: 7000, dataDir: path.join(data, `p${i}`), seeds: [], args });
    extra.push(n);
    return n;
  });
  const pod0 = pods[0] as LocalNode;
  await pod0.start();
  expect(await probe('startup', pod0.url)).toMatchObject({ code: 0, line: expect.stringContaining('first member of the cluster') });
  expect(await probe('readiness', pod0.url)).toMatchObject({
    code: 0,
    line: expect.stringContaining('phase 1, cluster starting): 1/3 pods exist'),
  });
  // the seed's naive rule would keep pod 0 unready here: OrderedReady would never create pod 1
  expect(await probe('readiness', pod0.url, '--rule', 'naive')).toMatchObject({ code: 1, line: expect.stringContaining('need 2') });

  // pods 1 and 2 exist (their DNS records appear) but are not running: phase 2, no live peer
  await dns.setHosts(ips.map((ip, i) => ({ ip, names: [name(i)] })));
  expect(await probe('readiness', pod0.url)).toMatchObject({
    code: 1,
    line: expect.stringContaining('not ready (phase 2): 0 live peer(s)'),
  });

  await Promise.all([(pods[1] as LocalNode).start(), (pods[2] as LocalNode).start()]);
  await eventually(
    async () => expect(await probe('readiness', pod0.url)).toMatchObject({ code: 0, line: expect.stringContaining('ready (phase 2)') }),
    {
      timeoutMs: 15_000,
    },
  );
  // pods 1 and 2 joined pod 0's cluster; each learns the third through gossip
  await eventually(async () => expect((await probe('startup', (pods[2] as LocalNode).url)).line).toContain('3 members known'), {
    timeoutMs: 15_000,
  });
});

test('liveness answers from a running node, and fails inside its deadline when the node is hung (SIGSTOP)', async () => {
  const c = await startCluster('127.25.2', { nodes: 1 });
  const n = c.nodes[0] as LocalNode;
  expect(await probe('liveness', n.url)).toMatchObject({
    code: 0,
    line: expect.stringMatching(/^liveness: alive: event loop delay \d+ ms$/),
  });
  n.pause();
  try {
    const hung = await probe('liveness', n.url, '--timeout-ms', '1000');
    expect(hung.code).toBe(1);
    expect(hung.line).toContain('no answer within 1000 ms');
    expect(hung.ms).toBeLessThan(3000); // the manifest gives the probe 3 s
  } finally {
    n.resume();
  }
  // liveness never depends on peers: alone, with N=3, it is alive but not ready
  expect((await probe('liveness', n.url)).code).toBe(0);
  expect((await probe('readiness', n.url)).code).toBe(1);
});

test('a probe of a node that is not running fails with the reason', async () => {
  const r = await probe('startup', 'http://127.25.3.1:7000');
  expect(r.code).toBe(1);
  expect(r.line).toMatch(/^startup: failed: .*ECONNREFUSED/);
});

test('drain fails readiness at once while requests are still served; SIGTERM then finishes in-flight requests and exits 0', async () => {
  const c = await startCluster('127.25.4');
  const [n1, n2, n3] = c.nodes as [LocalNode, LocalNode, LocalNode];
  await eventually(async () => expect((await probe('readiness', n1.url)).code).toBe(0));

  const { stdout } = await exec(process.execPath, [cliPath(), 'drain', '--url', n1.url, '--wait-ms', '100']);
  expect(stdout).toContain('readiness fails from now on');
  expect(await probe('readiness', n1.url)).toMatchObject({ code: 1, line: 'readiness: not ready: draining (shutting down)' });
  expect(await probe('liveness', n1.url)).toMatchObject({ code: 0 });
  expect((await put(n1.url, 'still-served', 1)).status).toBe(200);

  // A request in flight when SIGTERM arrives: a write that waits for a hung replica's deadline.
  n3.pause();
  try {
    const inFlight = put(n1.url, 'in-flight', 2, '?w=3');
    await new Promise((r) => setTimeout(r, 200));
    const exited = n1.stop();
    const reply = await inFlight;
    expect(reply.status).toBe(503); // answered (at the deadline), not cut off
    expect(reply.body.error.code).toBe('quorum_not_met');
    expect(await exited).toBe(0);
    // it closed on its own: peers' keep-alive connections did not hold it open until the force-close
    expect(n1.logTail.join('\n')).not.toContain('requests still in flight');
  } finally {
    n3.resume();
  }
  // the drained node told its peers: n2 marks it down at once, not after phi convicts it
  const view = (await http('GET', `${n2.url}/cluster`)).body as { members: Array<{ id: string; state: string }> };
  expect(view.members.find((m) => m.id === 'n1')?.state).toBe('down');
});

test('a node that announced its shutdown is alive again as soon as it restarts', async () => {
  const c = await startCluster('127.25.5');
  const [n1, n2] = c.nodes as [LocalNode, LocalNode];
  expect(await n2.stop()).toBe(0);
  const state = async () =>
    ((await http('GET', `${n1.url}/cluster`)).body as { members: Array<{ id: string; state: string }> }).members.find((m) => m.id === 'n2')
      ?.state;
  expect(await state()).toBe('down');
  await n2.start();
  await eventually(async () => expect(await state()).toBe('alive'), { timeoutMs: 10_000 });
});
