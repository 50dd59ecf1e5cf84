// `npm run chaos`: a seeded chaos campaign against real `quorumkv serve` processes.
//
//   npm run chaos -- [--seed N] [--seconds 90] [--json] [--faults kill,pause,partition,skew]
//                    [--skew +30s] [--run R] [--history FILE]
//
// --seed: the plan and the clients' choices (default: a random one, printed); --seconds: planned
// time of the fault phase; --run: the cluster's addresses 127.41.R.1-3 and iptables chain QKVCHAOS<R>
// (default 1 + seed % 200; give each campaign running at once its own); --history: every operation
// and fault as JSON, for a violation's post-mortem.
//
// A fresh 3-node cluster (N=3, W=2, R=2) on 127.41.<run>.1..3:7000, 100 ms gossip and a 1 s request
// deadline. A nemesis planned from the seed injects one fault at a time, each for a few seconds and
// then healed, with quiet gaps between:
//   - kill:      SIGKILL one node, start it again on its data;
//   - pause:     SIGSTOP one node, SIGCONT it;
//   - partition: iptables rules that cut one node off from the two others (both ways, or one way:
//                scripts/lib/netfilter.ts), then removed;
//   - skew:      restart one node with its wall clock 30 s ahead (libfaketime), then restart it
//                without (its timers keep real time).
// Meanwhile clients write unique keys, delete keys written earlier, and keep single-writer registers,
// each request through the next node in turn (leaving out for a second a node that gave that client
// no reply), and record every outcome. After the last heal: hints drain, `POST /admin/repair` runs
// on every node until the replicas agree, and every key is read at consistency=all and from each
// replica's own store. The checks are in scripts/lib/chaos-checks.ts.
// Prints a summary (--json: one JSON object on stdout; the timeline goes to stderr) and exits 1 on
// any violation. The seed fixes the fault plan and every client's choices; timing is real, so two
// runs of one seed inject the same faults at the same planned times but interleave differently.
//
// Partitions need root and iptables; skew needs libfaketime (the `faketime` package). Without them
// those faults are skipped, and the summary says why.

import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { type Random, randomInt, SeededRandom } from '../src/core/random';
import { check, type FinalKey, identical, type Op, type OpKind, OUTCOMES, type Outcome, type Violation } from './lib/chaos-checks';
import { FAST_ARGS, LocalCluster, type LocalNode } from './lib/local-cluster';
import { mapLimit } from './lib/map-limit';
import { type Endpoint, findIptables, PARTITION_SHAPES, PartitionChain, type PartitionShape, partitionRules } from './lib/netfilter';
import { ReplicaReader } from './lib/replica-reader';

const run = promisify(execFile);

type FaultKind = 'kill' | 'pause' | 'partition' | 'skew';
const FAULT_KINDS: readonly FaultKind[] = ['kill', 'pause', 'partition', 'skew'];

const PORT = 7000;
/** Node i of run r runs as uid UID_BASE + 4r + i when partitions are on (the owner match needs one uid per node). */
const UID_BASE = 43_000;

const WARMUP_MS = 2_000;
const FAULT_MS = { min: 2_500, max: 5_000 };
const GAP_MS = { min: 2_000, max: 4_000 };
/** What a restart costs on top of the planned fault time, for planning only. */
const RESTART_ESTIMATE_MS = 800;
const MAX_FAULTS = 500;

const UNIQUE_WRITERS = 3;
const REGISTERS = 3;
const MAX_OPS_PER_CLIENT = 100_000;
/**
 * Client deadline of writes and deletes of unique keys (twice the node's): their outcome may stay
 * unknown, and these clients keep the traffic going while a hung node holds the register clients.
 */
const UNIQUE_TIMEOUT_MS = 2_000;
/**
 * Client deadline of register requests: longer than the longest pause plus the node's deadline, so a
 * register request to a hung node waits for its real answer instead of leaving a write in flight
 * that the node could apply after the client has moved on (which would rightly reorder it).
 */
const REGISTER_TIMEOUT_MS = FAULT_MS.max + 10_000;
const THINK_MS = { min: 5, max: 25 };
/** After a request to a node got no reply, a client sends its next ones to the other nodes for this long. */
const AVOID_MS = 1_000;
const DELETE_THINK_MS = { min: 20, max: 60 };

const CONVERGE = { formedMs: 30_000, hintsMs: 30_000, repairRounds: 4, repairMs: 60_000 };
const CHECK_CONCURRENCY = 16;

interface Args {
  seed: number;
  seconds: number;
  json: boolean;
  run: number;
  faults: FaultKind[];
  skew: string;
  history?: string;
}

const FLAGS = ['seed', 'seconds', 'json', 'run', 'faults', 'skew', 'history'];

function parseArgs(argv: string[]): Args {
  for (const a of argv)
    if (a.startsWith('--') && !FLAGS.includes(a.slice(2)))
      throw new Error(`unknown flag ${a}; known: ${FLAGS.map((f) => `--${f}`).join(' ')}`);
  const get = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const num = (name: string, fallback: number, lo: number, hi: number) => {
    const v = get(name);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < lo || n > hi)
      throw new Error(`--${name} must be a whole number from ${lo} to ${hi}, got ${JSON.stringify(v)}`);
    return n;
  };
  const seed = num('seed', Math.floor(Math.random() * 1_000_000), 0, 2 ** 31 - 1);
  const faults = (get('faults') ?? FAULT_KINDS.join(',')).split(',').filter((f) => f !== '');
  for (const f of faults)
    if (!FAULT_KINDS.includes(f as FaultKind)) throw new Error(`unknown fault ${JSON.stringify(f)}; known: ${FAULT_KINDS.join(', ')}`);
  const skew = get('skew') ?? '+30s';
  if (!/^[+-][0-9]{1,5}s$/.test(skew)) throw new Error(`--skew must look like +30s or -30s, got ${JSON.stringify(skew)}`);
  const history = get('history');
  return {
    seed,
    seconds: num('seconds', 90, 1, 3600),
    json: argv.includes('--json'),
    run: num('run', 1 + (seed % 200), 1, 254),
    faults: faults as FaultKind[],
    skew,
    ...(history !== undefined ? { history } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// The tools the faults need

/** LD_PRELOAD the way the `faketime` command does. The command itself is not used: it forks, so the
 * PID the launcher holds would be faketime's, and SIGKILL or SIGSTOP would miss the node. */
const FAKETIME_LIB = '/usr/$LIB/faketime/libfaketime.so.1';

function faketimeEnv(offset: string): Record<string, string> {
  return { LD_PRELOAD: FAKETIME_LIB, FAKETIME: offset, FAKETIME_DONT_FAKE_MONOTONIC: '1' };
}

/** Undefined when a node process started with faketimeEnv sees its wall clock moved by `offset`; else why not. */
async function probeFaketime(offset: string): Promise<string | undefined> {
  const want = Number(offset.slice(0, -1)) * 1000;
  try {
    const before = Date.now();
    const { stdout } = await run(process.execPath, ['-e', 'process.stdout.write(String(Date.now()))'], {
      env: { ...process.env, ...faketimeEnv(offset) },
      timeout: 10_000,
    });
    const moved = Number(stdout) - before;
    if (Math.abs(moved - want) < 5_000) return undefined;
    return `faketime (libfaketime) is not installed or does not work here: a process under it saw its clock moved by ${moved} ms, not ${want} ms`;
  } catch (err) {
    return `faketime (libfaketime) could not be used: ${(err as Error).message.split('\n')[0]}`;
  }
}

// ---------------------------------------------------------------------------------------------
// The plan

interface PlannedFault {
  kind: FaultKind;
  /** Index of the node it hits. */
  target: number;
  shape?: PartitionShape;
  durationMs: number;
  /** Quiet time after the heal. */
  gapMs: number;
}

/**
 * Faults in rounds: each round is every available kind once, in an order the seed shuffles; rounds
 * repeat until the planned time reaches `seconds`, and the first round is always whole.
 */
function plan(seed: number, seconds: number, kinds: readonly FaultKind[]): PlannedFault[] {
  const rng = new SeededRandom(seed ^ 0x5eed_c4a0);
  const out: PlannedFault[] = [];
  let plannedMs = WARMUP_MS;
  while (kinds.length > 0 && out.length < MAX_FAULTS) {
    const round = [...kinds];
    for (let i = round.length - 1; i > 0; i--) {
      const j = randomInt(rng, 0, i);
      [round[i], round[j]] = [round[j] as FaultKind, round[i] as FaultKind];
    }
    for (const kind of round) {
      if (out.length >= kinds.length && plannedMs >= seconds * 1000) return out;
      const f: PlannedFault = {
        kind,
        target: randomInt(rng, 0, 2),
        durationMs: randomInt(rng, FAULT_MS.min, FAULT_MS.max),
        gapMs: randomInt(rng, GAP_MS.min, GAP_MS.max),
      };
      if (kind === 'partition') f.shape = PARTITION_SHAPES[randomInt(rng, 0, PARTITION_SHAPES.length - 1)] as PartitionShape;
      plannedMs += f.durationMs + f.gapMs + (kind === 'kill' ? RESTART_ESTIMATE_MS : kind === 'skew' ? 2 * RESTART_ESTIMATE_MS : 0);
      out.push(f);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Requests

interface Reply {
  status?: number;
  // biome-ignore lint/suspicious/noExplicitAny: replies are read field by field
  body?: any;
  error?: string;
}

async function request(method: string, url: string, json: unknown, timeoutMs: number): Promise<Reply> {
  try {
    const res = await fetch(url, {
      method,
      ...(json !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(json) } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {}
    return { status: res.status, body };
  } catch (err) {
    const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
    return { error: e.name === 'TimeoutError' ? 'client deadline' : (e.cause?.code ?? e.cause?.message ?? e.message ?? String(err)) };
  }
}

function classify(method: string, r: Reply): { outcome: Outcome; code?: string } {
  if (r.status === undefined) return { outcome: 'error', code: r.error ?? 'no reply' };
  if (r.status >= 200 && r.status < 300) return { outcome: 'ok' };
  const code = String(r.body?.error?.code ?? r.status);
  if (r.status === 404 && method === 'GET') return { outcome: 'not_found' };
  // a refusal promises that nothing was written: only then is it counted as one
  if (r.status === 503 && code === 'unavailable' && (method === 'GET' || r.body?.error?.may_have_been_applied === false))
    return { outcome: 'unavailable', code };
  if (r.status === 503 && code === 'quorum_not_met') return { outcome: 'quorum_not_met', code };
  return { outcome: 'other', code };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// The workload

class Workload {
  readonly ops: Op[] = [];
  private stopping = false;
  private nextId = 0;
  /** Unique keys whose write was acknowledged and that no delete has been tried on yet. */
  private readonly deletable: string[] = [];
  /** Per client and node, until when the client leaves that node out (it did not answer). */
  private readonly avoidUntil = new Map<string, number>();

  constructor(
    private readonly nodes: readonly LocalNode[],
    private readonly seed: number,
    private readonly nowMs: () => number,
    private readonly fault: () => number,
  ) {}

  run(): Promise<void> {
    const clients: Array<Promise<void>> = [];
    for (let c = 0; c < UNIQUE_WRITERS; c++) clients.push(this.writer(c));
    clients.push(this.deleter());
    for (let r = 0; r < REGISTERS; r++) clients.push(this.register(r));
    return Promise.all(clients).then(() => undefined);
  }

  stop(): void {
    this.stopping = true;
  }

  /**
   * The coordinator of a client's next request: the next node in turn, skipping any that gave that
   * client no reply in the last AVOID_MS (what a client-side load balancer does), unless all did.
   */
  private pick(client: string, turn: number): LocalNode {
    const now = this.nowMs();
    for (let i = 0; i < this.nodes.length; i++) {
      const node = this.nodes[(turn + i) % this.nodes.length] as LocalNode;
      if ((this.avoidUntil.get(`${client} ${node.id}`) ?? 0) <= now) return node;
    }
    return this.nodes[turn % this.nodes.length] as LocalNode;
  }

  private rng(client: number): Random {
    return new SeededRandom((this.seed * 7919 + client * 104_729) >>> 0);
  }

  private async op(
    client: string,
    kind: OpKind,
    key: string,
    coordinator: LocalNode,
    value: string | number | undefined,
    timeoutMs: number,
  ): Promise<Op> {
    const method = kind === 'write' || kind === 'reg-write' ? 'PUT' : kind === 'delete' ? 'DELETE' : 'GET';
    const op: Op = {
      id: this.nextId++,
      client,
      kind,
      key,
      coordinator: coordinator.id,
      startMs: this.nowMs(),
      endMs: 0,
      outcome: 'error',
      fault: this.fault(),
    };
    if (value !== undefined) op.value = value;
    const reply = await request(
      method,
      `${coordinator.url}/kv/${encodeURIComponent(key)}`,
      method === 'PUT' ? { value } : undefined,
      timeoutMs,
    );
    op.endMs = this.nowMs();
    const { outcome, code } = classify(method, reply);
    if (outcome === 'error') this.avoidUntil.set(`${client} ${coordinator.id}`, op.endMs + AVOID_MS);
    op.outcome = outcome;
    if (reply.status !== undefined) op.status = reply.status;
    if (code !== undefined) op.code = code;
    if (typeof reply.body?.version === 'string') op.version = reply.body.version;
    if (kind === 'reg-read') op.value = outcome === 'ok' && typeof reply.body?.value === 'number' ? reply.body.value : null;
    this.ops.push(op);
    return op;
  }

  /** Writes keys u<c>-0, u<c>-1, …, each once. */
  private async writer(c: number): Promise<void> {
    const rng = this.rng(c);
    for (let n = 0; n < MAX_OPS_PER_CLIENT && !this.stopping; n++) {
      const key = `u${c}-${n}`;
      const op = await this.op(`w${c}`, 'write', key, this.pick(`w${c}`, c + n), `${key}#${this.seed}`, UNIQUE_TIMEOUT_MS);
      if (op.outcome === 'ok') this.deletable.push(key);
      await sleep(randomInt(rng, THINK_MS.min, THINK_MS.max));
    }
  }

  /** Deletes keys whose write was acknowledged, each at most once, picked by the seed. */
  private async deleter(): Promise<void> {
    const rng = this.rng(UNIQUE_WRITERS);
    for (let n = 0; n < MAX_OPS_PER_CLIENT && !this.stopping; n++) {
      if (this.deletable.length > 0) {
        const key = this.deletable.splice(randomInt(rng, 0, this.deletable.length - 1), 1)[0] as string;
        await this.op('d', 'delete', key, this.pick('d', n), undefined, UNIQUE_TIMEOUT_MS);
      }
      await sleep(randomInt(rng, DELETE_THINK_MS.min, DELETE_THINK_MS.max));
    }
  }

  /** One writer per register: writes 1, 2, 3, … and reads each back, through the next node each time. */
  private async register(r: number): Promise<void> {
    const rng = this.rng(UNIQUE_WRITERS + 1 + r);
    const key = `reg-${r}`;
    let turn = r;
    for (let c = 1; c <= MAX_OPS_PER_CLIENT && !this.stopping; c++) {
      await this.op(`r${r}`, 'reg-write', key, this.pick(`r${r}`, turn++), c, REGISTER_TIMEOUT_MS);
      await this.op(`r${r}`, 'reg-read', key, this.pick(`r${r}`, turn++), undefined, REGISTER_TIMEOUT_MS);
      await sleep(randomInt(rng, THINK_MS.min, THINK_MS.max));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The nemesis

interface FaultRecord extends PlannedFault {
  index: number;
  node: string;
  startMs: number;
  /** When the heal was done (the node back up, the rules gone). */
  healedMs?: number;
}

/** SIGTERM, and SIGKILL if the node has not exited after `graceMs`. */
async function stopBounded(node: LocalNode, graceMs = 10_000): Promise<void> {
  const stopped = node.stop();
  const late = await Promise.race([stopped.then(() => false), sleep(graceMs).then(() => true)]);
  if (late) await node.kill('SIGKILL');
}

class Nemesis {
  readonly log: FaultRecord[] = [];
  current = -1;
  /** Node index a fault has stopped on purpose (kill, skew restarts): the watchdog leaves it alone. */
  downOnPurpose = -1;
  lastHealMs = 0;

  constructor(
    private readonly nodes: readonly LocalNode[],
    private readonly chain: PartitionChain | undefined,
    private readonly endpoints: readonly Endpoint[],
    private readonly skew: string,
    private readonly nowMs: () => number,
    private readonly say: (line: string) => void,
  ) {}

  async run(faults: readonly PlannedFault[]): Promise<void> {
    await sleep(WARMUP_MS);
    for (const [index, f] of faults.entries()) {
      const node = this.nodes[f.target] as LocalNode;
      const rec: FaultRecord = { ...f, index, node: node.id, startMs: this.nowMs() };
      this.log.push(rec);
      this.current = index;
      this.say(`fault #${index} ${f.kind}${f.shape ? ` (${f.shape})` : ''} on ${node.id} for ${f.durationMs} ms`);
      try {
        await this.inject(f, node);
      } finally {
        rec.healedMs = this.nowMs();
        this.lastHealMs = rec.healedMs;
        this.current = -1;
      }
      this.say(`fault #${index} healed after ${((rec.healedMs - rec.startMs) / 1000).toFixed(2)} s; quiet for ${f.gapMs} ms`);
      await sleep(f.gapMs);
    }
  }

  private async inject(f: PlannedFault, node: LocalNode): Promise<void> {
    switch (f.kind) {
      case 'kill':
        this.downOnPurpose = f.target;
        try {
          await node.kill('SIGKILL');
          await sleep(f.durationMs);
          await node.start();
        } finally {
          this.downOnPurpose = -1;
        }
        return;
      case 'pause':
        node.pause();
        try {
          await sleep(f.durationMs);
        } finally {
          node.resume();
        }
        return;
      case 'partition': {
        const chain = this.chain as PartitionChain;
        const target = this.endpoints[f.target] as Endpoint;
        const rules = partitionRules(
          f.shape ?? 'isolate',
          target,
          this.endpoints.filter((e) => e !== target),
        );
        try {
          await chain.apply(rules);
          await sleep(f.durationMs);
        } finally {
          chain.healSync();
        }
        return;
      }
      case 'skew': {
        const base = node.spec.env ?? {};
        this.downOnPurpose = f.target;
        try {
          await stopBounded(node);
          node.spec = { ...node.spec, env: { ...base, ...faketimeEnv(this.skew) } };
          await node.start();
          this.downOnPurpose = -1;
          await sleep(f.durationMs);
          this.downOnPurpose = f.target;
          await stopBounded(node);
        } finally {
          node.spec = { ...node.spec, env: base };
          if (!node.running) await node.start();
          this.downOnPurpose = -1;
        }
        return;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Convergence and the final reads

interface ConvergenceReport {
  /** From the last heal until the clients stopped (the last quiet gap, traffic still running). */
  trafficAfterHealMs: number;
  /** The rest: from the last heal. */
  formedMs: number | null;
  hintsDrainedMs: number | null;
  keys: number;
  identicalBeforeRepair: number;
  /** The first keys whose replicas differed once hints had drained, with what each replica held. */
  differedBeforeRepair: string[];
  repairRounds: number;
  keysRepaired: number;
  identicalAfterRepair: number;
  /** From the last heal until every key had identical replicas; null if that never happened. */
  convergedMs: number | null;
}

function describeReplicas(records: FinalKey['replicas']): string {
  return records
    .map((r, i) =>
      r === null
        ? `n${i + 1} nothing`
        : `n${i + 1} ${r.deleted ? 'tombstone' : JSON.stringify(r.value)} ${r.version.wallMs}.${r.version.counter}@${r.version.nodeId}`,
    )
    .join(', ');
}

async function hintsPending(nodes: readonly LocalNode[]): Promise<number | undefined> {
  let total = 0;
  for (const n of nodes) {
    const r = await request('GET', `${n.url}/admin/repair`, undefined, 2_000);
    if (typeof r.body?.hints_pending !== 'number') return undefined;
    total += r.body.hints_pending;
  }
  return total;
}

/** Runs `POST /admin/repair` on every node and waits until each has finished a pass begun after it. */
async function repairAll(nodes: readonly LocalNode[]): Promise<number> {
  const since = Date.now();
  let repaired = 0;
  await Promise.all(
    nodes.map(async (n) => {
      const deadline = Date.now() + CONVERGE.repairMs;
      let started = false;
      while (Date.now() < deadline) {
        if (!started) {
          const r = await request('POST', `${n.url}/admin/repair`, {}, 5_000);
          started = r.body?.started === true;
          if (!started) {
            await sleep(200); // a pass was already running: wait for it, then start ours
            continue;
          }
        }
        const s = await request('GET', `${n.url}/admin/repair`, undefined, 5_000);
        const finished = typeof s.body?.finished_at === 'string' ? Date.parse(s.body.finished_at) : 0;
        if (s.body?.running === false && finished >= since - 1_000) {
          repaired += Number(s.body.keys_repaired ?? 0);
          return;
        }
        await sleep(200);
      }
    }),
  );
  return repaired;
}

async function replicaSnapshot(
  reader: ReplicaReader,
  nodes: readonly LocalNode[],
  keys: readonly string[],
): Promise<Map<string, FinalKey['replicas']>> {
  const rows = await mapLimit(keys, CHECK_CONCURRENCY * 2, (key) =>
    Promise.all(
      nodes.map(async (n) => {
        for (let attempt = 0; ; attempt++) {
          try {
            return await reader.read(n.address, key);
          } catch (err) {
            if (attempt >= 3) throw new Error(`replica read of ${key} on ${n.id} failed: ${(err as Error).message}`);
            await sleep(200);
          }
        }
      }),
    ),
  );
  return new Map(keys.map((k, i) => [k, rows[i] as FinalKey['replicas']]));
}

async function readAllLevel(nodes: readonly LocalNode[], keys: readonly string[]): Promise<Map<string, FinalKey['all']>> {
  const rows = await mapLimit(keys, CHECK_CONCURRENCY, async (key, i) => {
    let last: Reply = {};
    for (let attempt = 0; attempt < 4; attempt++) {
      const node = nodes[(i + attempt) % nodes.length] as LocalNode;
      last = await request('GET', `${node.url}/kv/${encodeURIComponent(key)}?consistency=all`, undefined, 5_000);
      if (last.status === 200 || last.status === 404) {
        const all: FinalKey['all'] = { status: last.status };
        if (last.status === 200) all.value = last.body?.value;
        if (typeof last.body?.version === 'string') all.version = last.body.version;
        return all;
      }
      await sleep(250);
    }
    return { error: last.error ?? `${last.status} ${last.body?.error?.code ?? ''}`.trim() };
  });
  return new Map(keys.map((k, i) => [k, rows[i] as FinalKey['all']]));
}

// ---------------------------------------------------------------------------------------------
// Figures

interface Availability {
  ops: number;
  ok: number;
  okPct: number;
  byOutcome: Partial<Record<Outcome, number>>;
  /** Requests whose coordinator was the faulted node, and those through the others. */
  viaTarget?: { ops: number; okPct: number };
  viaOthers?: { ops: number; okPct: number };
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

const answered = (o: Op) => o.outcome === 'ok' || o.outcome === 'not_found';
const pct = (a: number, b: number) => (b === 0 ? 100 : Math.round((1000 * a) / b) / 10);
function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number);
}

function availability(ops: readonly Op[], faults: readonly FaultRecord[]): Record<string, Availability> {
  const groups = new Map<string, Op[]>();
  const add = (k: string, o: Op) => {
    const g = groups.get(k);
    if (g) g.push(o);
    else groups.set(k, [o]);
  };
  for (const o of ops) {
    const f = o.fault >= 0 ? faults[o.fault] : undefined;
    add(f?.kind ?? 'none', o);
    if (f?.shape) add(`partition:${f.shape}`, o);
  }
  const out: Record<string, Availability> = {};
  for (const [k, list] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
    const lat = list.map((o) => o.endMs - o.startMs).sort((a, b) => a - b);
    const byOutcome: Partial<Record<Outcome, number>> = {};
    for (const o of list) byOutcome[o.outcome] = (byOutcome[o.outcome] ?? 0) + 1;
    const ok = list.filter(answered).length;
    const a: Availability = {
      ops: list.length,
      ok,
      okPct: pct(ok, list.length),
      byOutcome,
      p50Ms: quantile(lat, 0.5),
      p99Ms: quantile(lat, 0.99),
      maxMs: lat.at(-1) ?? 0,
    };
    if (k !== 'none') {
      const target = list.filter((o) => faults[o.fault]?.node === o.coordinator);
      const others = list.filter((o) => faults[o.fault]?.node !== o.coordinator);
      a.viaTarget = { ops: target.length, okPct: pct(target.filter(answered).length, target.length) };
      a.viaOthers = { ops: others.length, okPct: pct(others.filter(answered).length, others.length) };
    }
    out[k] = a;
  }
  return out;
}

function opsByKind(ops: readonly Op[]): Record<string, Partial<Record<Outcome, number>> & { total: number }> {
  const out: Record<string, Partial<Record<Outcome, number>> & { total: number }> = {};
  for (const o of ops) {
    const row = out[o.kind] ?? { total: 0 };
    out[o.kind] = row;
    row.total++;
    row[o.outcome] = (row[o.outcome] ?? 0) + 1;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const began = performance.now();
  const nowMs = () => Math.round(performance.now() - began);
  process.stderr.on('error', () => {}); // a reader of the timeline that went away (EPIPE) is no reason to stop
  const say = (line: string) => process.stderr.write(`+${(nowMs() / 1000).toFixed(2).padStart(7)}s ${line}\n`);
  const replay =
    `npm run chaos -- --seed ${args.seed} --seconds ${args.seconds}` +
    `${args.faults.length < FAULT_KINDS.length ? ` --faults ${args.faults.join(',')}` : ''}${args.skew !== '+30s' ? ` --skew ${args.skew}` : ''}`;
  say(`chaos seed ${args.seed}, ${args.seconds} s of faults, cluster on 127.41.${args.run}.1-3:${PORT} (replay: ${replay})`);

  // which faults can run here
  const skipped: Partial<Record<FaultKind, string>> = {};
  let chain: PartitionChain | undefined;
  if (args.faults.includes('partition')) {
    const bin = findIptables();
    if (bin === undefined) skipped.partition = 'iptables is not installed';
    else if (process.getuid?.() !== 0)
      skipped.partition = 'not root: iptables needs root (CAP_NET_ADMIN), and the owner match needs nodes run as other users';
    else {
      chain = new PartitionChain(`QKVCHAOS${args.run}`, bin);
      const problem = await chain.probe();
      if (problem !== undefined) {
        skipped.partition = `iptables is not permitted here: ${problem}`;
        chain = undefined;
      }
    }
  }
  if (args.faults.includes('skew')) {
    const problem = await probeFaketime(args.skew);
    if (problem !== undefined) skipped.skew = problem;
  }
  for (const [k, why] of Object.entries(skipped)) say(`${k} faults skipped: ${why}`);
  // in one fixed order, so that the plan depends on the seed and the set of kinds, not on how --faults lists them
  const kinds = FAULT_KINDS.filter((k) => args.faults.includes(k) && skipped[k] === undefined);
  const faults = plan(args.seed, args.seconds, kinds);
  say(`plan: ${faults.map((f) => `${f.kind}${f.shape ? `/${f.shape}` : ''}@n${f.target + 1}`).join(' ')}`);

  const dataRoot = mkdtempSync(path.join(tmpdir(), 'qkv-chaos-'));
  const hosts = [1, 2, 3].map((i) => `127.41.${args.run}.${i}`);
  const nodeErrors: string[] = [];
  const cluster = LocalCluster.create({
    hosts,
    port: PORT,
    dataRoot,
    args: [...FAST_ARGS],
    onLine: (node, line) => {
      if (/"level":(50|60)/.test(line) && nodeErrors.length < 50) nodeErrors.push(`${node.id}: ${line.slice(0, 400)}`);
    },
  });
  const endpoints: Endpoint[] = cluster.nodes.map((n, i) => ({ id: n.id, host: n.spec.host, uid: UID_BASE + 4 * args.run + i }));
  if (chain) {
    chmodSync(dataRoot, 0o755); // the nodes' users must reach their directories inside it
    cluster.nodes.forEach((n, i) => {
      const uid = (endpoints[i] as Endpoint).uid;
      n.spec = { ...n.spec, uid, gid: uid };
    });
  }

  // whatever happens (the end, an error, a signal, a crash of this process), no rule, stopped
  // process or data directory is left behind: the exit handler runs even after an uncaught error
  let cleaned = false;
  const cleanupSync = () => {
    if (cleaned) return;
    cleaned = true;
    if (chain?.active) chain.healSync();
    for (const n of cluster.nodes) {
      if (!n.pid || !n.running) continue;
      try {
        process.kill(n.pid, 'SIGCONT');
        process.kill(n.pid, 'SIGKILL');
      } catch {}
    }
    rmSync(dataRoot, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    say(`${signal}: healing and stopping the cluster`);
    cleanupSync();
    process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGHUP' ? 1 : 15));
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const sig of signals) process.once(sig, onSignal);
  process.once('exit', cleanupSync);

  const reader = new ReplicaReader();
  let workload: Workload | undefined;
  let nemesis: Nemesis | undefined;
  const crashes: string[] = [];
  let convergence: ConvergenceReport | undefined;
  let violations: Violation[] = [];
  let aborted: string | undefined;
  let keysChecked = 0;
  try {
    await cluster.start();
    say(
      `cluster formed: ${cluster.nodes.map((n) => `${n.id} pid ${n.pid}${n.spec.uid !== undefined ? ` uid ${n.spec.uid}` : ''}`).join(', ')}`,
    );
    nemesis = new Nemesis(cluster.nodes, chain, endpoints, args.skew, nowMs, say);
    const nem = nemesis;
    const wl = new Workload(cluster.nodes, args.seed, nowMs, () => nem.current);
    workload = wl;

    // a node that exits when no fault stopped it has crashed: recorded, and started again
    let watching = true;
    const watchdog = (async () => {
      while (watching) {
        await sleep(250);
        for (const [i, n] of cluster.nodes.entries()) {
          if (!watching || n.running || nem.downOnPurpose === i) continue;
          crashes.push(`${n.id} exited on its own at ${(nowMs() / 1000).toFixed(2)} s: ${n.logTail.slice(-5).join(' / ')}`);
          say(`${n.id} exited on its own; starting it again`);
          await n.start().catch((err: unknown) => say(`${n.id} could not start again: ${(err as Error).message.split('\n')[0]}`));
        }
      }
    })();

    const traffic = wl.run();
    try {
      await nem.run(faults);
    } catch (err) {
      aborted = `the nemesis failed: ${(err as Error).message}`;
      say(aborted);
    } finally {
      wl.stop();
      await traffic;
      watching = false;
      await watchdog;
    }
    const lastHealMs = nem.lastHealMs || nowMs();
    say(`workload stopped: ${wl.ops.length} operations`);

    // convergence
    const report: ConvergenceReport = {
      trafficAfterHealMs: nowMs() - lastHealMs,
      formedMs: null,
      hintsDrainedMs: null,
      keys: 0,
      identicalBeforeRepair: 0,
      differedBeforeRepair: [],
      repairRounds: 0,
      keysRepaired: 0,
      identicalAfterRepair: 0,
      convergedMs: null,
    };
    convergence = report;
    for (const n of cluster.nodes) if (!n.running) await n.start();
    try {
      await cluster.waitFormed(CONVERGE.formedMs);
      report.formedMs = nowMs() - lastHealMs;
    } catch {
      say(`the members did not all see each other alive within ${CONVERGE.formedMs / 1000} s`);
    }
    for (const deadline = Date.now() + CONVERGE.hintsMs; Date.now() < deadline; await sleep(200)) {
      if ((await hintsPending(cluster.nodes)) === 0) {
        report.hintsDrainedMs = nowMs() - lastHealMs;
        break;
      }
    }
    const keys = [...new Set(wl.ops.map((o) => o.key))].sort();
    report.keys = keys.length;
    let replicas = await replicaSnapshot(reader, cluster.nodes, keys);
    let divergent = keys.filter((k) => !identical(replicas.get(k) ?? []));
    report.identicalBeforeRepair = keys.length - divergent.length;
    report.differedBeforeRepair = divergent.slice(0, 10).map((k) => `${k}: ${describeReplicas(replicas.get(k) ?? [])}`);
    say(
      `hints drained ${report.hintsDrainedMs === null ? 'not within the bound' : `${report.hintsDrainedMs} ms after the last heal`}; identical replicas before repair: ${report.identicalBeforeRepair}/${keys.length} keys`,
    );
    if (divergent.length === 0) report.convergedMs = nowMs() - lastHealMs;
    while (divergent.length > 0 && report.repairRounds < CONVERGE.repairRounds) {
      report.repairRounds++;
      report.keysRepaired += await repairAll(cluster.nodes);
      const again = await replicaSnapshot(reader, cluster.nodes, divergent);
      for (const [k, v] of again) replicas.set(k, v);
      divergent = divergent.filter((k) => !identical(replicas.get(k) ?? []));
      say(`repair round ${report.repairRounds}: ${divergent.length} keys still differ`);
      if (divergent.length === 0) report.convergedMs = nowMs() - lastHealMs;
    }
    report.identicalAfterRepair = keys.length - divergent.length;

    // the final reads, once the replicas agree (or after the last repair round)
    const all = await readAllLevel(cluster.nodes, keys);
    replicas = new Map(replicas);
    const finals = new Map<string, FinalKey>(
      keys.map((k) => [k, { all: all.get(k) ?? { error: 'not read' }, replicas: replicas.get(k) ?? [] }]),
    );
    keysChecked = finals.size;
    violations = check(wl.ops, finals);
  } catch (err) {
    aborted = `${(err as Error).message}\n${cluster.nodes.map((n) => `--- ${n.id}\n${n.logTail.slice(-15).join('\n')}`).join('\n')}`;
    say(`campaign aborted: ${aborted}`);
  } finally {
    await reader.close();
    cleanupSync();
    for (const sig of signals) process.removeListener(sig, onSignal);
  }

  const ops = workload?.ops ?? [];
  const log = nemesis?.log ?? [];
  for (const c of crashes) violations.push({ kind: 'node-crashed', key: '-', message: c });
  if (aborted !== undefined) violations.push({ kind: 'campaign-aborted', key: '-', message: aborted });
  const byViolation: Record<string, number> = {};
  for (const v of violations) byViolation[v.kind] = (byViolation[v.kind] ?? 0) + 1;
  const faultCounts: Record<string, number> = {};
  for (const f of log) faultCounts[f.kind] = (faultCounts[f.kind] ?? 0) + 1;
  const acked = (k: OpKind) => ops.filter((o) => o.kind === k && o.outcome === 'ok').length;
  const summary = {
    seed: args.seed,
    seconds: args.seconds,
    run: args.run,
    replay,
    nodes: hosts.map((h) => `${h}:${PORT}`),
    skipped,
    faults: faultCounts,
    faultLog: log.map((f) => ({
      index: f.index,
      kind: f.kind,
      ...(f.shape ? { shape: f.shape } : {}),
      node: f.node,
      startS: f.startMs / 1000,
      healedS: f.healedMs === undefined ? null : f.healedMs / 1000,
    })),
    ops: { total: ops.length, byKind: opsByKind(ops) },
    checked: {
      keys: keysChecked,
      ackedWrites: acked('write'),
      ackedDeletes: acked('delete'),
      registers: REGISTERS,
      ackedRegisterWrites: acked('reg-write'),
      refusedWrites: ops.filter((o) => (o.kind === 'write' || o.kind === 'reg-write') && o.outcome === 'unavailable').length,
    },
    availability: availability(ops, log),
    convergence: convergence ?? null,
    violations: byViolation,
    violationDetails: violations.slice(0, 50),
    nodeErrors: nodeErrors.slice(0, 20),
    wallSeconds: Math.round(nowMs() / 100) / 10,
  };
  if (args.history) writeFileSync(args.history, JSON.stringify({ summary, faults: log, ops }));

  if (args.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else process.stdout.write(render(summary));
  return violations.length > 0 ? 1 : 0;
}

function render(s: {
  seed: number;
  replay: string;
  wallSeconds: number;
  skipped: Record<string, string>;
  faults: Record<string, number>;
  ops: { total: number; byKind: Record<string, Record<string, number>> };
  checked: Record<string, number>;
  availability: Record<string, Availability>;
  convergence: ConvergenceReport | null;
  violations: Record<string, number>;
  violationDetails: Violation[];
  nodeErrors: string[];
}): string {
  const lines: string[] = [];
  lines.push(`chaos seed ${s.seed}: ${s.wallSeconds} s wall`);
  for (const [k, why] of Object.entries(s.skipped)) lines.push(`  skipped ${k}: ${why}`);
  lines.push(
    `faults injected: ${
      Object.entries(s.faults)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ') || 'none'
    }`,
  );
  lines.push(`operations: ${s.ops.total}`);
  for (const [kind, row] of Object.entries(s.ops.byKind))
    lines.push(
      `  ${kind.padEnd(10)} ${String(row.total).padStart(6)}  ${OUTCOMES.filter((o) => row[o])
        .map((o) => `${o}=${row[o]}`)
        .join(' ')}`,
    );
  lines.push('availability (answered: 2xx, or 404 on a read) by what was under way when the request began:');
  for (const [k, a] of Object.entries(s.availability)) {
    const via =
      a.viaTarget && a.viaOthers
        ? `  via the faulted node ${a.viaTarget.okPct}% of ${a.viaTarget.ops}, via the others ${a.viaOthers.okPct}% of ${a.viaOthers.ops}`
        : '';
    lines.push(
      `  ${k.padEnd(18)} ${String(a.okPct).padStart(5)}% of ${String(a.ops).padStart(6)}  p50 ${a.p50Ms} ms, p99 ${a.p99Ms} ms, max ${a.maxMs} ms${via}`,
    );
    const bad = OUTCOMES.filter((o) => o !== 'ok' && o !== 'not_found' && a.byOutcome[o]).map((o) => `${o}=${a.byOutcome[o]}`);
    if (bad.length) lines.push(`  ${''.padEnd(18)} failed: ${bad.join(' ')}`);
  }
  const c = s.convergence;
  if (c)
    lines.push(
      `convergence: traffic ran ${c.trafficAfterHealMs} ms past the last heal; members alive ${c.formedMs ?? '-'} ms and hints drained ${c.hintsDrainedMs ?? '-'} ms after it; ` +
        `identical replicas ${c.identicalBeforeRepair}/${c.keys} keys before repair, ${c.identicalAfterRepair}/${c.keys} after ${c.repairRounds} repair round(s) ` +
        `(${c.keysRepaired} keys repaired); converged ${c.convergedMs === null ? 'never' : `${(c.convergedMs / 1000).toFixed(1)} s after the last heal`}`,
      ...c.differedBeforeRepair.map((d) => `  differed before repair: ${d}`),
    );
  lines.push(
    `checked: ${Object.entries(s.checked)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}`,
  );
  lines.push(`violations: ${Object.keys(s.violations).length ? JSON.stringify(s.violations) : 'none'}`);
  for (const v of s.violationDetails.slice(0, 20)) lines.push(`  ${v.kind} ${v.key}: ${v.message}`);
  if (s.nodeErrors.length) lines.push(`node error logs (${s.nodeErrors.length}):`, ...s.nodeErrors.slice(0, 5).map((l) => `  ${l}`));
  if (Object.keys(s.violations).length) lines.push(`replay: ${s.replay}`);
  return `${lines.join('\n')}\n`;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(2);
  },
);
