#!/usr/bin/env node
// `quorumkv-probe startup|readiness|liveness`: the exec probe kubelet runs in every pod, every few
// seconds for the pod's whole life. `quorumkv health <probe>` runs the same code (healthCheck).
//
// Cost is the point of this file. A probe is a fresh Node process, so what it costs is what it
// loads: this imports node:net and core/health (pure, no imports) and nothing else, so a run costs
// about what `node -e 0` costs, where the full CLI loads commander, axios (70-odd modules) and the
// config table first. `npm run bench:probe` measures them side by side (docs/BENCHMARKS.md), and
// test/integration/probe.test.ts checks what this loads. Keep it so: no dependency, no import of
// anything that imports one.
//
// Deadline: one timer covers connecting, the request and the whole reply (--timeout-ms, 2 s by
// default), so a hung node (SIGSTOP: the kernel still accepts the connection, nothing answers) or
// one that trickles its reply fails the probe inside kubelet's timeoutSeconds (3 s) with a reason,
// rather than kubelet killing the probe without one.

import net from 'node:net';
import { liveness, naiveReadiness, readiness, readinessInputOf, startup, startupInputOf, type Verdict } from '../core/health';

export const DEFAULT_URL = 'http://127.0.0.1:8080';
/** Under the manifests' probe timeoutSeconds (3 s), with room for Node's own start (~0.1 s). */
export const DEFAULT_PROBE_TIMEOUT_MS = 2_000;
/** A health reply is a few hundred bytes; anything much larger is not one. */
const MAX_REPLY_BYTES = 64 * 1024;

const PATHS: Record<string, string> = { liveness: '/health', readiness: '/health/ready', startup: '/health/startup' };
const RULES = ['two-phase', 'naive'];

export interface ProbeOptions {
  /** The node, e.g. http://127.0.0.1:8080 (a trailing slash is ignored). */
  url: string;
  timeoutMs: number;
  /** Readiness rule: two-phase, or naive (the seed design's deadlock, for demonstrations). */
  rule: string;
  /**
   * Extra request headers. The health routes need none today; if they come to require the admin
   * token, this is where `Authorization: Bearer <first token of QUORUMKV_ADMIN_TOKEN>` goes
   * (see probeHeaders).
   */
  headers?: Record<string, string>;
  /** The CA an https:// node's certificate must chain to (the cluster's: QUORUMKV_TLS_CA); else the system's. */
  ca?: Buffer;
}

export interface ProbeResult {
  /** 0 pass, 1 fail, 2 bad usage (kubelet counts every non-zero as a failure). */
  code: number;
  /** One line for kubelet's event log: why. */
  line: string;
}

/** One probe: asks the node, applies the rule from core to what it says, one line of why. */
export async function healthCheck(probe: string, o: ProbeOptions): Promise<ProbeResult> {
  const path = PATHS[probe];
  if (!path) return { code: 2, line: `unknown probe ${JSON.stringify(probe)}: liveness, readiness or startup` };
  if (!Number.isFinite(o.timeoutMs) || o.timeoutMs <= 0) return { code: 2, line: '--timeout-ms must be a positive number' };
  const target = `${o.url.replace(/\/+$/, '')}${path}`;
  let body: Record<string, unknown>;
  try {
    const res = await getJson(target, o.timeoutMs, o.headers ?? {}, o.ca);
    if (typeof res.body !== 'object' || res.body === null)
      return { code: 1, line: `${probe}: failed: ${o.url}${path} answered ${res.status} without JSON` };
    body = res.body as Record<string, unknown>;
  } catch (err) {
    const e = err as { code?: string; message?: string };
    const why = e.code === 'ETIMEDOUT' ? `no answer within ${o.timeoutMs} ms (hung or overloaded)` : e.message || e.code || String(err);
    return { code: 1, line: `${probe}: failed: ${o.url}${path}: ${why}` };
  }
  const verdict = judge(probe, body, o.rule);
  return { code: verdict.ok ? 0 : 1, line: `${probe}: ${verdict.reason}` };
}

/** The rule from core applied to the node's reply (its fields in snake_case, as the routes send them). */
function judge(probe: string, body: Record<string, unknown>, rule: string): Verdict {
  if (probe === 'liveness') return liveness({ eventLoopDelayMs: Number(body.event_loop_delay_ms) });
  if (probe === 'startup') return startup(startupInputOf(body));
  const { input, replicationFactor } = readinessInputOf(body);
  return rule === 'naive' ? naiveReadiness(input, replicationFactor) : readiness(input);
}

/**
 * GET `target`: the status and the reply parsed as JSON (the raw text when it is not JSON). One
 * deadline for everything; a timeout rejects with code ETIMEDOUT. No keep-alive, no proxy, no
 * redirects: the probe talks to its own pod. Plain http is one HTTP/1.0 request on a bare socket
 * (node:net: the reply ends when the node closes the connection, so there is no chunked body or
 * keep-alive to parse; node:http costs ~9 ms more to load, a probe's whole margin); https goes
 * through node:https, loaded only then.
 */
async function getJson(
  target: string,
  timeoutMs: number,
  headers: Record<string, string>,
  ca: Buffer | undefined,
): Promise<{ status: number; body: unknown }> {
  const url = new URL(target);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`unsupported protocol ${url.protocol} (http or https)`);
  const https = url.protocol === 'https:' ? await import('node:https') : undefined;
  return new Promise((resolve, reject) => {
    let settled = false;
    let teardown = () => {};
    /** The first outcome wins; the connection is torn down either way (no keep-alive to keep). */
    const settle = (err: Error | undefined, value?: { status: number; body: unknown }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(value as { status: number; body: unknown });
      teardown();
    };
    const timer = setTimeout(() => settle(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REPLY_BYTES) settle(new Error(`reply larger than ${MAX_REPLY_BYTES} bytes: not a health reply`));
      else chunks.push(chunk);
    };
    const parsed = (status: number, text: string) => {
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {}
      return { status, body };
    };
    if (https) {
      const req = https.get(url, { agent: false, headers: { accept: 'application/json', ...headers }, ...(ca ? { ca } : {}) }, (res) => {
        res.on('data', onData);
        res.on('end', () => settle(undefined, parsed(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'))));
        res.on('error', (err) => settle(err));
      });
      req.on('error', (err) => settle(err));
      teardown = () => req.destroy();
      return;
    }
    const socket = net.connect({ host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 80) });
    teardown = () => socket.destroy();
    const lines = [`GET ${url.pathname}${url.search} HTTP/1.0`, `Host: ${url.host}`, 'Accept: application/json'];
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    socket.on('connect', () => socket.write(`${lines.join('\r\n')}\r\n\r\n`));
    socket.on('data', onData);
    socket.on('error', (err) => settle(err));
    socket.on('end', () => {
      const reply = Buffer.concat(chunks).toString('utf8');
      const head = reply.indexOf('\r\n\r\n');
      const status = /^HTTP\/1\.[01] ([0-9]{3}) /.exec(reply);
      if (head < 0 || !status) settle(new Error('the reply is not HTTP'));
      else settle(undefined, parsed(Number(status[1]), reply.slice(head + 4)));
    });
  });
}

/**
 * Headers every probe sends: none. The health routes stay open when client authentication is on
 * (core/client-access.ts says why), so a probe needs no token and a wrong token file cannot fail
 * every probe.
 */
export function probeHeaders(_env: NodeJS.ProcessEnv): Record<string, string> {
  return {};
}

/**
 * The CA for a probe of an https:// node: `--ca-cert`, else QUORUMKV_TLS_CA (the node's own
 * --tls-ca, set in the pod). Unreadable: no CA given, and the probe fails on the certificate,
 * saying so. node:fs is loaded by Node's own start: this costs a probe nothing more.
 */
export function probeTls(env: NodeJS.ProcessEnv, given?: string): { ca?: Buffer } {
  const file = given ?? env.QUORUMKV_TLS_CA;
  if (file === undefined || file === '') return {};
  try {
    return { ca: require('node:fs').readFileSync(file) as Buffer };
  } catch {
    return {};
  }
}

const USAGE = `Usage: quorumkv-probe <liveness|readiness|startup> [--url <url>] [--timeout-ms <ms>] [--rule two-phase|naive]

Probe the local node as kubelet does: prints why, exits 0 (pass) or 1 (fail); 2 on bad usage.
Same as \`quorumkv health <probe>\`, without loading the rest of the CLI.

  --url <url>         A node of the cluster [QUORUMKV_URL] (default: ${DEFAULT_URL})
  --timeout-ms <ms>   Give up (and fail) after this long; keep it under the probe timeout (default: ${DEFAULT_PROBE_TIMEOUT_MS})
  --rule <rule>       Readiness rule: two-phase, or naive (the seed design's deadlock, for demonstrations) (default: two-phase)
`;

export type ProbeArgs = { help: true } | { error: string } | { probe: string; options: ProbeOptions };

/**
 * The arguments of `quorumkv-probe`, as `quorumkv health` takes them: `--flag value` or
 * `--flag=value` anywhere, a flag wins over QUORUMKV_URL, that over the default.
 */
export function parseProbeArgs(argv: readonly string[], env: NodeJS.ProcessEnv): ProbeArgs {
  const given: Record<string, string> = {};
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '-h' || a === '--help') return { help: true };
    if (!a.startsWith('--')) {
      words.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
    if (!['url', 'timeout-ms', 'rule'].includes(name)) return { error: `unknown option '${a}'` };
    const value = eq < 0 ? argv[++i] : a.slice(eq + 1);
    if (value === undefined) return { error: `option '--${name}' needs a value` };
    given[name] = value;
  }
  if (words.length !== 1)
    return { error: words.length === 0 ? 'missing the probe: liveness, readiness or startup' : `one probe only, got ${words.join(' ')}` };
  const rule = given.rule ?? 'two-phase';
  if (!RULES.includes(rule)) return { error: `--rule ${JSON.stringify(rule)}: ${RULES.join(' or ')}` };
  return {
    probe: words[0] as string,
    options: {
      url: given.url ?? env.QUORUMKV_URL ?? DEFAULT_URL,
      timeoutMs: given['timeout-ms'] === undefined ? DEFAULT_PROBE_TIMEOUT_MS : Number(given['timeout-ms']),
      rule,
      headers: probeHeaders(env),
      ...probeTls(env),
    },
  };
}

async function main(): Promise<void> {
  const args = parseProbeArgs(process.argv.slice(2), process.env);
  if ('help' in args) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  if ('error' in args) {
    process.stderr.write(`quorumkv-probe: ${args.error}\n\n${USAGE}`);
    process.exit(2);
  }
  const { code, line } = await healthCheck(args.probe, args.options);
  process.stdout.write(`${line}\n`);
  process.exit(code);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`quorumkv-probe: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
