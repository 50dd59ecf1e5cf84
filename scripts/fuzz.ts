// `npm run fuzz`: a seeded, replayable hostile-input campaign against a fresh local 3-node cluster
// (real processes on 127.40.0.1-3, API port 7000, internode port 8000; data in a temporary
// directory, removed afterwards; nothing is written to the repository).
//
//   npm run fuzz -- [--seed 1] [--requests 10000] [--frames 10000] [--json] [--strict-parser]
//                   [--concurrency 16] [--net 127.40.0] [--max-seconds 900]
//   npm run fuzz -- --seed S --replay-request I      one HTTP case alone: its bytes, the replies, the verdict
//   npm run fuzz -- --seed S --replay-connection J   one internode case alone
//
// Campaign A sends --requests hostile HTTP requests (scripts/lib/fuzz-http.ts), spread over the
// nodes. Rules: no status >= 500 except a 503 with a JSON error; every 4xx with a JSON error (Node's
// own bodiless parser replies are counted apart, and fail the run only with --strict-parser); a
// whole request gets a reply; a refused write stores nothing (read from every replica over the
// internode protocol, and bounded by the nodes' key counts); an acknowledged write reads back as
// acknowledged. Campaign B sends at least --frames hostile frames to the internode ports
// (scripts/lib/fuzz-internode.ts), with the rules stated there. Afterwards: no node exited or
// restarted, every node sees all three members alive, and 30 writes and reads at consistency=all
// through every node succeed. Every loop is bounded in count and in time. Exit 1 on any violation.

import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { INTERNODE_PORT_DISTANCE } from '../src/config';
import { keyProblem } from '../src/core/limits';
import { argReader } from './lib/args';
import { HTTP_CATEGORIES, type HttpCase, httpCase, judgeReplies } from './lib/fuzz-http';
import { FRAME_CATEGORIES, type PeerCase, peerCase, runPeerCase } from './lib/fuzz-internode';
import { FAST_ARGS, LocalCluster, type LocalNode } from './lib/local-cluster';
import { type Exchange, exchange, parseReplies, printable, type Reply } from './lib/raw-http';
import { ReplicaReader } from './lib/replica-reader';

interface Args {
  seed: number;
  requests: number;
  frames: number;
  json: boolean;
  strictParser: boolean;
  concurrency: number;
  net: string;
  maxSeconds: number;
  replayRequest?: number;
  replayConnection?: number;
}

function parseArgs(argv: string[]): Args {
  const { get, num } = argReader(argv);
  const net = get('net') ?? '127.40.0';
  if (!/^127\.\d{1,3}\.\d{1,3}$/.test(net)) throw new Error(`--net must be a /24 of loopback such as 127.40.0, got ${JSON.stringify(net)}`);
  return {
    seed: num('seed', 1),
    requests: num('requests', 10_000),
    frames: num('frames', 10_000),
    json: argv.includes('--json'),
    strictParser: argv.includes('--strict-parser'),
    concurrency: Math.max(1, num('concurrency', 16)),
    net,
    maxSeconds: num('max-seconds', 900),
    ...(get('replay-request') !== undefined ? { replayRequest: num('replay-request', 0) } : {}),
    ...(get('replay-connection') !== undefined ? { replayConnection: num('replay-connection', 0) } : {}),
  };
}

const API_PORT = 7000;

/** An HTTP exchange ends by this time whatever the server does (its own request deadline is 1 s). */
const EXCHANGE_DEADLINE_MS = 5_000;
/** After a whole reply, how long to wait for another (pipelined requests, a connection kept alive). */
const IDLE_AFTER_REPLY_MS = 100;

interface Violation {
  campaign: 'http' | 'internode' | 'storage' | 'cluster';
  problem: string;
  index?: number;
  category?: string;
  what?: string;
  /** The request's bytes, printable. */
  request?: string;
  replay?: string;
}

type Counts = Record<string, number>;

function bump(counts: Counts, key: string, by = 1): void {
  counts[key] = (counts[key] ?? 0) + by;
}

/** Runs `fn(0..count-1)` with `concurrency` at once, starting none after `deadlineMs` (performance.now()); returns how many ran. */
async function pool(count: number, concurrency: number, deadlineMs: number, fn: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count && performance.now() < deadlineMs) await fn(next++);
    }),
  );
  return next;
}

// ---- campaign A: HTTP -------------------------------------------------------------------------------

/** A /kv write's fate, for the storage checks. */
interface WriteRecord {
  c: HttpCase;
  /** 'accepted' (2xx), 'refused' (4xx, or never sent whole), or 'uncertain' (503, no reply). */
  fate: 'accepted' | 'refused' | 'uncertain';
  status: number | undefined;
  /** The acknowledged value (the PUT reply's `value`), for the read-back. */
  value?: unknown;
}

interface HttpResults {
  sent: number;
  byCategory: Counts;
  statuses: Counts;
  parserAnswered: Counts;
  ends: Counts;
  writes: WriteRecord[];
  violations: Violation[];
  seconds: number;
}

async function sendCase(c: HttpCase, node: LocalNode): Promise<{ replies: Reply[]; ex: Exchange }> {
  const ex = await exchange(node.spec.host, node.spec.port, c.parts, {
    deadlineMs: EXCHANGE_DEADLINE_MS,
    hangUpAfterMs: c.hangUpAfterMs,
    idleAfterReplyMs: IDLE_AFTER_REPLY_MS,
    method: c.method,
  });
  return { replies: parseReplies(ex.received, c.method, ex.end === 'server-closed'), ex };
}

/** How an exchange ended, for the summary: who closed, and whether the node cut the request off. */
function endOf(c: HttpCase, ex: Exchange): string {
  if (!ex.sentAll && c.hangUpAfterMs === undefined) return `cut off while sending (${ex.error ?? 'closed'})`;
  return ex.error ? `${ex.end} (${ex.error})` : ex.end;
}

function fateOf(c: HttpCase, first: Reply | undefined): WriteRecord['fate'] {
  if (first === undefined) return c.unfinished ? 'refused' : 'uncertain';
  if (first.status >= 200 && first.status < 300) return 'accepted';
  if (first.status >= 400 && first.status < 500) return 'refused';
  return 'uncertain';
}

function acknowledgedValue(reply: Reply): unknown {
  try {
    return (JSON.parse(reply.body.toString('utf8')) as { value?: unknown }).value;
  } catch {
    return undefined;
  }
}

function httpViolation(args: Args, c: HttpCase, problem: string): Violation {
  return {
    campaign: 'http',
    problem,
    index: c.index,
    category: c.category,
    what: c.what,
    request: printable(Buffer.concat(c.parts.map((p) => p.bytes)), 600),
    replay: `npm run fuzz -- --seed ${args.seed} --replay-request ${c.index}`,
  };
}

async function httpCampaign(cluster: LocalCluster, args: Args, deadlineMs: number): Promise<HttpResults> {
  const start = performance.now();
  const apis = cluster.nodes.map((n) => n.address);
  const r: HttpResults = { sent: 0, byCategory: {}, statuses: {}, parserAnswered: {}, ends: {}, writes: [], violations: [], seconds: 0 };
  r.sent = await pool(args.requests, args.concurrency, deadlineMs, async (i) => {
    const c = httpCase(args.seed, i, apis);
    const { replies, ex } = await sendCase(c, cluster.nodes[c.node] as LocalNode);
    bump(r.byCategory, c.category);
    bump(r.ends, endOf(c, ex));
    if (replies.length === 0) bump(r.statuses, 'none');
    for (const reply of replies) bump(r.statuses, String(reply.status));
    const verdict = judgeReplies(c, replies, ex.sentAll, args.strictParser);
    for (const status of verdict.parserAnswered) bump(r.parserAnswered, status === 0 ? 'CONNECT closed without a reply' : String(status));
    for (const problem of verdict.violations) r.violations.push(httpViolation(args, c, problem));
    if (c.write) {
      const first = replies[0];
      const fate = fateOf(c, first);
      r.writes.push({ c, fate, status: first?.status, ...(fate === 'accepted' && first ? { value: acknowledgedValue(first) } : {}) });
    }
  });
  if (r.sent < args.requests) {
    r.violations.push({ campaign: 'http', problem: `stopped at --max-seconds after ${r.sent} of ${args.requests} requests` });
  }
  r.seconds = (performance.now() - start) / 1000;
  return r;
}

// ---- what the writes left behind ----------------------------------------------------------------------

interface StorageResults {
  accepted: number;
  refused: number;
  uncertain: number;
  /** Refused writes whose key was read from every replica (the others' keys do not decode). */
  refusedChecked: number;
  readBack: number;
  keysBefore: number[];
  keysAfter: number[];
  violations: Violation[];
}

async function keyCounts(cluster: LocalCluster): Promise<number[]> {
  return Promise.all(
    cluster.nodes.map(async (n) => {
      const text = await fetch(`${n.url}/metrics`, { signal: AbortSignal.timeout(5_000) }).then((res) => res.text());
      const m = /^quorumkv_keys (\d+)$/m.exec(text);
      if (!m) throw new Error(`no quorumkv_keys in /metrics of ${n.id}`);
      return Number(m[1]);
    }),
  );
}

/** The key counts once they stop changing (writes at consistency=one reach the last replica a little later), within 10 s. */
async function settledKeyCounts(cluster: LocalCluster): Promise<number[]> {
  const deadline = performance.now() + 10_000;
  let last = await keyCounts(cluster);
  for (;;) {
    await new Promise((r) => setTimeout(r, 300));
    const now = await keyCounts(cluster);
    if (now.join() === last.join() || performance.now() > deadline) return now;
    last = now;
  }
}

/**
 * A refused write stored nothing: its key is on no replica (read from each store over the
 * internode protocol, no quorum and no key check in between); and no node holds more keys than
 * the writes that were acknowledged or might have been. An acknowledged write reads back, at
 * consistency=all, as its reply said.
 */
async function checkStorage(cluster: LocalCluster, args: Args, http: HttpResults, keysBefore: number[]): Promise<StorageResults> {
  const of = (fate: WriteRecord['fate']) => http.writes.filter((w) => w.fate === fate);
  const accepted = of('accepted');
  // a key no write can store (over-long, say) is left to the key counts: nodes refuse even to read it
  const refused = of('refused').filter((w) => w.c.write?.key !== undefined && keyProblem(w.c.write.key) === undefined);
  const s: StorageResults = {
    accepted: accepted.length,
    refused: of('refused').length,
    uncertain: of('uncertain').length,
    refusedChecked: refused.length,
    readBack: 0,
    keysBefore,
    keysAfter: [],
    violations: [],
  };
  const transport = new ReplicaReader();
  try {
    await pool(refused.length, args.concurrency, Number.POSITIVE_INFINITY, async (i) => {
      const w = refused[i] as WriteRecord;
      const held = await holders(transport, cluster, w.c.write?.key as string);
      if (held.length > 0)
        s.violations.push(httpViolation(args, w.c, `refused (${w.status ?? 'no reply'}) but stored: ${held.join('; ')}`));
    });
  } finally {
    await transport.close();
  }
  await pool(accepted.length, args.concurrency, Number.POSITIVE_INFINITY, async (i) => {
    const problem = await readBackProblem(cluster, accepted[i] as WriteRecord);
    if (problem === undefined) s.readBack++;
    else if (problem !== 'skipped') s.violations.push(httpViolation(args, (accepted[i] as WriteRecord).c, problem));
  });
  s.keysAfter = await settledKeyCounts(cluster);
  const most = s.accepted + s.uncertain;
  const over = s.keysAfter.flatMap((n, i) =>
    n - (keysBefore[i] as number) > most ? [`${cluster.nodes[i]?.id} ${n - (keysBefore[i] as number)}`] : [],
  );
  if (over.length > 0) {
    s.violations.push({
      campaign: 'storage',
      problem: `more new keys than the ${s.accepted} acknowledged and ${s.uncertain} uncertain writes: ${over.join(', ')}`,
    });
  }
  return s;
}

interface ReadBack {
  status: number;
  body: { value?: unknown; error?: { deleted?: boolean } };
}

/** The nodes that hold `key` (a record or a tombstone), each with what it holds, or why it could not be read; empty when none. */
async function holders(reader: ReplicaReader, cluster: LocalCluster, key: string): Promise<string[]> {
  const found: string[] = [];
  for (const node of cluster.nodes) {
    const held = await reader.read(node.address, key).then(
      (record) => record,
      (err: Error) => `unreadable: ${err.message}`,
    );
    if (held !== null) found.push(`${node.id} holds ${JSON.stringify(held).slice(0, 200)}`);
  }
  return found;
}

/** Why an acknowledged write does not read back as acknowledged; undefined when it does; 'skipped' for a TTL write. */
async function readBackProblem(cluster: LocalCluster, w: WriteRecord): Promise<string | undefined> {
  const key = w.c.write?.key;
  if (key === undefined || w.c.write?.ttl) return 'skipped';
  const node = cluster.nodes[(w.c.node + 1) % cluster.nodes.length] as LocalNode;
  let res: ReadBack | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const reply = await fetch(`${node.url}/kv/${encodeURIComponent(key)}?consistency=all`, { signal: AbortSignal.timeout(5_000) });
      res = { status: reply.status, body: (await reply.json()) as ReadBack['body'] };
      if (res.status !== 503) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 200));
  }
  if (res === undefined) return `acknowledged, then unreadable from ${node.id}`;
  if (w.c.method === 'DELETE') {
    return res.status === 404 && res.body.error?.deleted === true ? undefined : `a deletion acknowledged, then read back as ${res.status}`;
  }
  const want = JSON.stringify(w.value);
  const got = JSON.stringify(res.body.value);
  if (res.status === 200 && got === want) return undefined;
  return `acknowledged ${want?.slice(0, 100)}, read back from ${node.id} as ${res.status} ${got?.slice(0, 100)}`;
}

// ---- campaign B: internode --------------------------------------------------------------------------

interface InternodeResults {
  connections: number;
  frames: number;
  byCategory: Counts;
  outcomes: Counts;
  violations: Violation[];
  seconds: number;
}

/** The cases that together send at least `frames` hostile frames. */
function peerCases(args: Args, nodeCount: number): PeerCase[] {
  const cases: PeerCase[] = [];
  for (let sent = 0, j = 0; sent < args.frames; j++) {
    const c = peerCase(args.seed, j, nodeCount);
    cases.push(c);
    sent += c.frames;
  }
  return cases;
}

async function internodeCampaign(cluster: LocalCluster, args: Args, deadlineMs: number): Promise<InternodeResults> {
  const start = performance.now();
  const cases = peerCases(args, cluster.nodes.length);
  const r: InternodeResults = { connections: 0, frames: 0, byCategory: {}, outcomes: {}, violations: [], seconds: 0 };
  r.connections = await pool(cases.length, args.concurrency, deadlineMs, async (j) => {
    const c = cases[j] as PeerCase;
    const node = cluster.nodes[c.node] as LocalNode;
    const outcome = await runPeerCase(c, node.spec.host, node.spec.port + INTERNODE_PORT_DISTANCE);
    r.frames += c.frames;
    bump(r.byCategory, c.category, c.frames);
    for (const note of outcome.notes) bump(r.outcomes, note);
    for (const problem of outcome.violations) {
      r.violations.push({
        campaign: 'internode',
        problem,
        index: c.index,
        category: c.category,
        what: c.what,
        replay: `npm run fuzz -- --seed ${args.seed} --replay-connection ${c.index}`,
      });
    }
  });
  if (r.connections < cases.length) {
    r.violations.push({ campaign: 'internode', problem: `stopped at --max-seconds after ${r.frames} of ${args.frames} frames` });
  }
  r.seconds = (performance.now() - start) / 1000;
  return r;
}

// ---- the cluster before and after -------------------------------------------------------------------

interface NodeState {
  id: string;
  pid: number | undefined;
  generation: number | undefined;
}

async function nodeStates(cluster: LocalCluster): Promise<NodeState[]> {
  return Promise.all(
    cluster.nodes.map(async (n) => {
      let generation: number | undefined;
      try {
        const res = await fetch(`${n.url}/health`, { signal: AbortSignal.timeout(5_000) });
        generation = ((await res.json()) as { generation?: number }).generation;
      } catch {}
      return { id: n.id, pid: n.running ? n.pid : undefined, generation };
    }),
  );
}

/** Every node still runs as the same process, and has not restarted (same generation). */
function survivalProblems(cluster: LocalCluster, before: NodeState[], after: NodeState[]): Violation[] {
  return cluster.nodes.flatMap((n, i) => {
    const b = before[i] as NodeState;
    const a = after[i] as NodeState;
    if (!n.running) {
      const how = `code ${n.proc?.exitCode}, signal ${n.proc?.signalCode}`;
      return [{ campaign: 'cluster' as const, problem: `${n.id} exited (${how}); last log lines:\n${n.logTail.slice(-15).join('\n')}` }];
    }
    if (a.pid !== b.pid || a.generation !== b.generation) {
      return [
        {
          campaign: 'cluster' as const,
          problem: `${n.id} restarted: pid ${b.pid} -> ${a.pid}, generation ${b.generation} -> ${a.generation}`,
        },
      ];
    }
    return [];
  });
}

interface MemberView {
  members: Array<{ id: string; state: string; status: string }>;
}

/** Waits (at most 20 s) until every node sees all members alive; the problems if not. */
async function membershipProblems(cluster: LocalCluster): Promise<string[]> {
  const deadline = performance.now() + 20_000;
  for (;;) {
    const problems = await Promise.all(
      cluster.nodes.map(async (n) => {
        try {
          const view = (await fetch(`${n.url}/cluster`, { signal: AbortSignal.timeout(2_000) }).then((res) => res.json())) as MemberView;
          const alive = view.members.filter((m) => m.state === 'alive' && m.status === 'normal').length;
          return alive === cluster.nodes.length
            ? undefined
            : `${n.id} sees ${JSON.stringify(view.members.map((m) => `${m.id}:${m.state}/${m.status}`))}`;
        } catch (err) {
          return `${n.id}: /cluster unanswered (${(err as Error).message})`;
        }
      }),
    );
    const left = problems.filter((p): p is string => p !== undefined);
    if (left.length === 0 || performance.now() > deadline) return left;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** 30 writes and reads at consistency=all, each written through one node and read through the next. */
async function serviceProblems(cluster: LocalCluster, seed: number): Promise<string[]> {
  const problems: string[] = [];
  const nodes = cluster.nodes;
  for (let i = 0; i < 30; i++) {
    const writer = nodes[i % nodes.length] as LocalNode;
    const reader = nodes[(i + 1) % nodes.length] as LocalNode;
    const url = (n: LocalNode) => `${n.url}/kv/fz-${seed}-after-${i}?consistency=all`;
    try {
      const put = await fetch(url(writer), {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ value: i }),
        signal: AbortSignal.timeout(5_000),
      });
      const got = await fetch(url(reader), { signal: AbortSignal.timeout(5_000) });
      const value = ((await got.json()) as { value?: unknown }).value;
      if (put.status !== 200 || got.status !== 200 || value !== i) {
        problems.push(`write ${i} through ${writer.id}: ${put.status}; read through ${reader.id}: ${got.status} ${JSON.stringify(value)}`);
      }
    } catch (err) {
      problems.push(`write ${i} through ${writer.id}: ${(err as Error).message}`);
    }
  }
  return problems;
}

/** Error and fatal log lines, by node and message (the reason included), counted as the nodes write them. */
function errorLogCounter(): { counts: Record<string, Counts>; onLine: (node: LocalNode, line: string) => void } {
  const counts: Record<string, Counts> = {};
  const onLine = (node: LocalNode, line: string) => {
    counts[node.id] ??= {};
    const mine = counts[node.id] as Counts;
    let entry: { level?: number; msg?: string; err?: { message?: string } };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      bump(mine, `not a log line: ${line.slice(0, 80)}`); // a crash's stack trace, say
      return;
    }
    const why = entry.err?.message ? ` (${entry.err.message.slice(0, 80)})` : '';
    if ((entry.level ?? 0) >= 50) bump(mine, `${entry.level === 60 ? 'FATAL' : 'ERROR'} ${entry.msg}${why}`);
  };
  return { counts, onLine };
}

// ---- replaying one case -----------------------------------------------------------------------------

async function replayRequest(cluster: LocalCluster, args: Args, index: number): Promise<boolean> {
  const c = httpCase(
    args.seed,
    index,
    cluster.nodes.map((n) => n.address),
  );
  const node = cluster.nodes[c.node] as LocalNode;
  process.stdout.write(`HTTP case ${index} (seed ${args.seed}), ${c.category}: ${c.what}\nto ${node.id} (${node.address})\n`);
  c.parts.forEach((p, i) => {
    process.stdout.write(`--- part ${i + 1}${p.delayMs ? ` after ${p.delayMs} ms` : ''}\n${printable(p.bytes, 4000)}\n`);
  });
  if (c.hangUpAfterMs !== undefined) process.stdout.write(`--- then the client goes away after ${c.hangUpAfterMs} ms\n`);
  const { replies, ex } = await sendCase(c, node);
  process.stdout.write(`--- exchange ended: ${endOf(c, ex)}\n`);
  for (const reply of replies) {
    const headers = Object.entries(reply.headers).map(([k, v]) => `${k}: ${v}`);
    process.stdout.write(`--- reply ${reply.status}\n${headers.join('\n')}\n\n${printable(reply.body, 4000)}\n`);
  }
  if (replies.length === 0) process.stdout.write('--- no reply\n');
  const problems = judgeReplies(c, replies, ex.sentAll, args.strictParser).violations;
  const key = c.write?.key;
  if (key !== undefined && keyProblem(key) === undefined && fateOf(c, replies[0]) === 'refused') {
    const transport = new ReplicaReader();
    try {
      const held = await holders(transport, cluster, key);
      if (held.length > 0) problems.push(`refused (${replies[0]?.status ?? 'no reply'}) but stored: ${held.join('; ')}`);
    } finally {
      await transport.close();
    }
  }
  process.stdout.write(`verdict: ${problems.length ? problems.join('; ') : 'ok'}\n`);
  return problems.length === 0;
}

async function replayConnection(cluster: LocalCluster, args: Args, index: number): Promise<boolean> {
  const c = peerCase(args.seed, index, cluster.nodes.length);
  const node = cluster.nodes[c.node] as LocalNode;
  process.stdout.write(`internode case ${index} (seed ${args.seed}), ${c.category}: ${c.what}\nto ${node.id}'s internode port\n`);
  for (const step of c.steps) {
    process.stdout.write(`  ${'send' in step ? `send (${step.frames} frame(s)): ${printable(step.send, 400)}` : JSON.stringify(step)}\n`);
  }
  const before = await nodeStates(cluster);
  const outcome = await runPeerCase(c, node.spec.host, node.spec.port + INTERNODE_PORT_DISTANCE);
  process.stdout.write(
    `outcome: ${outcome.notes.join('; ')}\nverdict: ${outcome.violations.length ? outcome.violations.join('; ') : 'ok'}\n`,
  );
  const after = survivalProblems(cluster, before, await nodeStates(cluster));
  for (const v of after) process.stdout.write(`${v.problem}\n`);
  return outcome.violations.length === 0 && after.length === 0;
}

// ---- the run ----------------------------------------------------------------------------------------

interface Summary {
  seed: number;
  requests: { sent: number; byCategory: Counts };
  statuses: Counts;
  parserAnswered: Counts;
  /** How the HTTP exchanges ended. */
  ends: Counts;
  storage: Omit<StorageResults, 'violations'>;
  frames: { sent: number; connections: number; byCategory: Counts };
  internodeOutcomes: Counts;
  nodes: Array<NodeState & { running: boolean }>;
  errorLogLines: Record<string, Counts>;
  elapsedSeconds: { total: number; http: number; internode: number };
  violations: Violation[];
}

async function campaign(cluster: LocalCluster, args: Args, errorLines: Record<string, Counts>): Promise<Summary> {
  const start = performance.now();
  const deadlineMs = start + args.maxSeconds * 1000;
  const before = await nodeStates(cluster);
  const keysBefore = await keyCounts(cluster);
  const http = await httpCampaign(cluster, args, deadlineMs);
  const storage = await checkStorage(cluster, args, http, keysBefore);
  const internode = await internodeCampaign(cluster, args, deadlineMs);
  const after = await nodeStates(cluster);
  const violations = [...http.violations, ...storage.violations, ...internode.violations, ...survivalProblems(cluster, before, after)];
  if (cluster.nodes.every((n) => n.running)) {
    for (const problem of await membershipProblems(cluster))
      violations.push({ campaign: 'cluster', problem: `after the campaign ${problem}` });
    for (const problem of await serviceProblems(cluster, args.seed))
      violations.push({ campaign: 'cluster', problem: `after the campaign ${problem}` });
  }
  const { violations: _v, ...storageFigures } = storage;
  return {
    seed: args.seed,
    requests: { sent: http.sent, byCategory: http.byCategory },
    statuses: http.statuses,
    parserAnswered: http.parserAnswered,
    ends: http.ends,
    storage: storageFigures,
    frames: { sent: internode.frames, connections: internode.connections, byCategory: internode.byCategory },
    internodeOutcomes: internode.outcomes,
    nodes: after.map((s, i) => ({ ...s, running: (cluster.nodes[i] as LocalNode).running })),
    errorLogLines: errorLines,
    elapsedSeconds: { total: (performance.now() - start) / 1000, http: http.seconds, internode: internode.seconds },
    violations,
  };
}

function counts(c: Counts, order?: readonly string[]): string {
  const keys = order ?? Object.keys(c).sort((a, b) => (c[b] as number) - (c[a] as number));
  return keys.map((k) => `${k}=${c[k] ?? 0}`).join(' ') || '(none)';
}

/** A violation's kind: campaign, category and the first words of the problem, numbers and node ids left out. */
function kindOf(v: Violation): string {
  const problem = (v.problem.split(':')[0] as string).replace(/\b(n\d+|\d+)\b/g, 'N');
  return `[${v.campaign}${v.category ? ` ${v.category}` : ''}] ${problem}`;
}

/** Up to `perKind` violations of each kind, so that one frequent kind does not hide the others. */
function examples(violations: Violation[], perKind: number): Map<string, Violation[]> {
  const byKind = new Map<string, Violation[]>();
  for (const v of violations) {
    const list = byKind.get(kindOf(v)) ?? [];
    list.push(v);
    byKind.set(kindOf(v), list);
  }
  return new Map([...byKind].map(([kind, list]) => [`${kind} (${list.length})`, list.slice(0, perKind)]));
}

function report(s: Summary, args: Args): string {
  const st = s.storage;
  const lines = [
    `quorumkv fuzz, seed ${s.seed}: ${s.requests.sent} HTTP requests, ${s.frames.sent} internode frames on ${s.frames.connections} connections, ${s.elapsedSeconds.total.toFixed(1)} s (HTTP ${s.elapsedSeconds.http.toFixed(1)} s, internode ${s.elapsedSeconds.internode.toFixed(1)} s)`,
    `HTTP requests by category: ${counts(s.requests.byCategory, HTTP_CATEGORIES)}`,
    `HTTP statuses (every reply; none = no reply): ${counts(s.statuses)}`,
    `answered by Node's parser without JSON${args.strictParser ? '' : ' (violations only with --strict-parser)'}: ${counts(s.parserAnswered)}`,
    `HTTP exchanges ended: ${counts(s.ends)}`,
    `/kv writes: ${st.accepted} acknowledged (${st.readBack} read back as acknowledged), ${st.refused} refused (${st.refusedChecked} of them read from every replica), ${st.uncertain} uncertain (503 or no reply)`,
    `keys per node before -> after: ${st.keysBefore.map((k, i) => `${k}->${st.keysAfter[i]}`).join(', ')}`,
    `internode frames by category: ${counts(s.frames.byCategory, FRAME_CATEGORIES)}`,
    `internode outcomes: ${counts(s.internodeOutcomes)}`,
    `nodes after: ${s.nodes.map((n) => `${n.id} pid ${n.pid ?? '-'} ${n.running ? 'running' : 'EXITED'}`).join(', ')}`,
    `node error log lines: ${
      Object.entries(s.errorLogLines)
        .map(([id, c]) => `${id} ${counts(c)}`)
        .join('; ') || '(none)'
    }`,
    `violations: ${s.violations.length === 0 ? 'none' : s.violations.length}`,
  ];
  for (const [kind, list] of examples(s.violations, 3)) {
    lines.push(`  ${kind}`);
    for (const v of list) {
      lines.push(`    ${v.index !== undefined ? `#${v.index} ` : ''}${v.problem}`);
      if (v.what) lines.push(`      case: ${v.what}`);
      if (v.request) lines.push(`      request: ${v.request}`);
      if (v.replay) lines.push(`      replay: ${v.replay}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const dataRoot = mkdtempSync(path.join(os.tmpdir(), 'qkv-fuzz-'));
  const errorLines = errorLogCounter();
  const cluster = LocalCluster.create({
    hosts: [1, 2, 3].map((i) => `${args.net}.${i}`),
    port: API_PORT,
    dataRoot,
    args: [...FAST_ARGS],
    onLine: errorLines.onLine,
  });
  let ok = false;
  try {
    await cluster.start();
    if (args.replayRequest !== undefined) ok = await replayRequest(cluster, args, args.replayRequest);
    else if (args.replayConnection !== undefined) ok = await replayConnection(cluster, args, args.replayConnection);
    else {
      const summary = await campaign(cluster, args, errorLines.counts);
      process.stdout.write(args.json ? `${JSON.stringify(summary)}\n` : report(summary, args));
      ok = summary.violations.length === 0;
    }
  } finally {
    await cluster.stopAll('SIGKILL');
    rmSync(dataRoot, { recursive: true, force: true });
  }
  process.exit(ok ? 0 : 1);
}

main().catch((err: unknown) => {
  process.stderr.write(`fuzz: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(2);
});
