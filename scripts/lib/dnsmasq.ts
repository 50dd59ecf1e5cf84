// A real DNS server for discovery tests: dnsmasq on a loopback port of the test's choosing,
// answering A records from a hosts file the test rewrites (pods appearing, pods going away) and
// SRV records given at start. Only names under `domain` are answered; nothing is forwarded.

import { type ChildProcess, spawn } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { accessSync, constants, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface HostsEntry {
  /** IPv4 only: readiness is checked with A queries. */
  ip: string;
  names: string[];
}

export interface DnsServer {
  port: number;
  /** "127.0.0.1:<port>", for createResolver(). */
  address: string;
  /** Rewrites the hosts file and sends SIGHUP, then waits until queries show the new records. */
  setHosts(hosts: HostsEntry[]): Promise<void>;
  /** Stops this dnsmasq (its own PID only) and removes its files. */
  stop(): Promise<void>;
}

export interface DnsmasqOptions {
  port: number;
  /** Names under it are answered here and never forwarded, e.g. 'kv.test'. */
  domain: string;
  hosts?: HostsEntry[];
  /** `_kv._tcp.kv.test` → target:port; the target's A record comes from the hosts. */
  srv?: Array<{ name: string; target: string; port: number }>;
}

const START_TIMEOUT_MS = 5_000;
const RELOAD_TIMEOUT_MS = 5_000;
const STOP_TIMEOUT_MS = 5_000;
const POLL_INTERVAL_MS = 20;
const PROBE_TIMEOUT_MS = 250;

export const DNSMASQ_MISSING =
  'dnsmasq is not installed: .ci/run installs it with apt-get install -y dnsmasq-base (the binary alone; the dnsmasq package also starts a system DNS service)';

/** /usr/sbin/dnsmasq, else the first `dnsmasq` on PATH (non-root PATHs often lack /usr/sbin). */
function findDnsmasq(): string {
  const dirs = ['/usr/sbin', ...(process.env.PATH ?? '').split(path.delimiter).filter((d) => d.length > 0)];
  for (const dir of dirs) {
    const candidate = path.join(dir, 'dnsmasq');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  throw new Error(DNSMASQ_MISSING);
}

function hostsFileText(hosts: HostsEntry[]): string {
  for (const h of hosts) {
    if (!isIPv4(h.ip)) throw new Error(`dnsmasq helper: ${h.ip} is not an IPv4 address`);
    if (h.names.length === 0 || h.names.some((n) => !/^[A-Za-z0-9.-]+$/.test(n))) {
      throw new Error(`dnsmasq helper: bad names for ${h.ip}: ${h.names.join(' ')}`);
    }
  }
  return hosts.map((h) => `${h.ip} ${h.names.join(' ')}\n`).join('');
}

/** name → sorted addresses; a name on several lines has every one of their addresses, as dnsmasq answers. */
function addressesByName(hosts: HostsEntry[]): Map<string, string[]> {
  const byName = new Map<string, Set<string>>();
  for (const h of hosts) {
    for (const name of h.names) {
      const key = name.toLowerCase();
      byName.set(key, (byName.get(key) ?? new Set()).add(h.ip));
    }
  }
  return new Map([...byName].map(([name, ips]) => [name, [...ips].sort()]));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startDnsmasq(opts: DnsmasqOptions): Promise<DnsServer> {
  const binary = findDnsmasq();
  const dir = mkdtempSync(path.join(tmpdir(), 'qkv-dnsmasq-'));
  const hostsFile = path.join(dir, 'hosts');
  let hosts = opts.hosts ?? [];
  writeFileSync(hostsFile, hostsFileText(hosts));

  const args = [
    '--keep-in-foreground',
    '--conf-file=/dev/null', // not /etc/dnsmasq.conf
    '--pid-file=', // no pid file: we hold the child's PID, and non-root cannot write /run/dnsmasq
    '--log-facility=-', // stderr, kept for error messages, rather than syslog
    `--port=${opts.port}`,
    '--listen-address=127.0.0.1',
    '--bind-interfaces',
    '--no-resolv',
    '--no-hosts',
    `--local=/${opts.domain}/`,
    '--user=root', // as root, stay root (it would switch to nobody, who cannot read our 0700 temp dir); others stay themselves
    `--addn-hosts=${hostsFile}`,
    ...(opts.srv ?? []).map((s) => `--srv-host=${s.name},${s.target},${s.port},0,10`),
  ];
  const child: ChildProcess = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid;
  const output: string[] = [];
  // Whole lines only (a chunk may end mid-line), the last 50 of them, for error messages.
  const keepLines = () => {
    let partial = '';
    return (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      output.push(...lines.filter((l) => l.length > 0));
      output.splice(0, Math.max(0, output.length - 50));
    };
  };
  child.stdout?.on('data', keepLines());
  child.stderr?.on('data', keepLines());
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    });
  });
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });
  // If the test process dies without afterAll, do not leave dnsmasq holding the port.
  const killOnExit = () => {
    if (exited === undefined && pid !== undefined) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
  };
  process.once('exit', killOnExit);

  const address = `127.0.0.1:${opts.port}`;
  const probe = new Resolver({ timeout: PROBE_TIMEOUT_MS, tries: 1 });
  probe.setServers([address]);
  const describe = () => `dnsmasq ${args.join(' ')}\n${output.join('\n')}`;

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.removeListener('exit', killOnExit);
    if (exited === undefined && pid !== undefined && spawnError === undefined) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {} // already gone between its exit and our hearing of it
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exit, new Promise((r) => (timer = setTimeout(r, STOP_TIMEOUT_MS)))]);
      clearTimeout(timer);
      if (exited === undefined) {
        process.kill(pid, 'SIGKILL');
        await exit;
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };

  /** Retries `check` until it returns undefined (done) or the deadline passes; its last answer says what was still wrong. */
  const waitUntil = async (what: string, timeoutMs: number, check: () => Promise<string | undefined>) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (spawnError !== undefined) throw new Error(`cannot run ${binary}: ${spawnError.message}`);
      if (exited !== undefined) throw new Error(`dnsmasq exited (${exited.code ?? exited.signal}) while ${what}\n${describe()}`);
      const wrong = await check();
      if (wrong === undefined) return;
      if (Date.now() >= deadline) throw new Error(`dnsmasq: ${what}: still ${wrong} after ${timeoutMs} ms\n${describe()}`);
      await sleep(POLL_INTERVAL_MS);
    }
  };

  /** What the server answers that differs from `expected` (names missing from it must not resolve), or undefined. */
  const mismatch = async (expected: Map<string, string[]>, gone: string[]): Promise<string | undefined> => {
    const wrong = await Promise.all([
      ...[...expected].map(async ([name, ips]) => {
        const got = await probe.resolve4(name).then(
          (a) => a.sort().join(','),
          (err: NodeJS.ErrnoException) => err.code ?? String(err),
        );
        return got === ips.join(',') ? undefined : `${name} → ${got} (want ${ips.join(',')})`;
      }),
      ...gone.map(async (name) => {
        const got = await probe.resolve4(name).then(
          (a) => a.join(','),
          (err: NodeJS.ErrnoException) => err.code ?? String(err),
        );
        return got === 'ENOTFOUND' || got === 'ENODATA' ? undefined : `${name} → ${got} (want no address)`;
      }),
    ]);
    const list = wrong.filter((w) => w !== undefined);
    return list.length > 0 ? list.join('; ') : undefined;
  };

  try {
    await waitUntil('starting', START_TIMEOUT_MS, async () => {
      // dnsmasq logs this once its sockets are bound. Without it an answer could come from another
      // server on the port while ours is failing with "Address already in use".
      if (!output.some((line) => line.includes('started, version'))) return 'not logging "started"';
      // Any DNS answer, even "no such name", means it listens; ECONNREFUSED or a timeout does not.
      const code = await probe.resolve4(`qkv-probe.${opts.domain}`).then(
        () => undefined,
        (err: NodeJS.ErrnoException) => err.code,
      );
      if (code !== undefined && code !== 'ENOTFOUND' && code !== 'ENODATA') return `answering ${code}`;
      return mismatch(addressesByName(hosts), []);
    });
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    port: opts.port,
    address,
    async setHosts(next) {
      const text = hostsFileText(next);
      const before = addressesByName(hosts);
      const after = addressesByName(next);
      // Write then rename: dnsmasq never reads half a file.
      const tmp = `${hostsFile}.tmp`;
      writeFileSync(tmp, text);
      renameSync(tmp, hostsFile);
      hosts = next;
      if (pid === undefined || exited !== undefined) throw new Error(`dnsmasq is not running\n${describe()}`);
      process.kill(pid, 'SIGHUP'); // clears its cache and re-reads --addn-hosts
      const gone = [...before.keys()].filter((name) => !after.has(name));
      await waitUntil('reloading the hosts file', RELOAD_TIMEOUT_MS, () => mismatch(after, gone));
    },
    stop,
  };
}
