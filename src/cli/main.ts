#!/usr/bin/env node
// The `quorumkv` command: `serve` runs a node; `put`, `get`, `delete` talk to one over HTTP.

import { readFileSync } from 'node:fs';
import https from 'node:https';
import axios, { type AxiosResponse } from 'axios';
import { Command, Option } from 'commander';
import { ConfigError, envName, type Flags, loadConfig, parseTokenList, SETTINGS } from '../config';
import { TUNING } from '../core/defaults';
import { healthCheck, probeHeaders, probeTls } from './probe';
import { count, ProgressPrinter, type ProgressView, RateWindow, renderProgress } from './progress';
import { ago, percent, table } from './table';

const DEFAULT_URL = 'http://127.0.0.1:8080';

function program(): Command {
  const p = new Command('quorumkv')
    .description('A leaderless, quorum-replicated key-value database')
    .showHelpAfterError()
    .configureOutput({ outputError: (s, write) => write(s) })
    .addOption(
      new Option(
        '--token <token>',
        'Bearer token sent with every request to a node with client authentication on (prefer the variable: flags show in ps)',
      ).env(TOKEN_ENV),
    )
    .addOption(new Option('--ca-cert <file>', "The cluster's CA certificate (PEM), to verify an https:// node").env(CA_ENV));
  // Every client command: the token and the CA apply to each of its requests (serve reads its own settings).
  p.hook('preAction', (_program, action) => {
    if (action.name() === 'serve') return;
    clientDefaults(p.opts() as { token?: string; caCert?: string });
    // a reader that went away (`quorumkv status --watch | head`) ends the command quietly, as it ends cat
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      process.exit(0);
    });
  });

  const serveCmd = p
    .command('serve')
    .description('Run a node. Every flag also reads QUORUMKV_<FLAG> from the environment (e.g. QUORUMKV_REPLICATION_FACTOR).')
    .action(async (given: Record<string, string | boolean | undefined>) => {
      // an optional-value flag given bare (--sloppy-quorum) arrives as true
      const flags: Flags = Object.fromEntries(Object.entries(given).map(([k, v]) => [k, v === true ? 'true' : v === false ? 'false' : v]));
      let config: ReturnType<typeof loadConfig>;
      try {
        config = loadConfig(flags, process.env);
      } catch (err) {
        if (err instanceof ConfigError) {
          process.stderr.write(`quorumkv serve: ${err.message}\n`);
          process.exit(2);
        }
        throw err;
      }
      // The heap follows the container's memory limit (heap.ts): run again with it when needed.
      const { heapFlags, runAgainWith } = await import('./heap');
      let flagsForHeap: string[] | undefined;
      try {
        flagsForHeap = heapFlags(process.env, process.execArgv);
      } catch (err) {
        process.stderr.write(`quorumkv serve: ${(err as Error).message}
`);
        process.exit(2);
      }
      if (flagsForHeap) process.exit(await runAgainWith(flagsForHeap));
      try {
        // loaded here so health probes and client commands do not pay for express, lmdb and pino
        const { serve } = await import('./serve');
        const running = await serve(config);
        let signals = 0;
        const onSignal = (sig: NodeJS.Signals) => {
          signals++;
          if (signals > 1) process.exit(1); // a second Ctrl-C: stop now
          running.shutdown(sig).then(
            () => process.exit(0),
            (err: unknown) => {
              process.stderr.write(`quorumkv serve: shutdown failed: ${String(err)}\n`);
              process.exit(1);
            },
          );
        };
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        const why = e.code === 'EADDRINUSE' ? `${config.host}:${config.port} is already in use (--port / --host)` : e.message;
        process.stderr.write(`quorumkv serve: cannot start: ${why}\n`);
        process.exit(1);
      }
    });
  // loadConfig reads the environment itself (so an error can say which source a bad value came
  // from); help only names the variable.
  for (const s of SETTINGS) {
    serveCmd.addOption(new Option(`--${s.flag} ${s.arg}`, `${s.description} [${envName(s.flag)}] (default: ${s.defaultText})`));
  }

  const urlOption = () =>
    new Option('--url <url>', 'A node of the cluster (when nothing answers at the default, a node of the local cluster of npm start)')
      .env('QUORUMKV_URL')
      .default(DEFAULT_URL);
  const consistency = () => new Option('--consistency <level>', 'one, quorum or all').choices(['one', 'quorum', 'all']);
  const adminToken = () =>
    new Option(
      '--admin-token <tokens>',
      "The node's admin token, sent as Authorization: Bearer (the first of a list; prefer the variable: flags show in ps)",
    ).env(ADMIN_TOKEN_ENV);

  p.command('put')
    .description('Store a value: parsed as JSON when it is valid JSON, else stored as a string')
    .argument('<key>')
    .argument('<value>')
    .addOption(urlOption())
    .addOption(consistency())
    .option('--w <n>', 'Acknowledgements to wait for')
    .option('--string', 'Store the value as a string even if it parses as JSON')
    .action(async (key: string, raw: string, o: { url: string; consistency?: string; w?: string; string?: boolean }) => {
      let value: unknown = raw;
      if (!o.string) {
        try {
          value = JSON.parse(raw);
        } catch {}
      }
      await call('PUT', o.url, key, { consistency: o.consistency, w: o.w }, { value });
    });

  p.command('get')
    .description('Read a value')
    .argument('<key>')
    .addOption(urlOption())
    .addOption(consistency())
    .option('--r <n>', 'Replies to wait for')
    .action(async (key: string, o: { url: string; consistency?: string; r?: string }) => {
      await call('GET', o.url, key, { consistency: o.consistency, r: o.r });
    });

  p.command('delete')
    .description('Delete a key (writes a tombstone)')
    .argument('<key>')
    .addOption(urlOption())
    .addOption(consistency())
    .option('--w <n>', 'Acknowledgements to wait for')
    .action(async (key: string, o: { url: string; consistency?: string; w?: string }) => {
      await call('DELETE', o.url, key, { consistency: o.consistency, w: o.w });
    });

  p.command('health')
    .description('Probe the local node as kubelet does: prints why, exits 0 (pass) or 1 (fail)')
    .argument('<probe>', 'liveness, readiness or startup')
    .addOption(urlOption())
    .addOption(new Option('--timeout-ms <ms>', 'Give up (and fail) after this long; keep it under the probe timeout').default('2000'))
    .addOption(
      new Option('--rule <rule>', "Readiness rule: two-phase, or naive (the seed design's deadlock, for demonstrations)")
        .choices(['two-phase', 'naive'])
        .default('two-phase'),
    )
    .action(async (probe: string, o: { url: string; timeoutMs: string; rule: string }) => {
      // the same code as the quorumkv-probe binary, which the manifests' probes run (it loads no more than it needs)
      const { code, line } = await healthCheck(probe, {
        url: o.url,
        timeoutMs: Number(o.timeoutMs),
        rule: o.rule,
        headers: probeHeaders(process.env),
        ...probeTls(process.env, (p.opts() as { caCert?: string }).caCert),
      });
      process.stdout.write(`${line}\n`);
      process.exit(code);
    });

  p.command('drain')
    .description('Before a pod stops (preStop): fail readiness so Services stop sending, then wait for that to take effect')
    .addOption(urlOption())
    .addOption(
      new Option('--wait-ms <ms>', 'How long to wait after readiness fails, for endpoints to be updated')
        .env('QUORUMKV_PRESTOP_WAIT_MS')
        .default(String(TUNING.drainWaitMs)),
    )
    .addOption(adminToken())
    .action(async (o: { url: string; waitMs: string; adminToken?: string }) => {
      process.exit(await drain(o.url, Number(o.waitMs), adminHeaders(o.adminToken)));
    });

  p.command('repair')
    .description('Run anti-entropy now against every replica of every range this node holds, and show its progress')
    .addOption(urlOption())
    .option('--range <lo:hi>', 'Only this token range (as /ring and the logs show them)')
    .option('--no-wait', 'Start it and return')
    .addOption(new Option('--timeout-s <s>', 'Give up waiting after this long').default('3600'))
    .addOption(adminToken())
    .action(async (o: { url: string; range?: string; wait: boolean; timeoutS: string; adminToken?: string }) => {
      process.exit(await repair(o.url, o.range, o.wait, Number(o.timeoutS) * 1000, adminHeaders(o.adminToken)));
    });

  p.command('decommission')
    .description("Leave the cluster: stream this node's ranges to their next owners, then stop taking part (resumable)")
    .addOption(urlOption())
    .option('--no-wait', 'Start it and return')
    .addOption(new Option('--timeout-s <s>', 'Give up waiting after this long (the decommission goes on in the node)').default('3600'))
    .addOption(adminToken())
    .action(async (o: { url: string; wait: boolean; timeoutS: string; adminToken?: string }) => {
      process.exit(await move(o.url, '/admin/decommission', {}, o.wait, Number(o.timeoutS) * 1000, adminHeaders(o.adminToken)));
    });

  p.command('removenode')
    .description('Remove a member that is gone for good: the other replicas rebuild its ranges (run it on any live member)')
    .argument('<id>', 'The id of the dead member (as `quorumkv status` shows it)')
    .addOption(urlOption())
    .option('--force', 'Even if the member is not marked down (only when you know it is gone: a live one would serve stale data)')
    .option('--no-wait', 'Start it and return')
    .addOption(new Option('--timeout-s <s>', 'Give up waiting after this long (the removal goes on in the node)').default('3600'))
    .addOption(adminToken())
    .action(async (id: string, o: { url: string; force?: boolean; wait: boolean; timeoutS: string; adminToken?: string }) => {
      const body = { id, force: o.force === true };
      process.exit(await move(o.url, '/admin/removenode', body, o.wait, Number(o.timeoutS) * 1000, adminHeaders(o.adminToken)));
    });

  p.command('prestop')
    .description(
      "Kubernetes preStop: decommission when a scale-down removes this pod (its ordinal >= the StatefulSet's replicas), else drain",
    )
    .addOption(urlOption())
    .addOption(
      new Option('--wait-ms <ms>', 'Drain: how long to wait after readiness fails, for endpoints to be updated')
        .env('QUORUMKV_PRESTOP_WAIT_MS')
        .default(String(TUNING.drainWaitMs)),
    )
    .addOption(new Option('--timeout-s <s>', 'Decommission: give up waiting after this long').default('3600'))
    .addOption(adminToken())
    .action(async (o: { url: string; waitMs: string; timeoutS: string; adminToken?: string }) => {
      process.exit(await prestop(o.url, Number(o.waitMs), Number(o.timeoutS) * 1000, adminHeaders(o.adminToken)));
    });

  p.command('status')
    .description('Show the cluster as one node sees it: members, their state, phi and heartbeats')
    .addOption(urlOption())
    .option('--json', 'Print the raw JSON of /cluster')
    .option('--watch', "Then follow this node's join, decommission or removal until it is done")
    .addOption(new Option('--timeout-s <s>', 'With --watch: give up following after this long').default('3600'))
    .addOption(adminToken())
    .action(async (o: { url: string; json?: boolean; watch?: boolean; timeoutS: string; adminToken?: string }) => {
      const headers = adminHeaders(o.adminToken);
      const c = await fetchJson(o.url, '/cluster');
      if (o.json) return void process.stdout.write(`${JSON.stringify(c, null, 2)}\n`);
      const d = c.discovery;
      process.stdout.write(
        `node ${c.id} (${c.status}), ring ${c.ring_checksum}${c.ring_stable ? '' : ' (members joining or leaving)'}; ` +
          `discovery ${d.provider}: ${d.complete ? 'complete' : 'searching'}, ` +
          `${d.known_members} known${d.expected_members ? ` of ${d.expected_members} expected` : ''}\n`,
      );
      // this node's own move is an admin route: without the admin token, the rest is still shown
      const mv = await axios
        .get(`${o.url.replace(/\/+$/, '')}/admin/move`, { timeout: 10_000, headers, validateStatus: () => true })
        .catch((err: Error) => ({ status: 0, data: { error: { message: err.message } } }));
      const own = mv.status === 200 ? (mv.data as MoveStatus).move : null;
      if (mv.status !== 200) process.stdout.write(`(its own move not shown: ${errorText(mv.data)})\n`);
      else if (own) {
        process.stdout.write(`${moveLine(mv.data as MoveStatus)}\n`);
        if (own.phase === 'stream') {
          // rate and time left since the move started, by the node's own count of its time
          const now = Date.now();
          const rate = rateSince(own.elapsed_ms, now);
          rate.add({ atMs: now, fraction: own.ranges_total > 0 ? own.ranges_done / own.ranges_total : 0, count: own.records_streamed });
          process.stdout.write(`${renderProgress(moveView(own, rate), process.stdout.isTTY === true)}\n`);
        }
      }
      process.stdout.write('\n');
      const rows = (c.members as ClusterMember[]).map((m) => [
        m.id,
        m.address,
        m.down_reason === undefined ? m.state : `${m.state} (${DOWN_REASONS[m.down_reason] ?? m.down_reason})`,
        m.progress === undefined ? m.status : `${m.status} ${percent(m.progress)}`,
        m.phi.toFixed(2),
        String(m.heartbeat),
        ago(m.last_heartbeat_ms_ago),
        String(m.generation),
      ]);
      process.stdout.write(`${table(['ID', 'ADDRESS', 'STATE', 'STATUS', 'PHI', 'HEARTBEAT', 'LAST HEARD', 'GENERATION'], rows)}\n`);
      if (o.watch && own && own.phase !== 'done' && own.phase !== 'failed') {
        process.stdout.write('\n');
        process.exit(await followMove(o.url.replace(/\/+$/, ''), moveName(own), headers, Number(o.timeoutS) * 1000, own.phase));
      }
    });

  p.command('ring')
    .description("Show the ring: each member's share of the token space, as primary and as a replica")
    .addOption(urlOption())
    .option('--json', 'Print the raw JSON of /ring')
    .action(async (o: { url: string; json?: boolean }) => {
      const r = await fetchJson(o.url, '/ring');
      if (o.json) return void process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      process.stdout.write(
        `ring ${r.checksum}: ${r.members.length} members x ${r.vnodes} vnodes, replication factor ${r.replication_factor}\n\n`,
      );
      const rows = (r.members as RingMember[]).map((m) => [
        m.id,
        m.address ?? '?',
        m.state,
        String(m.vnodes),
        percent(m.primary_share),
        percent(m.replica_share),
      ]);
      process.stdout.write(`${table(['ID', 'ADDRESS', 'STATE', 'VNODES', 'PRIMARY', 'REPLICA'], rows)}\n`);
    });

  // A command given no node (no --url, no QUORUMKV_URL) talks to the default address; when nothing
  // answers there, it looks for the local cluster of `npm start` and says which node it uses. The
  // pod-local commands (health, drain, prestop) never do: they are about the node next to them.
  p.hook('preAction', async (_program, action) => {
    if (!action.options.some((o) => o.long === '--url') || POD_LOCAL.has(action.name())) return;
    if (action.getOptionValueSource('url') !== 'default') return;
    const { localClusterFile, localFallback } = await import('./local-cluster-file');
    const found = await localFallback(DEFAULT_URL, localClusterFile());
    if (found === undefined) return;
    action.setOptionValue('url', found.url);
    const which = found.id ? `${found.id} of the local cluster (npm start)` : 'a local cluster node';
    process.stderr.write(
      `quorumkv: nothing answers at ${DEFAULT_URL}; using ${which} at ${found.url} (set --url or QUORUMKV_URL to choose)\n`,
    );
  });

  return p;
}

/** Commands about the node beside them (a pod's probes and preStop): no fallback to another node. */
const POD_LOCAL = new Set(['health', 'drain', 'prestop']);

/** The STATE column of `status` for a member that is down, by /cluster's down_reason. */
const DOWN_REASONS: Record<string, string> = {
  stopped: 'stopped cleanly',
  removed: 'left the cluster',
  convicted: 'not heard from',
};

interface ClusterMember {
  id: string;
  address: string;
  state: string;
  down_reason?: string;
  status: string;
  progress?: number;
  phi: number;
  heartbeat: number;
  generation: number;
  last_heartbeat_ms_ago: number | null;
}
interface RingMember {
  id: string;
  address: string | null;
  state: string;
  vnodes: number;
  primary_share: number;
  replica_share: number;
}

const ADMIN_TOKEN_ENV = 'QUORUMKV_ADMIN_TOKEN';
const TOKEN_ENV = 'QUORUMKV_TOKEN';
/** The node's --tls-ca variable: in a pod the CLI finds the cluster's CA where the node does. */
const CA_ENV = 'QUORUMKV_TLS_CA';

/**
 * --token and --ca-cert for every request of a client command: the token as the default
 * Authorization header (an admin command's --admin-token, when given, replaces it), the CA as
 * the only one an https:// node's certificate may chain to. A bad token or an unreadable CA
 * stops the command (exit 2); the token is never echoed.
 */
function clientDefaults(o: { token?: string; caCert?: string }): void {
  if (o.token !== undefined) {
    if (!/^[A-Za-z0-9\-._~+/]+=*$/.test(o.token)) {
      process.stderr.write(
        `quorumkv: --token (${TOKEN_ENV}): not a bearer token (letters, digits and - . _ ~ + /, then = padding); not shown here\n`,
      );
      process.exit(2);
    }
    axios.defaults.headers.common.Authorization = `Bearer ${o.token}`;
  }
  if (o.caCert !== undefined) {
    let ca: Buffer;
    try {
      ca = readFileSync(o.caCert);
    } catch (err) {
      process.stderr.write(`quorumkv: --ca-cert (${CA_ENV}): cannot read ${o.caCert}: ${(err as NodeJS.ErrnoException).code ?? err}\n`);
      process.exit(2);
    }
    axios.defaults.httpsAgent = new https.Agent({ ca });
  }
}

/**
 * The Authorization header of the admin routes, from --admin-token or $QUORUMKV_ADMIN_TOKEN (the
 * node's own list syntax: the first token is sent). None when neither is set: the node decides
 * (it may trust loopback). A bad list stops the command (exit 2) without echoing it.
 */
function adminHeaders(raw: string | undefined): Record<string, string> {
  if (raw === undefined) return {};
  try {
    return { authorization: `Bearer ${parseTokenList(raw)[0]}` };
  } catch (err) {
    process.stderr.write(`quorumkv: --admin-token (${ADMIN_TOKEN_ENV}): ${(err as Error).message}\n`);
    process.exit(2);
  }
}

/** The message of a JSON error reply, else the reply itself. */
function errorText(data: unknown): string {
  const message = (data as { error?: { message?: unknown } } | undefined)?.error?.message;
  return typeof message === 'string' ? message : JSON.stringify(data);
}

// biome-ignore lint/suspicious/noExplicitAny: the node's JSON, printed as it comes
async function fetchJson(url: string, path: string): Promise<any> {
  try {
    const res = await axios.get(`${url.replace(/\/+$/, '')}${path}`, { timeout: 10_000 });
    return res.data;
  } catch (err) {
    process.stderr.write(`quorumkv: cannot read ${path} from ${url}: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

interface MoveStatus {
  status: string;
  move: {
    kind: string | null;
    target: string | null;
    phase: string | null;
    replacing: boolean;
    ranges_total: number;
    ranges_done: number;
    records_streamed: number;
    bytes_streamed: number;
    waiting_for: string | null;
    error: string | null;
    elapsed_ms?: number | null;
  } | null;
}

function moveLine(s: MoveStatus): string {
  const m = s.move;
  if (!m) return `status ${s.status}`;
  const what = moveName(m);
  return (
    `${what}: ${m.phase}, ranges ${m.ranges_done}/${m.ranges_total}, ${m.records_streamed} records (${m.bytes_streamed} bytes) streamed` +
    (m.waiting_for ? `; waiting for ${m.waiting_for}` : '') +
    (m.error ? `; error: ${m.error}` : '')
  );
}

/**
 * Starts a decommission or removenode on the node and follows /admin/move until it is done, has
 * failed, or the deadline passes. The move itself lives in the node: losing this command (or the
 * connection) does not stop it, and running the command again follows the same move.
 */
async function move(
  url: string,
  path: string,
  body: object,
  wait: boolean,
  timeoutMs: number,
  headers: Record<string, string>,
): Promise<number> {
  const base = url.replace(/\/+$/, '');
  const name = path.slice('/admin/'.length);
  try {
    const started = await axios.post(`${base}${path}`, body, { timeout: 10_000, headers, validateStatus: () => true });
    if (started.status !== 202) {
      process.stderr.write(`quorumkv ${name}: ${errorText(started.data)}\n`);
      return 1;
    }
    process.stdout.write(`${name} ${started.data.started ? 'started' : 'already under way'} on ${base}\n`);
  } catch (err) {
    process.stderr.write(`quorumkv ${name}: ${base}: ${(err as Error).message}\n`);
    return 1;
  }
  if (!wait) return 0;
  return followMove(base, name, headers, timeoutMs);
}

/** What a move is, in words: `decommission`, `removenode n2`, `join`. */
function moveName(m: NonNullable<MoveStatus['move']>): string {
  return m.kind === 'leave'
    ? 'decommission'
    : m.kind === 'remove'
      ? `removenode ${m.target}`
      : m.replacing
        ? 'join (replacing its volume)'
        : 'join';
}

/** The progress of a move's streaming: ranges done of all, records and bytes streamed. */
function moveView(m: NonNullable<MoveStatus['move']>, rate: RateWindow): ProgressView {
  const perSecond = rate.perSecond();
  const left = rate.leftMs();
  return {
    label: `${moveName(m)}: ${m.phase}`,
    done: m.ranges_done,
    total: m.ranges_total,
    unit: 'ranges',
    counts: [`${count(m.records_streamed)} records (${megabytes(m.bytes_streamed)}) streamed`],
    ...(perSecond === undefined ? {} : { rate: { perSecond, of: 'records' } }),
    ...(left === undefined ? {} : { leftMs: left }),
    finished: m.phase === 'done',
  };
}

function megabytes(bytes: number): string {
  return bytes < 1e6 ? `${count(bytes / 1e3)} kB` : `${(bytes / 1e6).toFixed(1)} MB`;
}

/** A rate window that starts with the operation itself (elapsed_ms ago, nothing done), by the CLI's clock. */
function rateSince(elapsedMs: number | null | undefined, nowMs: number): RateWindow {
  const w = new RateWindow();
  if (typeof elapsedMs === 'number') w.add({ atMs: nowMs - elapsedMs, fraction: 0, count: 0 });
  return w;
}

/** Follows this node's move on /admin/move until it is done, has failed, or the deadline passes. */
async function followMove(
  base: string,
  name: string,
  headers: Record<string, string>,
  timeoutMs: number,
  /** The phase the caller has already shown. */
  shownPhase?: string | null,
): Promise<number> {
  const printer = new ProgressPrinter(process.stdout);
  const deadline = Date.now() + timeoutMs;
  let rate: RateWindow | undefined;
  let lastPhase = shownPhase;
  let lastWait: string | null | undefined;
  for (;;) {
    let s: MoveStatus;
    try {
      s = (await axios.get(`${base}/admin/move`, { timeout: 10_000, headers })).data as MoveStatus;
    } catch (err) {
      if (Date.now() > deadline) break;
      printer.line(`(${base} did not answer: ${(err as Error).message}; trying again)`);
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    const m = s.move;
    const now = Date.now();
    if (m) {
      rate ??= rateSince(m.elapsed_ms, now);
      if (m.phase === 'stream')
        rate.add({ atMs: now, fraction: m.ranges_total > 0 ? m.ranges_done / m.ranges_total : 0, count: m.records_streamed });
      if (m.phase !== lastPhase && m.phase !== 'stream' && m.phase !== 'done') printer.line(moveLine(s));
      if (m.waiting_for !== lastWait && m.waiting_for) printer.line(`${moveName(m)}: waiting for ${m.waiting_for}`);
      lastPhase = m.phase;
      lastWait = m.waiting_for;
      if (m.phase === 'stream') printer.update(moveView(m, rate), now, `${m.ranges_done}`);
    }
    if (m?.phase === 'done') {
      printer.finish(moveView(m, rate as RateWindow));
      process.stdout.write(`${name} finished\n`);
      return 0;
    }
    if (m?.phase === 'failed') {
      printer.line(moveLine(s));
      process.stderr.write(`quorumkv ${name}: failed: ${m.error}\n`);
      return 1;
    }
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  printer.line('');
  process.stderr.write(`quorumkv ${name}: still under way at the deadline (it goes on in the node; run the command again to follow it)\n`);
  return 1;
}

/**
 * The pod's preStop: a pod that a scale-down removes (ordinal >= the StatefulSet's replicas, read
 * from the Kubernetes API with the pod's ServiceAccount) hands its data over and leaves; any other
 * stopping pod (rolling restart, eviction, deletion) only drains, and comes back on its volume.
 */
async function prestop(url: string, waitMs: number, timeoutMs: number, headers: Record<string, string>): Promise<number> {
  const { preStopAction, statefulSetReplicas } = await import('./kube');
  const podName = process.env.POD_NAME;
  let replicas: number | undefined;
  let why = '';
  if (!podName) why = 'POD_NAME is not set';
  else {
    const r = await statefulSetReplicas({
      podName,
      ...(process.env.POD_NAMESPACE ? { namespace: process.env.POD_NAMESPACE } : {}),
      ...(process.env.QUORUMKV_SERVICEACCOUNT_DIR ? { serviceAccountDir: process.env.QUORUMKV_SERVICEACCOUNT_DIR } : {}),
      timeoutMs: 5000,
    });
    if ('replicas' in r) replicas = r.replicas;
    else why = r.error;
  }
  // A member that has already left (its decommission finished earlier, or it was removed) has
  // nothing to hand off and serves nothing: exiting 1 here would only show as a FailedPreStopHook.
  const status = await axios
    .get(`${url.replace(/\/+$/, '')}/admin/move`, { timeout: 5000, headers, validateStatus: () => true })
    .then((r) => (r.status === 200 ? (r.data as { status?: unknown }).status : undefined))
    .catch(() => undefined);
  if (status === 'removed') {
    process.stdout.write('prestop: nothing to do: this member has already left the cluster (status removed)\n');
    return 0;
  }
  const decision = preStopAction(podName ?? '', replicas);
  process.stdout.write(`prestop: ${decision.action}: ${decision.reason}${why ? ` (${why})` : ''}\n`);
  if (decision.action === 'decommission') return move(url, '/admin/decommission', {}, true, timeoutMs, headers);
  return drain(url, waitMs, headers);
}

/** Starts a repair on the node and shows its progress until it finishes (or the deadline). */
async function repair(
  url: string,
  range: string | undefined,
  wait: boolean,
  timeoutMs: number,
  headers: Record<string, string>,
): Promise<number> {
  const base = url.replace(/\/+$/, '');
  type Status = {
    running: boolean;
    elapsed_ms: number | null;
    ranges_total: number;
    ranges_done: number;
    ranges_differing: number;
    keys_compared: number;
    keys_repaired: number;
    bytes_sent: number;
    bytes_received: number;
    errors: number;
    hints_pending: number;
  };
  const view = (s: Status, rate: RateWindow): ProgressView => {
    const perSecond = rate.perSecond();
    const left = rate.leftMs();
    return {
      label: 'repair',
      done: s.ranges_done,
      total: s.ranges_total,
      unit: 'ranges',
      counts: [
        `${count(s.ranges_differing)} differed`,
        `${count(s.keys_compared)} keys compared`,
        `${count(s.keys_repaired)} repaired`,
        `${megabytes(s.bytes_sent)} sent`,
        `${megabytes(s.bytes_received)} received`,
        ...(s.errors > 0 ? [`${s.errors} errors`] : []),
        ...(s.hints_pending > 0 ? [`${count(s.hints_pending)} hints pending`] : []),
      ],
      ...(perSecond === undefined ? {} : { rate: { perSecond, of: 'keys' } }),
      ...(left === undefined ? {} : { leftMs: left }),
      finished: !s.running,
    };
  };
  try {
    const started = await axios.post(`${base}/admin/repair`, range ? { range } : {}, {
      timeout: 10_000,
      headers,
      validateStatus: () => true,
    });
    if (started.status !== 202) {
      process.stderr.write(`quorumkv repair: ${errorText(started.data)}\n`);
      return 1;
    }
    process.stdout.write(`repair ${started.data.started ? 'started' : 'already running'} on ${base}\n`);
    if (!wait) return 0;
    const printer = new ProgressPrinter(process.stdout);
    const deadline = Date.now() + timeoutMs;
    let rate: RateWindow | undefined;
    for (;;) {
      await new Promise((r) => setTimeout(r, 500));
      const s = (await axios.get(`${base}/admin/repair`, { timeout: 10_000, headers })).data as Status;
      const now = Date.now();
      rate ??= rateSince(s.elapsed_ms, now);
      rate.add({ atMs: now, fraction: s.ranges_total > 0 ? s.ranges_done / s.ranges_total : 0, count: s.keys_compared });
      if (!s.running) {
        printer.finish(view(s, rate));
        process.stdout.write(s.errors > 0 ? `repair finished with ${s.errors} errors (see the node's log)\n` : 'repair finished\n');
        return s.errors > 0 ? 1 : 0;
      }
      printer.update(view(s, rate), now, `${s.ranges_done}/${s.keys_repaired}/${s.errors}`);
      if (Date.now() > deadline) {
        printer.line('');
        process.stderr.write('quorumkv repair: still running at the deadline (it goes on in the node)\n');
        return 1;
      }
    }
  } catch (err) {
    process.stderr.write(`\nquorumkv repair: ${base}: ${(err as Error).message}\n`);
    return 1;
  }
}

/** preStop: readiness fails at once (the reply confirms it), then wait for endpoints to catch up. */
async function drain(url: string, waitMs: number, headers: Record<string, string>): Promise<number> {
  const base = url.replace(/\/+$/, '');
  const started = Date.now();
  try {
    const res = await axios.post(`${base}/admin/drain`, undefined, { timeout: 2000, headers, validateStatus: () => true });
    if (res.status !== 200) {
      process.stderr.write(`quorumkv drain: ${base}: ${res.status} ${errorText(res.data)}\n`);
      return 1;
    }
  } catch (err) {
    process.stderr.write(`quorumkv drain: ${base}: ${(err as Error).message}\n`);
    return 1;
  }
  process.stdout.write(`draining ${base}: readiness fails from now on; waiting ${waitMs} ms for endpoints to drop this pod\n`);
  const remaining = waitMs - (Date.now() - started);
  if (remaining > 0) await new Promise((r) => setTimeout(r, remaining));
  return 0;
}

/** Prints the reply's JSON; exits 0 on 2xx, 1 otherwise (like `curl --fail`, but showing the body). */
async function call(method: string, url: string, key: string, params: Record<string, string | undefined>, body?: unknown): Promise<void> {
  const query = Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined));
  let res: AxiosResponse;
  try {
    res = await axios.request({
      method,
      url: `${url.replace(/\/+$/, '')}/kv/${encodeURIComponent(key)}`,
      params: query,
      data: body,
      timeout: 30_000,
      validateStatus: () => true,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
    });
  } catch (err) {
    process.stderr.write(`quorumkv: cannot reach ${url}: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const out = `${JSON.stringify(res.data, null, 2)}\n`;
  if (res.status >= 200 && res.status < 300) {
    process.stdout.write(out);
    return;
  }
  process.stderr.write(out);
  process.exit(1);
}

program()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    process.stderr.write(`quorumkv: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
