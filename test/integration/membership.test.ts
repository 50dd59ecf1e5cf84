// Membership with real processes: discovery through a real DNS server (dnsmasq), by StatefulSet
// pod names, and by joining one URL; failure detection after kill -9 and SIGSTOP; a node coming
// back at a new address with its data.

import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { type DnsServer, startDnsmasq } from '../../scripts/lib/dnsmasq';
import { cliPath, LocalCluster, LocalNode } from '../../scripts/lib/local-cluster';
import { cleanupClusters, FAST_ARGS, logsOf, startCluster } from '../helpers/cluster';
import { eventually } from '../helpers/eventually';
import { get, http, put } from '../helpers/http';

const run = promisify(execFile);
const PORT = 7000;

interface ClusterView {
  ring_checksum: string;
  members: Array<{ id: string; address: string; state: string; generation: number }>;
  discovery: { complete: boolean; provider: string };
}
const cluster = async (n: LocalNode): Promise<ClusterView> => (await http('GET', `${n.url}/cluster`)).body as ClusterView;

/** Processes started by hand in this file (not through startCluster), killed in afterEach. */
const extra: LocalNode[] = [];
const dirs: string[] = [];
let dns: DnsServer | undefined;

function node(id: string, host: string, args: string[], dataRoot: string): LocalNode {
  const n = new LocalNode({ id, host, port: PORT, dataDir: path.join(dataRoot, id), seeds: [], args: [...FAST_ARGS, ...args] });
  extra.push(n);
  return n;
}

function tempDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'qkv-members-'));
  dirs.push(d);
  return d;
}

afterEach(async () => {
  await Promise.all(extra.splice(0).map((n) => n.kill('SIGKILL')));
  await cleanupClusters();
  await dns?.stop();
  dns = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function expectFormed(nodes: LocalNode[]): Promise<void> {
  await new LocalCluster(nodes).waitFormed(20_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${logsOf(new LocalCluster(nodes))}`);
  });
  const w = await put(nodes[0]?.url as string, 'proof', 'written to all', '?consistency=all');
  expect({ status: w.status, successful_writes: w.body.successful_writes }).toEqual({ status: 200, successful_writes: 3 });
}

test('three nodes with --discovery dns find each other through the A records of one name, and serve quorum writes', async () => {
  const hosts = ['127.23.1.1', '127.23.1.2', '127.23.1.3'];
  dns = await startDnsmasq({ port: 15354, domain: 'kv.test', hosts: hosts.map((ip) => ({ ip, names: ['kv.test'] })) });
  const data = tempDir();
  const nodes = hosts.map((h, i) =>
    node(
      `kv-${i}`,
      h,
      ['--discovery', 'dns', '--dns-name', 'kv.test', '--dns-server', dns?.address as string, '--expected-replicas', '3'],
      data,
    ),
  );
  await Promise.all(nodes.map((n) => n.start()));
  await expectFormed(nodes);
  const view = await cluster(nodes[1] as LocalNode);
  expect(view.discovery).toMatchObject({ provider: 'dns', complete: true });
  expect(view.members.map((m) => `${m.id}@${m.address}`)).toEqual(['kv-0@127.23.1.1:7000', 'kv-1@127.23.1.2:7000', 'kv-2@127.23.1.3:7000']);
});

test('--discovery dns also follows SRV records', async () => {
  const hosts = ['127.23.5.1', '127.23.5.2', '127.23.5.3'];
  dns = await startDnsmasq({
    port: 15355,
    domain: 'kv.test',
    hosts: hosts.map((ip, i) => ({ ip, names: [`kv-${i}.kv.test`] })),
    srv: hosts.map((_, i) => ({ name: '_kv._tcp.kv.test', target: `kv-${i}.kv.test`, port: PORT })),
  });
  const data = tempDir();
  const nodes = hosts.map((h, i) =>
    node(
      `kv-${i}`,
      h,
      ['--discovery', 'dns', '--dns-name', '_kv._tcp.kv.test', '--dns-server', dns?.address as string, '--expected-replicas', '3'],
      data,
    ),
  );
  await Promise.all(nodes.map((n) => n.start()));
  await expectFormed(nodes);
});

test('--discovery statefulset finds pods by their names as they appear in DNS (pod 0 first, then 1 and 2)', async () => {
  const ips = ['127.23.2.1', '127.23.2.2', '127.23.2.3'];
  const name = (i: number) => `quorumkv-${i}.quorumkv-headless.default.svc.cluster.local`;
  dns = await startDnsmasq({ port: 15356, domain: 'cluster.local', hosts: [{ ip: ips[0] as string, names: [name(0)] }] });
  const data = tempDir();
  const nodes = ips.map((ip, i) =>
    node(`quorumkv-${i}`, ip, ['--discovery', 'statefulset', '--expected-replicas', '3', '--dns-server', dns?.address as string], data),
  );
  // Pod 0 alone: it serves, and knows it is still searching.
  await (nodes[0] as LocalNode).start();
  expect((await cluster(nodes[0] as LocalNode)).discovery).toMatchObject({ provider: 'statefulset', complete: false });
  // Pods 1 and 2 are created: their names appear in DNS, then they start.
  await dns.setHosts(ips.map((ip, i) => ({ ip, names: [name(i)] })));
  await Promise.all([(nodes[1] as LocalNode).start(), (nodes[2] as LocalNode).start()]);
  await expectFormed(nodes);
  await eventually(async () => expect((await cluster(nodes[0] as LocalNode)).discovery.complete).toBe(true));
});

test('--discovery join needs one member URL: gossip teaches the rest', async () => {
  const data = tempDir();
  const first = node('j1', '127.23.3.1', [], data);
  await first.start();
  const joinArgs = ['--discovery', 'join', '--join', `http://127.23.3.1:${PORT}`, '--expected-replicas', '3'];
  const others = [node('j2', '127.23.3.2', joinArgs, data), node('j3', '127.23.3.3', joinArgs, data)];
  await Promise.all(others.map((n) => n.start()));
  await expectFormed([first, ...others]);
  // the first node was never told about anyone: it learned both from their hellos and gossip
  expect((await cluster(first)).members.map((m) => m.id)).toEqual(['j1', 'j2', 'j3']);
});

test('kill -9: the others report the node down; restarted at a new address with its data, it is alive there and serves that data', async () => {
  const c = await startCluster('127.23.4');
  const [n1, n2, n3] = c.nodes as [LocalNode, LocalNode, LocalNode];
  for (let i = 0; i < 20; i++) {
    const w = await put(n1.url, `kept-${i}`, i, '?consistency=all');
    expect({ i, status: w.status, error: w.body?.error }).toEqual({ i, status: 200, error: undefined });
  }

  await n3.kill('SIGKILL');
  const killedAt = Date.now();
  await eventually(
    async () => {
      for (const n of [n1, n2]) expect((await cluster(n)).members.find((m) => m.id === 'n3')?.state).toBe('down');
    },
    { timeoutMs: 30_000 },
  );
  const downAfterS = (Date.now() - killedAt) / 1000;

  // Same id, same data directory, another address (a rescheduled pod gets a new IP).
  const oldAddress = n3.address;
  n3.spec = { ...n3.spec, host: '127.23.4.9' };
  await n3.start();
  const restartedAt = Date.now();
  await eventually(
    async () => {
      for (const n of [n1, n2]) {
        const entries = (await cluster(n)).members.filter((m) => m.id === 'n3');
        expect(entries).toEqual([expect.objectContaining({ address: '127.23.4.9:7000', state: 'alive' })]);
      }
    },
    { timeoutMs: 20_000 },
  );
  console.log(
    `gossip every 100 ms: n3 reported down ${downAfterS.toFixed(1)} s after kill -9; ` +
      `alive at its new address ${((Date.now() - restartedAt) / 1000).toFixed(1)} s after restarting (was ${oldAddress})`,
  );

  // It serves its own data: with the other two gone, a consistency=one read through it answers from its disk.
  await n1.kill('SIGKILL');
  await n2.kill('SIGKILL');
  for (let i = 0; i < 20; i++) {
    const r = await get(n3.url, `kept-${i}`, '?consistency=one');
    expect({ i, status: r.status, value: r.body?.value }).toEqual({ i, status: 200, value: i });
  }
}, 90_000);

test('a hung node, once convicted, is skipped at once instead of costing each request its deadline', async () => {
  const c = await startCluster('127.23.6');
  const [n1, , n3] = c.nodes as [LocalNode, LocalNode, LocalNode];
  n3.pause();
  try {
    await eventually(async () => expect((await cluster(n1)).members.find((m) => m.id === 'n3')?.state).toBe('down'), { timeoutMs: 30_000 });
    const all = await put(n1.url, 'needs-three', 1, '?w=3');
    expect(all.status).toBe(503);
    expect(all.body.error.failures).toEqual([expect.objectContaining({ replica: 'n3', reason: expect.stringMatching(/^down: /) })]);
    // decided without waiting for the 1000 ms deadline (the reason is "down", not "timeout")
    expect(all.elapsedMs).toBeLessThan(900);
    const quorum = await put(n1.url, 'needs-two', 1);
    expect(quorum.status).toBe(200);
    expect(quorum.elapsedMs).toBeLessThan(900);
  } finally {
    n3.resume();
  }
  // and when it answers again, it is alive again
  await eventually(async () => expect((await cluster(n1)).members.find((m) => m.id === 'n3')?.state).toBe('alive'), { timeoutMs: 20_000 });
}, 90_000);

test('quorumkv status and quorumkv ring print the cluster as tables', async () => {
  const c = await startCluster('127.23.7');
  const url = (c.nodes[0] as LocalNode).url;
  const status = await run(process.execPath, [cliPath(), 'status', '--url', url]);
  const lines = status.stdout.trim().split('\n');
  expect(lines[0]).toMatch(/^node n1 \(normal\), ring [0-9a-f]{8}; discovery static: complete, 3 known/);
  // a node that joined the cluster (rather than started it) also shows its join on the next line
  const header = lines.findIndex((l) => l.startsWith('ID'));
  if (header === 3) expect(lines[1]).toMatch(/^join: done, ranges (\d+)\/\1, \d+ records/);
  else expect(header).toBe(2);
  expect(lines[header]).toMatch(/^ID\s+ADDRESS\s+STATE\s+STATUS\s+PHI\s+HEARTBEAT\s+LAST HEARD\s+GENERATION$/);
  expect(lines.slice(header + 1).map((l) => l.split(/\s+/).slice(0, 4))).toEqual([
    ['n1', '127.23.7.1:7000', 'alive', 'normal'],
    ['n2', '127.23.7.2:7000', 'alive', 'normal'],
    ['n3', '127.23.7.3:7000', 'alive', 'normal'],
  ]);
  const ring = await run(process.execPath, [cliPath(), 'ring', '--url', url]);
  expect(ring.stdout).toMatch(/^ring [0-9a-f]{8}: 3 members x 64 vnodes, replication factor 3/);
  // with N=3 of 3 nodes every node is a replica of everything
  expect(
    ring.stdout
      .trim()
      .split('\n')
      .slice(3)
      .map((l) => l.split(/\s+/).at(-1)),
  ).toEqual(['100.0%', '100.0%', '100.0%']);

  // `quorumkv status --watch | head -1`: the reader goes away after one chunk; the command ends
  // quietly (no EPIPE stack trace), as cat does
  const watch = spawn(process.execPath, [cliPath(), 'status', '--watch', '--url', url], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  watch.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  watch.stdout.once('data', () => watch.stdout.destroy());
  const exit = await new Promise<number | null>((resolve, reject) => {
    const deadline = setTimeout(() => {
      watch.kill('SIGKILL');
      reject(new Error('status --watch still running 15 s after its reader went away'));
    }, 15_000);
    watch.on('exit', (code) => {
      clearTimeout(deadline);
      resolve(code);
    });
  });
  expect({ exit, stderr }).toEqual({ exit: 0, stderr: '' });

  // a member that stopped cleanly is reported as stopped, not as convicted by the failure detector
  await c.node('n3').stop();
  const view = await eventually(async () => {
    const m = (await cluster(c.node('n1'))).members.find((x) => x.id === 'n3') as { state: string; down_reason?: string };
    expect({ state: m.state, down_reason: m.down_reason }).toEqual({ state: 'down', down_reason: 'stopped' });
    return m;
  });
  expect(view.state).toBe('down');
  const after = await run(process.execPath, [cliPath(), 'status', '--url', url]);
  expect(after.stdout.split('\n').find((l) => l.startsWith('n3 '))).toMatch(/^n3\s+127\.23\.7\.3:7000\s+down \(stopped cleanly\)\s+normal/);
  const all = await put(url, 'needs-n3', 1, '?consistency=all');
  expect({ status: all.status, n3: all.body.error.failures.find((f: { replica: string }) => f.replica === 'n3')?.reason }).toEqual({
    status: 503,
    n3: 'down: it announced a clean shutdown (stopped)',
  });
});
