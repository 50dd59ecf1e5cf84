// The lean probe binary (quorumkv-probe, what the manifests' exec probes run) against the full CLI's
// `quorumkv health`: same exit codes, same line, on real nodes; and it stays lean (what it loads).
// Its cost next to `node -e 0` is a benchmark figure (npm run bench:probe), not a test.

import { execFile } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { cliPath, type LocalNode, repoRoot } from '../../scripts/lib/local-cluster';
import { parseProbeArgs } from '../../src/cli/probe';
import { cleanupClusters, FAST_ARGS, startCluster } from '../helpers/cluster';
import { eventually } from '../helpers/eventually';

const exec = promisify(execFile);
const probeJs = path.join(repoRoot(), 'dist', 'src', 'cli', 'probe.js');

interface Outcome {
  code: number;
  line: string;
}

async function run(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Outcome> {
  try {
    const { stdout } = await exec(process.execPath, argv, { timeout: 10_000, env: { ...process.env, ...env } });
    return { code: 0, line: stdout.trim() };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err; // killed at the 10 s limit, or could not start
    return { code: e.code, line: (e.stdout ?? '').trim() };
  }
}

/** The same probe through both entry points, at once: `quorumkv-probe ...` and `quorumkv health ...`. */
async function both(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ lean: Outcome; full: Outcome }> {
  const [lean, full] = await Promise.all([run([probeJs, ...args], env), run([cliPath(), 'health', ...args], env)]);
  return { lean, full };
}

afterEach(cleanupClusters);

test('quorumkv-probe exits and explains like quorumkv health: ready, not ready, started, alive, unreachable, hung', async () => {
  // two single-member clusters: N=1 is ready alone; N=3 alone is not (phase 2, no live peer)
  const [solo, lonely] = await Promise.all([
    startCluster('127.46.1', { nodes: 1, args: [...FAST_ARGS, '--replication-factor', '1'] }),
    startCluster('127.46.2', { nodes: 1 }),
  ]);
  const ready = (solo.nodes[0] as LocalNode).url;
  const notReady = lonely.nodes[0] as LocalNode;
  // a fresh node first looks at the cluster before it starts one (startup fails meanwhile)
  for (const url of [ready, notReady.url]) await eventually(async () => expect((await fetch(`${url}/health/startup`)).status).toBe(200));

  const r = await both(['readiness', '--url', ready]);
  expect(r.lean).toEqual({ code: 0, line: 'readiness: ready (phase 2): 0 live peer(s); quorum requests need 1 members' });
  expect(r.lean).toEqual(r.full);

  const nr = await both(['readiness', '--url', notReady.url]);
  expect(nr.lean).toEqual({ code: 1, line: 'readiness: not ready (phase 2): 0 live peer(s); quorum requests need 2 members' });
  expect(nr.lean).toEqual(nr.full);

  // the naive rule (the seed's deadlock), and the URL from QUORUMKV_URL
  const naive = await both(['readiness', '--rule', 'naive'], { QUORUMKV_URL: notReady.url });
  expect(naive.lean).toEqual({ code: 1, line: 'readiness: not ready (naive rule): 0 live peers, need 2' });
  expect(naive.lean).toEqual(naive.full);

  const st = await both(['startup', `--url=${ready}`]);
  expect(st.lean).toEqual({ code: 0, line: 'startup: started: storage open, serving; no peer found yet (first member of the cluster)' });
  expect(st.lean).toEqual(st.full);

  const live = await both(['liveness', '--url', ready]);
  expect(live.lean).toMatchObject({ code: 0, line: expect.stringMatching(/^liveness: alive: event loop delay \d+ ms$/) });
  expect(live.full).toMatchObject({ code: 0, line: expect.stringMatching(/^liveness: alive: event loop delay \d+ ms$/) });

  // nothing listens there
  const gone = await both(['startup', '--url', 'http://127.46.3.1:7000']);
  expect(gone.lean).toEqual({
    code: 1,
    line: 'startup: failed: http://127.46.3.1:7000/health/startup: connect ECONNREFUSED 127.46.3.1:7000',
  });
  expect(gone.lean).toEqual(gone.full);

  // hung (SIGSTOP: the kernel accepts the connection, nothing answers): fails at its own deadline
  notReady.pause();
  try {
    const hung = await both(['liveness', '--url', notReady.url, '--timeout-ms', '500']);
    expect(hung.lean).toEqual({ code: 1, line: `liveness: failed: ${notReady.url}/health: no answer within 500 ms (hung or overloaded)` });
    expect(hung.lean).toEqual(hung.full);
  } finally {
    notReady.resume();
  }

  // bad usage the probe itself judges: exit 2 and the same line
  for (const args of [
    ['readines', '--url', ready],
    ['liveness', '--url', ready, '--timeout-ms', 'soon'],
  ]) {
    const bad = await both(args);
    expect(bad.lean.code).toBe(2);
    expect(bad.lean).toEqual(bad.full);
  }
});

test('a reply that is not JSON fails the probe, through both entry points alike', async () => {
  const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>not a node</html>'));
  await new Promise<void>((resolve) => server.listen(0, '127.46.4.1', resolve));
  try {
    const url = `http://127.46.4.1:${(server.address() as AddressInfo).port}`;
    const r = await both(['readiness', '--url', url]);
    expect(r.lean).toEqual({ code: 1, line: `readiness: failed: ${url}/health/ready answered 200 without JSON` });
    expect(r.lean).toEqual(r.full);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test('the probe binary loads only itself and the pure health rules: no package, nothing of the rest of the CLI', async () => {
  const { stdout } = await exec(process.execPath, [
    '-e',
    `require(${JSON.stringify(probeJs)}); console.log(JSON.stringify(Object.keys(require.cache)))`,
  ]);
  const loaded = (JSON.parse(stdout) as string[]).map((f) => path.relative(repoRoot(), f)).sort();
  expect(loaded).toEqual([path.join('dist', 'src', 'cli', 'probe.js'), path.join('dist', 'src', 'core', 'health.js')]);
});

test('probe arguments: flag over QUORUMKV_URL over the default, --flag=value, and clear refusals', () => {
  expect(parseProbeArgs(['readiness'], {})).toMatchObject({
    probe: 'readiness',
    options: { url: 'http://127.0.0.1:8080', timeoutMs: 2000, rule: 'two-phase' },
  });
  expect(parseProbeArgs(['startup'], { QUORUMKV_URL: 'http://a:1' })).toMatchObject({ options: { url: 'http://a:1' } });
  expect(parseProbeArgs(['--url=http://b:2', 'startup', '--timeout-ms', '700'], { QUORUMKV_URL: 'http://a:1' })).toMatchObject({
    probe: 'startup',
    options: { url: 'http://b:2', timeoutMs: 700 },
  });
  expect(parseProbeArgs(['--help'], {})).toEqual({ help: true });
  expect(parseProbeArgs([], {})).toEqual({ error: 'missing the probe: liveness, readiness or startup' });
  expect(parseProbeArgs(['readiness', 'liveness'], {})).toEqual({ error: 'one probe only, got readiness liveness' });
  expect(parseProbeArgs(['readiness', '--url'], {})).toEqual({ error: "option '--url' needs a value" });
  expect(parseProbeArgs(['readiness', '--verbose'], {})).toEqual({ error: "unknown option '--verbose'" });
  expect(parseProbeArgs(['readiness', '--rule', 'lax'], {})).toEqual({ error: '--rule "lax": two-phase or naive' });
});
