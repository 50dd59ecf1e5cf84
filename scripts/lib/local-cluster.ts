// Real `quorumkv serve` processes on loopback: what `npm start`, the benchmarks and the
// integration tests run. Each node is a child process with its own data directory; the
// launcher records the real PID so tests can SIGKILL / SIGSTOP exactly the node they mean.

import { type ChildProcess, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Agent, fetch as undiciFetch } from 'undici';

/** The repository root: the nearest parent directory holding package.json. */
export function repoRoot(from = __dirname): string {
  let dir = from;
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${from}`);
    dir = up;
  }
  return dir;
}

export function cliPath(): string {
  const p = path.join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
  if (!existsSync(p)) throw new Error(`${p} is missing: run "npm run build" first`);
  return p;
}

export interface NodeSpec {
  id: string;
  host: string;
  port: number;
  dataDir: string;
  seeds: string[];
  /** More `serve` flags, e.g. ['--request-timeout-ms', '1000']. */
  args?: string[];
  env?: Record<string, string>;
  /** Flags for node itself, e.g. ['--cpu-prof']. */
  nodeArgs?: string[];
  /** The built CLI to run (another build's dist/src/cli/main.js): this tree's when omitted. */
  cli?: string;
  /** The launcher's bearer token for a node with client authentication on (an admin token opens every route). */
  clientToken?: string;
  /**
   * Run the process as this user (and `gid`, else the same number); the launcher must be root. On
   * loopback every connection leaves from 127.0.0.1, so this is what lets iptables' owner match tell
   * one node's packets from another's (scripts/chaos.ts). Its data directory is created and handed to it.
   */
  uid?: number;
  gid?: number;
  /**
   * Run the node in a process group of its own, so that a terminal's Ctrl-C (SIGINT to the whole
   * foreground group) reaches only the launcher, which stops every node with one SIGTERM: a node
   * that got both would take the second signal as "exit now" and skip its clean shutdown.
   */
  ownProcessGroup?: boolean;
}

/**
 * Settings for clusters that must show failures in seconds (tests, campaigns): a 1 s deadline,
 * gossip and heartbeats every 100 ms, warnings only in the logs.
 */
export const FAST_ARGS: readonly string[] = [
  '--request-timeout-ms',
  '1000',
  '--gossip-interval-ms',
  '100',
  '--heartbeat-interval-ms',
  '100',
  '--discovery-interval-ms',
  '100',
  '--log-level',
  'warn',
];

const LOG_TAIL_LINES = 400;

/**
 * The process answering (its /health pid) is the one started (`started`), or its child: serve runs
 * itself again with a heap limit when CONTAINER_MEMORY_LIMIT_BYTES is set (src/cli/heap.ts).
 */
function isOurs(answering: number | undefined, started: number | undefined): boolean {
  if (answering === undefined || started === undefined) return false;
  if (answering === started) return true;
  try {
    const stat = readFileSync(`/proc/${answering}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === started;
  } catch {
    return false;
  }
}

export class LocalNode {
  proc: ChildProcess | undefined;
  /** Last lines the process wrote (stdout and stderr), for failure messages. */
  readonly logTail: string[] = [];
  private exited: Promise<number | null> = Promise.resolve(null);
  /** Resolves once the process has exited and its output has been read to the end. */
  closed: Promise<void> = Promise.resolve();

  constructor(
    public spec: NodeSpec,
    private readonly onLine?: (node: LocalNode, line: string) => void,
    private readonly onExit?: (node: LocalNode, code: number | null, signal: NodeJS.Signals | null) => void,
  ) {}

  get id(): string {
    return this.spec.id;
  }
  get address(): string {
    return `${this.spec.host}:${this.spec.port}`;
  }
  /** https:// when the node serves TLS on its API port (QUORUMKV_TLS client or all). */
  get url(): string {
    const tls = this.setting('QUORUMKV_TLS');
    return `${tls === 'client' || tls === 'all' ? 'https' : 'http'}://${this.address}`;
  }

  /** A variable as the node process sees it: its own env, else the launcher's (which it inherits). */
  private setting(name: string): string | undefined {
    return this.spec.env?.[name] ?? process.env[name];
  }

  private agent: Agent | undefined;
  /**
   * fetch() for this node: through the cluster's CA (QUORUMKV_TLS_CA) when it serves https, with
   * the launcher's token (clientToken) unless the request has its own Authorization.
   */
  fetch(pathAndQuery: string, init: { method?: string; headers?: Record<string, string>; body?: string; signal?: AbortSignal } = {}) {
    const ca = this.setting('QUORUMKV_TLS_CA');
    if (this.url.startsWith('https') && this.agent === undefined && ca !== undefined)
      this.agent = new Agent({ connect: { ca: readFileSync(ca) } });
    const token = this.spec.clientToken ?? process.env.QUORUMKV_TOKEN;
    const headers = { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.headers ?? {}) };
    return undiciFetch(`${this.url}${pathAndQuery}`, { ...init, headers, ...(this.agent ? { dispatcher: this.agent } : {}) });
  }
  get pid(): number | undefined {
    return this.proc?.pid;
  }
  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** The Authorization header the CLI would send to this node's /admin/* (its QUORUMKV_ADMIN_TOKEN's first token). */
  adminHeaders(): Record<string, string> {
    const token = (this.spec.env?.QUORUMKV_ADMIN_TOKEN ?? process.env.QUORUMKV_ADMIN_TOKEN)?.split(',')[0] ?? this.spec.clientToken;
    return token ? { authorization: `Bearer ${token}` } : {};
  }

  args(): string[] {
    const s = this.spec;
    return [
      'serve',
      '--node-id',
      s.id,
      '--host',
      s.host,
      '--port',
      String(s.port),
      '--data-dir',
      s.dataDir,
      ...(s.seeds.length ? ['--seeds', s.seeds.join(',')] : []),
      ...(s.args ?? []),
    ];
  }

  /**
   * The shell command that starts this node again by hand, exactly as the launcher started it
   * (its environment settings, absolute paths), for the message that reports it exited.
   */
  commandLine(): string {
    const env = Object.entries(this.spec.env ?? {}).map(([k, v]) => `${k}=${shellQuote(v)}`);
    return [...env, process.execPath, ...(this.spec.nodeArgs ?? []), this.spec.cli ?? cliPath(), ...this.args()].map(shellWord).join(' ');
  }

  /** Starts the process and resolves once /health answers; rejects if it exits first. */
  async start(timeoutMs = 15_000): Promise<void> {
    if (this.running) throw new Error(`${this.id} is already running`);
    const { uid, gid } = this.spec;
    if (uid !== undefined) {
      mkdirSync(this.spec.dataDir, { recursive: true });
      chownSync(this.spec.dataDir, uid, gid ?? uid);
    }
    const proc = spawn(process.execPath, [...(this.spec.nodeArgs ?? []), this.spec.cli ?? cliPath(), ...this.args()], {
      env: { ...process.env, ...(this.spec.env ?? {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(uid !== undefined ? { uid, gid: gid ?? uid } : {}),
      ...(this.spec.ownProcessGroup ? { detached: true } : {}),
    });
    this.proc = proc;
    // the exit is reported once its output is read to the end, so a report follows the node's last lines
    const closed = new Promise<void>((resolve) => proc.once('close', () => resolve()));
    this.exited = new Promise((resolve) =>
      proc.once('exit', (code, signal) => {
        resolve(code);
        if (this.onExit) void closed.then(() => this.onExit?.(this, code, signal));
      }),
    );
    this.closed = closed.then(() => undefined);
    for (const stream of [proc.stdout, proc.stderr]) {
      createInterface({ input: stream }).on('line', (line) => {
        this.logTail.push(line);
        if (this.logTail.length > LOG_TAIL_LINES) this.logTail.shift();
        this.onLine?.(this, line);
      });
    }
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) {
        await this.exited;
        throw new Error(
          `${this.id} exited during start-up (code ${proc.exitCode}, signal ${proc.signalCode}):\n${this.logTail.slice(-20).join('\n')}`,
        );
      }
      try {
        const res = await this.fetch('/health', { signal: AbortSignal.timeout(500) });
        // another process on this port (a node left over from an earlier run) is not this node: wait
        // for ours, which exits with EADDRINUSE if the port stays taken
        if (res.ok && isOurs(((await res.json()) as { pid?: number }).pid, proc.pid)) return;
      } catch {}
      if (Date.now() > deadline)
        throw new Error(`${this.id} did not answer /health within ${timeoutMs} ms:\n${this.logTail.slice(-20).join('\n')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Sends `signal` and waits for the process to exit (SIGKILL: a crash; SIGTERM: a clean stop). */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    if (!this.running || !this.proc) return null;
    if (signal !== 'SIGKILL') this.resume(); // a SIGSTOPped process would not handle SIGTERM
    this.proc.kill(signal);
    return this.exited;
  }

  stop(): Promise<number | null> {
    return this.kill('SIGTERM');
  }

  /** SIGSTOP: the process stays, its sockets stay open, nothing answers (a hung node). */
  pause(): void {
    if (this.proc?.pid) process.kill(this.proc.pid, 'SIGSTOP');
  }

  resume(): void {
    if (this.proc?.pid) process.kill(this.proc.pid, 'SIGCONT');
  }
}

/** `s` as one word of a POSIX shell command line. */
function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A word of a command line, keeping NAME=value assignments readable. */
function shellWord(w: string): string {
  const eq = /^[A-Z_][A-Z0-9_]*=/.exec(w);
  return eq ? w : shellQuote(w);
}

export interface ClusterOptions {
  /** One host per node (e.g. 127.0.20.1, 127.0.20.2, ...), or one host with consecutive ports. */
  hosts?: string[];
  host?: string;
  basePort?: number;
  port?: number;
  nodes?: number;
  dataRoot: string;
  args?: string[];
  /** Environment of every node; it wins over the defaults below (LOCAL_ADMIN_ENV). */
  env?: Record<string, string>;
  nodeArgs?: string[];
  /** NodeSpec.cli, for every node. */
  cli?: string;
  onLine?: (node: LocalNode, line: string) => void;
  /** A node's process exited (after its last output line was delivered to onLine). */
  onExit?: (node: LocalNode, code: number | null, signal: NodeJS.Signals | null) => void;
  /** Each node in a process group of its own (NodeSpec.ownProcessGroup): what `npm start` does. */
  ownProcessGroups?: boolean;
  /** The launcher's bearer token, when the nodes have client authentication on. */
  clientToken?: string;
}

/**
 * What a local cluster's nodes get unless `env` says otherwise: the admin routes trust callers on
 * loopback, where the launcher, the CLI, the tests and the campaigns are, so they need no token.
 * A node never does this by itself (behind a service-mesh sidecar every client is on loopback);
 * a local cluster asks for it, and `npm start` says so in its banner.
 */
export const LOCAL_ADMIN_ENV: Readonly<Record<string, string>> = { QUORUMKV_ADMIN_FROM_LOOPBACK: 'true' };

export class LocalCluster {
  constructor(readonly nodes: LocalNode[]) {}

  static create(o: ClusterOptions): LocalCluster {
    const count = o.hosts?.length ?? o.nodes ?? 3;
    const addrs = Array.from({ length: count }, (_, i) => ({
      host: o.hosts?.[i] ?? o.host ?? '127.0.0.1',
      port: o.hosts ? (o.port ?? 8080) : (o.basePort ?? 8081) + i,
    }));
    const seeds = addrs.map((a) => `${a.host}:${a.port}`);
    return new LocalCluster(
      addrs.map(
        (a, i) =>
          new LocalNode(
            {
              id: `n${i + 1}`,
              host: a.host,
              port: a.port,
              dataDir: path.join(o.dataRoot, `n${i + 1}`),
              seeds,
              args: o.args ?? [],
              env: { ...LOCAL_ADMIN_ENV, ...(o.env ?? {}) },
              ...(o.nodeArgs ? { nodeArgs: o.nodeArgs } : {}),
              ...(o.cli ? { cli: o.cli } : {}),
              ...(o.ownProcessGroups ? { ownProcessGroup: true } : {}),
              ...(o.clientToken ? { clientToken: o.clientToken } : {}),
            },
            o.onLine,
            o.onExit,
          ),
      ),
    );
  }

  async start(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.start()));
    await this.waitFormed();
  }

  /**
   * A new member on `host` (same port, args and env as the others), not started: with a fresh data
   * directory under `dataRoot` it joins the cluster when it starts. The seeds are the first nodes'.
   */
  addNode(host: string, dataRoot: string): LocalNode {
    const first = this.nodes[0] as LocalNode;
    const id = `n${this.nodes.length + 1}`;
    const node = new LocalNode({
      ...first.spec,
      id,
      host,
      dataDir: path.join(dataRoot, id),
      seeds: [...first.spec.seeds, `${host}:${first.spec.port}`],
    });
    this.nodes.push(node);
    return node;
  }

  /** A node that left the cluster (decommissioned, removed) is no longer counted by waitFormed. */
  forget(node: LocalNode): void {
    const i = this.nodes.indexOf(node);
    if (i >= 0) this.nodes.splice(i, 1);
    this.retired.push(node);
  }

  /** Nodes forgotten by forget(): stopAll still stops them. */
  private readonly retired: LocalNode[] = [];

  /**
   * Resolves once every running node knows every member, sees it alive and normal, agrees on the
   * ring, and has no move of its own under way. The last is asked apart: a joiner turns normal,
   * and the others see it so, before it has told every member and cleared its saved plan.
   */
  async waitFormed(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const want = this.nodes.length;
    for (;;) {
      const views = await Promise.all(
        this.nodes
          .filter((n) => n.running)
          .map(async (n) => {
            try {
              const res = await n.fetch('/cluster', { signal: AbortSignal.timeout(1000) });
              const body = (await res.json()) as { ring_checksum: string; members: Array<{ state: string; status: string }> };
              const members = body.members.filter((m) => m.status !== 'removed');
              if (members.length !== want || !members.every((m) => m.state === 'alive' && m.status === 'normal')) return undefined;
              const own = await n.fetch('/admin/move', { headers: n.adminHeaders(), signal: AbortSignal.timeout(1000) });
              const phase = ((await own.json()) as { move: { phase: string } | null }).move?.phase;
              return phase === undefined || phase === 'done' || phase === 'failed' ? body.ring_checksum : undefined;
            } catch {
              return undefined;
            }
          }),
      );
      if (views.every((v) => v !== undefined) && new Set(views).size === 1) return;
      if (Date.now() > deadline) throw new Error(`cluster did not form within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  node(id: string): LocalNode {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  async stopAll(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await Promise.all([...this.nodes, ...this.retired].map((n) => n.kill(signal)));
  }

  /**
   * SIGTERM to every running node, once, and a deadline: the nodes still running after
   * `timeoutMs` are killed (SIGKILL). Resolves with the ids of those that had to be killed.
   */
  async stopWithin(timeoutMs: number): Promise<string[]> {
    const running = [...this.nodes, ...this.retired].filter((n) => n.running);
    const killed: string[] = [];
    await Promise.all(
      running.map(async (n) => {
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((resolve) => {
          timer = setTimeout(() => resolve('late'), timeoutMs);
        });
        const outcome = await Promise.race([n.kill('SIGTERM').then(() => n.closed), late]);
        clearTimeout(timer);
        if (outcome === 'late') {
          killed.push(n.id);
          await n.kill('SIGKILL');
        }
      }),
    );
    return killed;
  }
}
