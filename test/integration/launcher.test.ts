// `npm start` as a person uses it: flags after `npm start --` reach every node, an unknown one is
// refused; Ctrl-C (SIGINT to the terminal's process group) and SIGTERM to npm or to the launcher
// stop every node cleanly, every time; a node that exits is reported with the command that starts
// it again; the CLI finds the local cluster when nothing answers at its default address.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { cliPath, LocalNode, repoRoot } from '../../scripts/lib/local-cluster';
import { type LocalClusterState, localFallback } from '../../src/cli/local-cluster-file';
import { eventually } from '../helpers/eventually';
import { http } from '../helpers/http';

const run = promisify(execFile);

/** Ports of this file's clusters: 127.0.0.1 is the launcher's only host, so ports keep tests apart. */
const BASE_PORT = 18_431;

interface Launched {
  proc: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  stateFile: string;
  dataRoot: string;
  /** The PIDs the launcher announced, killed by afterAll if a test left them (nodes have process groups of their own). */
  pids: number[];
}

const launched: Launched[] = [];

/** `npm start -- ARGS` in a process group of its own, as a terminal runs it (no build: dist is built). */
function launch(args: string[]): Launched {
  const dir = mkdtempSync(path.join(tmpdir(), 'qkv-launcher-'));
  const stateFile = path.join(dir, 'local-cluster.json');
  const dataRoot = path.join(dir, 'data');
  const proc = spawn('npm', ['start', '--ignore-scripts', '--', '--data', dataRoot, ...args], {
    cwd: repoRoot(),
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...withoutAdminToken(process.env), QUORUMKV_LOCAL_CLUSTER_FILE: stateFile },
  });
  let text = '';
  proc.stdout?.on('data', (d: Buffer) => {
    text += d.toString('utf8');
  });
  proc.stderr?.on('data', (d: Buffer) => {
    text += d.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => proc.once('close', (code) => resolve(code)));
  const l: Launched = { proc, output: () => text, exited, stateFile, dataRoot, pids: [] };
  launched.push(l);
  return l;
}

/** The nodes trust loopback for /admin/* (the launcher's default) whatever the test runner's environment holds. */
function withoutAdminToken(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { QUORUMKV_ADMIN_TOKEN: _token, ...rest } = env;
  return rest;
}

/** Resolves with the launcher's state once the banner is out; fails at once if npm exits first. */
async function up(l: Launched, timeoutMs = 20_000): Promise<LocalClusterState> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (l.proc.exitCode !== null || l.proc.signalCode !== null) {
      throw new Error(`npm start exited (${l.proc.exitCode ?? l.proc.signalCode}) before its banner:\n${l.output().slice(-2000)}`);
    }
    if (/Ctrl-C stops the cluster/.test(l.output())) {
      const state = JSON.parse(readFileSync(l.stateFile, 'utf8')) as LocalClusterState;
      l.pids.push(state.launcher_pid, ...state.nodes.map((n) => n.pid as number));
      return state;
    }
    if (Date.now() > deadline) throw new Error(`no banner within ${timeoutMs} ms:\n${l.output().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Whether `pid` names a process that still runs (a zombie waiting for its parent does not). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function exitOf(l: Launched, timeoutMs = 20_000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`npm start still running after ${timeoutMs} ms:\n${l.output().slice(-3000)}`)), timeoutMs);
  });
  try {
    return await Promise.race([l.exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

afterAll(() => {
  for (const l of launched) {
    for (const pid of [...(l.proc.pid ? [-l.proc.pid] : []), ...l.pids]) {
      try {
        if (running(Math.abs(pid))) process.kill(pid, 'SIGKILL');
      } catch {}
    }
    rmSync(path.dirname(l.stateFile), { recursive: true, force: true });
  }
});

describe('npm start', () => {
  test('refuses an unknown option, naming the one it resembles, and starts nothing', async () => {
    const l = launch(['--nodes', '1', '--base-port', String(BASE_PORT), '--replication-factr', '1']);
    expect(await exitOf(l)).toBe(2);
    expect(l.output()).toMatch(/unknown option --replication-factr \(did you mean --replication-factor\?\)/);
    expect(existsSync(l.dataRoot)).toBe(false);
  });

  // the ways a local cluster is stopped: Ctrl-C in its terminal, SIGTERM to npm, SIGTERM to the launcher
  const ways = ['Ctrl-C (SIGINT to the process group)', 'SIGTERM to npm', 'SIGTERM to the launcher'] as const;
  /** Starts a 1-node cluster on `basePort`, stops it the given way, and says what was left behind. */
  async function startAndStop(round: number, basePort: number) {
    const way = ways[round % ways.length] as (typeof ways)[number];
    const l = launch(['--nodes', '1', '--base-port', String(basePort), '--replication-factor', '1', '--gossip-interval-ms', '200']);
    const state = await up(l);
    const npmPid = l.proc.pid as number;
    // the flags after `npm start --` reached the node
    const flags = round === 0 ? (await http('GET', `${state.nodes[0]?.url}/ring`)).body.replication_factor : 1;
    if (way === 'Ctrl-C (SIGINT to the process group)') process.kill(-npmPid, 'SIGINT');
    else if (way === 'SIGTERM to npm') process.kill(npmPid, 'SIGTERM');
    else process.kill(state.launcher_pid, 'SIGTERM');
    const code = await exitOf(l);
    const out = l.output();
    const pids = [npmPid, state.launcher_pid, ...state.nodes.map((n) => n.pid as number)];
    return {
      round,
      way,
      replicationFactor: flags,
      code: way === 'SIGTERM to npm' ? 'any' : code, // npm reports its own SIGTERM as it likes
      pidFiles: state.nodes.filter((n) => existsSync(path.join(l.dataRoot, n.id, 'quorumkv.pid'))).map((n) => n.id),
      notStopped: state.nodes.filter((n) => !new RegExp(`${n.id}\\s+INFO\\s+stopped`).test(out)).map((n) => n.id),
      stillRunning: pids.filter(running),
      stateFileLeft: existsSync(l.stateFile),
    };
  }

  test('stops every node cleanly, ten times over, whichever way it is stopped', async () => {
    // two clusters at a time, on their own ports: each round is mostly waiting for processes
    for (let round = 0; round < 10; round += 2) {
      const outcomes = await Promise.all([startAndStop(round, BASE_PORT), startAndStop(round + 1, BASE_PORT + 3)]);
      expect(outcomes).toEqual(
        outcomes.map(({ round, way }) => ({
          round,
          way,
          replicationFactor: 1,
          code: way === 'SIGTERM to npm' ? 'any' : 0,
          pidFiles: [],
          notStopped: [],
          stillRunning: [],
          stateFileLeft: false,
        })),
      );
    }
  }, 120_000);
});

describe('a running local cluster', () => {
  let l: Launched;
  let state: LocalClusterState;
  beforeAll(async () => {
    l = launch(['--nodes', '2', '--base-port', String(BASE_PORT + 10), '--gossip-interval-ms', '200', '--heartbeat-interval-ms', '200']);
    state = await up(l);
  });

  /** A port on which nothing listens: bound, then closed. */
  async function closedPort(): Promise<number> {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    await new Promise((r) => srv.close(r));
    return port;
  }

  test('is what the CLI uses when given no node and nothing answers at its default address', async () => {
    const dflt = `http://127.0.0.1:${await closedPort()}`;
    expect(await localFallback(dflt, l.stateFile)).toEqual({ url: state.nodes[0]?.url, id: 'n1', from: 'file' });
    // a default that answers wins; so does QUORUMKV_URL (or --url): the CLI says nothing of a fallback
    expect(await localFallback(state.nodes[0]?.url as string, l.stateFile)).toBeUndefined();
    const viaEnv = await run(process.execPath, [cliPath(), 'status'], {
      env: { ...process.env, QUORUMKV_URL: state.nodes[1]?.url, QUORUMKV_LOCAL_CLUSTER_FILE: l.stateFile },
    });
    expect({ node: /^node (n\d) /.exec(viaEnv.stdout)?.[1], fellBack: /nothing answers/.test(viaEnv.stderr) }).toEqual({
      node: 'n2',
      fellBack: false,
    });
  });

  test('reports a node that exits with its exit code and the command that starts it again', async () => {
    const n2 = state.nodes[1] as LocalClusterState['nodes'][number];
    process.kill(n2.pid as number, 'SIGKILL');
    const report = await eventually(() => {
      const m = /n2 \(pid \d+\) was killed by SIGKILL; the others go on\. Start it again, in another terminal, with:\n {2}(.+)\n/.exec(
        l.output(),
      );
      if (!m) throw new Error(`no report yet:\n${l.output().slice(-2000)}`);
      return m[1] as string;
    });
    // the command, run as printed, starts n2 again on its data
    // (through env, so that the node is the process `again` names: the command starts with NAME=value)
    const again = spawn('sh', ['-c', `exec env ${report}`], { stdio: 'ignore' });
    if (again.pid) l.pids.push(again.pid);
    const againClosed = new Promise((r) => again.once('close', r));
    try {
      await eventually(
        async () => {
          const h = await http('GET', `${n2.url}/health`, { timeoutMs: 1000 });
          expect({
            status: h.status,
            id: h.body?.id,
            pid: readFileSync(path.join(l.dataRoot, 'n2', 'quorumkv.pid'), 'utf8').trim(),
          }).toEqual({
            status: 200,
            id: 'n2',
            pid: String(again.pid),
          });
        },
        { timeoutMs: 15_000 },
      );
    } finally {
      again.kill('SIGTERM');
      await againClosed;
    }
    process.kill(state.launcher_pid, 'SIGTERM');
    expect(await exitOf(l)).toBe(0);
    expect(['n1', 'n2'].filter((id) => existsSync(path.join(l.dataRoot, id, 'quorumkv.pid')))).toEqual([]);
    // the launcher is gone, and so is its file: nothing names this cluster any more
    expect(existsSync(l.stateFile)).toBe(false);
  }, 60_000);
});

test('a node whose port another process answers on fails to start instead of being taken for that process', async () => {
  // another quorumkv-looking process already answers /health on the port (a node left from an earlier run)
  const other = createHttpServer((_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ status: 'ok', id: 'n1', pid: process.pid }));
  });
  await new Promise<void>((resolve) => other.listen(18_497, '127.0.0.1', resolve));
  const dataDir = mkdtempSync(path.join(tmpdir(), 'qkv-taken-'));
  try {
    const node = new LocalNode({ id: 'n1', host: '127.0.0.1', port: 18_497, dataDir, seeds: [], args: ['--log-level', 'warn'] });
    await expect(node.start()).rejects.toThrow(/n1 exited during start-up[\s\S]*127.0.0.1:18497 is already in use/);
  } finally {
    other.closeAllConnections();
    await new Promise((resolve) => other.close(resolve));
    rmSync(dataDir, { recursive: true, force: true });
  }
}, 30_000);
