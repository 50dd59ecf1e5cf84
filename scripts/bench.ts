// `npm run bench`: quorumkv side by side with etcd on this machine, under the same load generator.
//
// Each round starts a fresh 3-node quorumkv cluster (N=3, W=2, R=2) and a fresh 3-member etcd
// cluster (when `etcd` is installed), one after the other, alternating which goes first, and runs
// the same phases against each with wrk (one thread per node, connections spread over the nodes,
// 100-byte values over 10,000 random keys):
//   warm-up (2 s of writes, not counted), writes at 64 connections, fill every key (untimed),
//   reads at 64 connections, then one connection on the first node: writes, then reads.
// quorumkv is used through its /kv routes; etcd through its JSON gateway (POST /v3/kv/put,
// POST /v3/kv/range with "serializable": true, the read that skips the leader round).
// Reported: medians over the rounds of throughput and p50/p99, CPU time and read/write system
// calls per client request summed over every member, each member's peak RSS, and quorumkv's
// internode frames and socket writes per client write. Every phase stops by itself.
// The figures go to docs/BENCHMARKS.md.
//
// quorumkv runs three times per round: as it starts by default (plain HTTP, no tokens); with
// everything the prod overlay turns on (`quorumkv-tls`: HTTPS on the API port, mutual TLS between
// members, client tokens; wrk sends a write token over https), so the cost of security is
// measured in the same run, on the same machine state; and with idle polling on
// (`quorumkv-poll`: `--idle-poll-us`, what it buys a single client on a VM and what CPU it costs).
// Each comparison is its own section.
//
// And once per round, the floor (scripts/lib/quorum-floor.ts): three bare processes that do only
// what any N=3, W=2 write must (HTTP in, a frame to each peer, an O_DSYNC write on each, the reply
// after two), through the same one-connection phases. It is this machine's least cost for a quorum
// write in this run, against which the single-client rows are read.
//
//   node dist/scripts/bench.js [--rounds 3] [--seconds 10] [--connections 64] [--keys 10000]
//                              [--idle-poll-us 3000]
//                              [--only quorumkv|quorumkv-tls|quorumkv-poll|etcd|floor, comma-separated]

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { argReader } from './lib/args';
import { writeBenchmarkSection } from './lib/bench-doc';
import { EtcdCluster, findEtcd } from './lib/etcd';
import { LocalCluster } from './lib/local-cluster';
import { makeCa, makeCert } from './lib/pki';
import { rssSampler, sumCounters } from './lib/proc-stats';
import { FloorCluster } from './lib/quorum-floor';
import { median } from './lib/stats';
import { findWrk, runWrk, type WrkMode, type WrkResult } from './lib/wrk';

const USAGE = `usage: node dist/scripts/bench.js [--rounds 3] [--seconds 10] [--connections 64] [--keys 10000]
                                 [--idle-poll-us 3000] [--only quorumkv,quorumkv-tls,quorumkv-poll,etcd,floor]`;
const SYSTEMS = ['quorumkv', 'quorumkv-tls', 'quorumkv-poll', 'etcd', 'floor'] as const;
const args = argReader(process.argv.slice(2));
const unknown = args.unknown(['rounds', 'seconds', 'connections', 'keys', 'idle-poll-us', 'only']);
if (unknown.length > 0) {
  if (unknown.includes('--help')) {
    console.log(USAGE);
    process.exit(0);
  }
  console.error(`bench: unknown option ${unknown.join(', ')}\n${USAGE}`);
  process.exit(2);
}
const option = (name: string, fallback: string): string => args.get(name) ?? fallback;

const ROUNDS = Number(option('rounds', '3'));
const SECONDS = Number(option('seconds', '10'));
const CONNECTIONS = Number(option('connections', '64'));
const KEYS = Number(option('keys', '10000'));
const IDLE_POLL_US = args.num('idle-poll-us', 3000);
const ONLY = option('only', '')
  .split(',')
  .filter((s) => s !== '');
for (const name of ONLY) {
  if (!(SYSTEMS as readonly string[]).includes(name)) {
    console.error(`bench: --only names ${JSON.stringify(name)}; the systems are ${SYSTEMS.join(', ')}`);
    process.exit(2);
  }
}
const VALUE_BYTES = 100;
const WARMUP_SECONDS = 2;

type SystemName = (typeof SYSTEMS)[number];
const only = (name: SystemName) => ONLY.length === 0 || ONLY.includes(name);

interface SystemUnderTest {
  name: SystemName;
  /** host:port of each member's client port. */
  targets: string[];
  pids: number[];
  mode: { put: WrkMode; get: WrkMode };
  /** https and a bearer token for wrk (quorumkv-tls). */
  wrk?: { https: boolean; token: string };
  /** Writes every key once (so every read finds one). */
  fill(): Promise<void>;
  /** Internode frames and socket writes so far, summed over the members (quorumkv only). */
  internode?(): Promise<{ frames: number; flushes: number }>;
  stop(): Promise<void>;
}

interface RoundResult {
  write64: WrkResult;
  read64: WrkResult;
  write1: WrkResult;
  read1: WrkResult;
  cpuUsPerWrite: number;
  cpuUsPerRead: number;
  syscallsPerWrite: number;
  syscallsPerRead: number;
  /** CPU per request of the one-connection phases (where idle polling spends its CPU). */
  cpuUsPerWrite1: number;
  cpuUsPerRead1: number;
  peakRssMb: number[];
  framesPerWrite?: number;
  flushesPerWrite?: number;
}

const value = 'x'.repeat(VALUE_BYTES);

async function fillKeys(send: (i: number) => Promise<Response>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < KEYS) {
        const i = next++;
        const res = await send(i);
        await res.arrayBuffer();
        if (!res.ok) throw new Error(`fill: key ${i} answered ${res.status}`);
      }
    }),
  );
}

/**
 * The TLS and token settings of `quorumkv-tls`: a CA and one certificate for the three members
 * (EC P-256, as cert-manager issues them in k8s/overlays/prod), a tokens file with one write token.
 */
function secureSettings(dataRoot: string): { env: Record<string, string>; token: string } {
  const dir = path.join(dataRoot, 'pki');
  const ca = makeCa(dir);
  const member = makeCert(dir, ca, 'member', { ips: ['127.0.0.1'] });
  const token = randomBytes(32).toString('hex');
  const tokensFile = path.join(dataRoot, 'tokens');
  writeFileSync(tokensFile, `write ${token}\n`);
  return {
    env: {
      QUORUMKV_TLS: 'all',
      QUORUMKV_TLS_CERT: member.cert,
      QUORUMKV_TLS_KEY: member.key,
      QUORUMKV_TLS_CA: ca.cert,
      QUORUMKV_TOKENS_FILE: tokensFile,
      QUORUMKV_ADMIN_TOKEN: token,
      QUORUMKV_ADMIN_FROM_LOOPBACK: 'false',
    },
    token,
  };
}

async function startQuorumkv(name: 'quorumkv' | 'quorumkv-tls' | 'quorumkv-poll'): Promise<SystemUnderTest> {
  const dataRoot = mkdtempSync(path.join(os.tmpdir(), 'qkv-bench-'));
  const sec = name === 'quorumkv-tls' ? secureSettings(dataRoot) : undefined;
  const cluster = LocalCluster.create({
    host: '127.0.0.1',
    basePort: 18081,
    nodes: 3,
    dataRoot,
    args: ['--log-level', 'warn', ...(name === 'quorumkv-poll' ? ['--idle-poll-us', String(IDLE_POLL_US)] : [])],
    ...(sec ? { env: sec.env, clientToken: sec.token } : {}),
  });
  await cluster.start();
  const body = JSON.stringify({ value });
  return {
    name,
    targets: cluster.nodes.map((n) => n.address),
    pids: cluster.nodes.map((n) => n.pid as number),
    mode: { put: 'qkv-put', get: 'qkv-get' },
    ...(sec ? { wrk: { https: true, token: sec.token } } : {}),
    fill: () =>
      fillKeys(
        (i) =>
          (cluster.nodes[i % 3] as (typeof cluster.nodes)[0]).fetch(`/kv/bench:${i}`, {
            method: 'PUT',
            headers: { 'content-type': 'application/json' },
            body,
          }) as unknown as Promise<Response>,
      ),
    async internode() {
      let frames = 0;
      let flushes = 0;
      for (const n of cluster.nodes) {
        const text = await (await n.fetch('/metrics')).text();
        // NaN when the node has no such counter (a build from before the internode protocol)
        const sum = (name: string) =>
          text
            .split('\n')
            .filter((l) => l.startsWith(name))
            .reduce((a, l) => a + Number(l.slice(l.lastIndexOf(' ') + 1)), text.includes(name) ? 0 : Number.NaN);
        frames += sum('quorumkv_internode_frames_sent_total');
        flushes += sum('quorumkv_internode_socket_writes_total');
      }
      return { frames, flushes };
    },
    async stop() {
      await cluster.stopAll('SIGTERM');
      rmSync(dataRoot, { recursive: true, force: true });
    },
  };
}

async function startEtcd(binary: string): Promise<SystemUnderTest> {
  const dataRoot = mkdtempSync(path.join(os.tmpdir(), 'etcd-bench-'));
  const cluster = await EtcdCluster.start(binary, dataRoot);
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const v64 = b64(value);
  return {
    name: 'etcd',
    targets: cluster.members.map((m) => m.clientAddress),
    pids: cluster.pids,
    mode: { put: 'etcd-put', get: 'etcd-get' },
    fill: () =>
      fillKeys((i) =>
        fetch(`http://${(cluster.members[i % 3] as (typeof cluster.members)[0]).clientAddress}/v3/kv/put`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ key: b64(`bench:${i}`), value: v64 }),
        }),
      ),
    async stop() {
      await cluster.stop();
      rmSync(dataRoot, { recursive: true, force: true });
    },
  };
}

async function measure(wrk: string, sut: SystemUnderTest): Promise<RoundResult> {
  const load = (mode: WrkMode, targets: string[], connections: number, seconds = SECONDS) =>
    runWrk(wrk, { mode, targets, connections, seconds, keys: KEYS, valueBytes: VALUE_BYTES, ...(sut.wrk ?? {}) });
  await load(sut.mode.put, sut.targets, CONNECTIONS, WARMUP_SECONDS);
  const rss = rssSampler(sut.pids);

  const c0 = sumCounters(sut.pids);
  const i0 = await sut.internode?.();
  const write64 = await load(sut.mode.put, sut.targets, CONNECTIONS);
  const c1 = sumCounters(sut.pids);
  const i1 = await sut.internode?.();
  await sut.fill();
  const c2 = sumCounters(sut.pids);
  const read64 = await load(sut.mode.get, sut.targets, CONNECTIONS);
  const c3 = sumCounters(sut.pids);
  const peak = rss.stop();
  const c4 = sumCounters(sut.pids);
  const write1 = await load(sut.mode.put, sut.targets.slice(0, 1), 1);
  const c5 = sumCounters(sut.pids);
  const read1 = await load(sut.mode.get, sut.targets.slice(0, 1), 1);
  const c6 = sumCounters(sut.pids);

  const writes = write64.requests;
  const reads = read64.requests;
  return {
    write64,
    read64,
    write1,
    read1,
    cpuUsPerWrite: ((c1.cpuS - c0.cpuS) * 1e6) / writes,
    cpuUsPerRead: ((c3.cpuS - c2.cpuS) * 1e6) / reads,
    syscallsPerWrite: (c1.syscalls - c0.syscalls) / writes,
    syscallsPerRead: (c3.syscalls - c2.syscalls) / reads,
    cpuUsPerWrite1: ((c5.cpuS - c4.cpuS) * 1e6) / write1.requests,
    cpuUsPerRead1: ((c6.cpuS - c5.cpuS) * 1e6) / read1.requests,
    peakRssMb: peak.map((b) => b / 2 ** 20),
    ...(i0 && i1 ? { framesPerWrite: (i1.frames - i0.frames) / writes, flushesPerWrite: (i1.flushes - i0.flushes) / writes } : {}),
  };
}

/** The floor's round: the one-connection phases only, on the first member, after a warm-up at one connection. */
interface FloorResult {
  write1: WrkResult;
  read1: WrkResult;
}

async function measureFloor(wrk: string): Promise<FloorResult> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'floor-bench-'));
  const floor = await FloorCluster.start(dir);
  try {
    const load = (mode: WrkMode, seconds = SECONDS) =>
      runWrk(wrk, { mode, targets: floor.targets.slice(0, 1), connections: 1, seconds, keys: KEYS, valueBytes: VALUE_BYTES });
    await load('qkv-put', WARMUP_SECONDS);
    const write1 = await load('qkv-put');
    const body = JSON.stringify({ value });
    await fillKeys((i) =>
      fetch(`http://${floor.targets[i % 3]}/kv/bench:${i}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body }),
    );
    const read1 = await load('qkv-get');
    return { write1, read1 };
  } finally {
    await floor.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A row of a results table: its label, what it reads from a round, its decimals. */
type Row = [string, (r: RoundResult) => number, number];

function errorsOf(r: WrkResult): number {
  const e = r.errors;
  return e.connect + e.read + e.write + e.status + e.timeout;
}

function describe(name: string, r: RoundResult): string {
  const p = (label: string, x: WrkResult) =>
    `  ${label.padEnd(12)} ${x.opsPerSec.toFixed(0).padStart(7)}/s  p50 ${x.p50Ms.toFixed(2)} ms  p99 ${x.p99Ms.toFixed(2)} ms  errors ${errorsOf(x)}`;
  return [
    `${name}:`,
    p('write x64', r.write64),
    p('read x64', r.read64),
    p('write x1', r.write1),
    p('read x1', r.read1),
    `  cpu/write ${r.cpuUsPerWrite.toFixed(0)} us, cpu/read ${r.cpuUsPerRead.toFixed(0)} us, syscalls/write ${r.syscallsPerWrite.toFixed(1)}, ` +
      `peak RSS ${r.peakRssMb.map((m) => m.toFixed(0)).join('/')} MB` +
      (r.framesPerWrite !== undefined
        ? `, frames/write ${r.framesPerWrite.toFixed(2)}, socket writes/write ${r.flushesPerWrite?.toFixed(2)}`
        : ''),
  ].join('\n');
}

async function main(): Promise<void> {
  const wrk = findWrk();
  if (!wrk) {
    console.error('npm run bench needs wrk, the load generator (Debian: apt-get install wrk); it installs nothing itself.');
    process.exit(2);
  }
  const etcdBinary = only('etcd') ? findEtcd() : undefined;
  if (!etcdBinary && only('etcd')) {
    console.log('etcd is not installed (Debian: apt-get install etcd-server): measuring quorumkv alone, with no comparison.');
  }
  const systems = SYSTEMS.filter((s) => only(s) && (s !== 'etcd' || etcdBinary));
  console.log(
    `bench: ${ROUNDS} rounds of ${systems.join(' and ')}; ${CONNECTIONS} connections; ${KEYS} keys; ${VALUE_BYTES}-byte values; ${SECONDS} s per phase`,
  );
  // the floor's rounds are kept apart (one-connection phases only): its list here stays empty
  const results: Record<SystemName, RoundResult[]> = { quorumkv: [], 'quorumkv-tls': [], 'quorumkv-poll': [], etcd: [], floor: [] };
  const floorRounds: FloorResult[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? systems : [...systems].reverse();
    for (const name of order) {
      if (name === 'floor') {
        const f = await measureFloor(wrk);
        floorRounds.push(f);
        console.log(
          `round ${round + 1}/${ROUNDS} floor:\n  write x1 p50 ${f.write1.p50Ms.toFixed(2)} ms  errors ${errorsOf(f.write1)}\n` +
            `  read x1 p50 ${f.read1.p50Ms.toFixed(2)} ms  errors ${errorsOf(f.read1)}`,
        );
        continue;
      }
      const sut = name === 'etcd' ? await startEtcd(etcdBinary as string) : await startQuorumkv(name);
      try {
        const r = await measure(wrk, sut);
        results[name].push(r);
        console.log(`round ${round + 1}/${ROUNDS} ${describe(name, r)}`);
      } finally {
        await sut.stop();
      }
    }
  }

  const m = (name: SystemName, pick: (r: RoundResult) => number) => median(results[name].map(pick));
  const has = (name: SystemName) => results[name].length > 0;
  const fmt = (x: number, digits = 0) =>
    Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : 'n/a';
  const rows: Row[] = [
    ['writes/s, 64 connections', (r) => r.write64.opsPerSec, 0],
    ['write p50 ms, 64 connections', (r) => r.write64.p50Ms, 2],
    ['write p99 ms, 64 connections', (r) => r.write64.p99Ms, 2],
    ['reads/s, 64 connections', (r) => r.read64.opsPerSec, 0],
    ['read p50 ms, 64 connections', (r) => r.read64.p50Ms, 2],
    ['read p99 ms, 64 connections', (r) => r.read64.p99Ms, 2],
    ['write p50 ms, 1 connection', (r) => r.write1.p50Ms, 2],
    ['write p99 ms, 1 connection', (r) => r.write1.p99Ms, 2],
    ['read p50 ms, 1 connection', (r) => r.read1.p50Ms, 2],
    ['read p99 ms, 1 connection', (r) => r.read1.p99Ms, 2],
    ['CPU µs per write (all members)', (r) => r.cpuUsPerWrite, 0],
    ['CPU µs per read (all members)', (r) => r.cpuUsPerRead, 0],
    ['read/write syscalls per write (all members)', (r) => r.syscallsPerWrite, 1],
    ['read/write syscalls per read (all members)', (r) => r.syscallsPerRead, 1],
    ['peak RSS per member, MB (largest)', (r) => Math.max(...r.peakRssMb), 0],
  ];
  const both = has('quorumkv') && has('etcd');
  const header = both ? '| | etcd | quorumkv | quorumkv / etcd |\n|---|---:|---:|---:|' : `| | ${systems[0]} |\n|---|---:|`;
  const lines = rows.map(([label, pick, digits]) => {
    if (!both) return `| ${label} | ${fmt(m(systems[0] as SystemName, pick), digits)} |`;
    const e = m('etcd', pick);
    const q = m('quorumkv', pick);
    return `| ${label} | ${fmt(e, digits)} | ${fmt(q, digits)} | ${fmt(q / e, 2)} |`;
  });
  if (has('quorumkv')) {
    const fr = m('quorumkv', (r) => r.framesPerWrite ?? Number.NaN);
    const fl = m('quorumkv', (r) => r.flushesPerWrite ?? Number.NaN);
    lines.push(
      both
        ? `| internode frames per client write (all members) | | ${fmt(fr, 2)} | |`
        : `| internode frames per client write (all members) | ${fmt(fr, 2)} |`,
    );
    lines.push(
      both
        ? `| internode socket writes per client write (all members) | | ${fmt(fl, 2)} | |`
        : `| internode socket writes per client write (all members) | ${fmt(fl, 2)} |`,
    );
    // frames per flush: how many frames one socket write carries on average
    lines.push(
      both
        ? `| internode frames per socket write | | ${fmt(fr / fl, 1)} | |`
        : `| internode frames per socket write | ${fmt(fr / fl, 1)} |`,
    );
  }
  const table = `${header}\n${lines.join('\n')}`;
  /** Two quorumkv builds of this run side by side: medians of `a`, of `b`, and b / a. */
  const versus = (a: SystemName, b: SystemName, heads: [string, string, string], of: ReadonlyArray<Row>) =>
    `| | ${heads.join(' | ')} |\n|---|---:|---:|---:|\n${of
      .map(([label, pick, digits]) => {
        const x = m(a, pick);
        const y = m(b, pick);
        return `| ${label} | ${fmt(x, digits)} | ${fmt(y, digits)} | ${fmt(y / x, 2)} |`;
      })
      .join('\n')}`;

  const verdicts: string[] = [];
  if (both) {
    const ratio = (pick: (r: RoundResult) => number) => m('quorumkv', pick) / m('etcd', pick);
    const check = (ok: boolean, text: string) => verdicts.push(`- ${ok ? 'met' : 'NOT met'}: ${text}`);
    const w = ratio((r) => r.write64.opsPerSec);
    const rd = ratio((r) => r.read64.opsPerSec);
    check(w >= 1.5, `quorum writes/s ≥ 1.5 × etcd puts/s (${fmt(w, 2)} ×)`);
    check(rd >= 1.5, `quorum reads/s ≥ 1.5 × etcd serializable reads/s (${fmt(rd, 2)} ×)`);
    check(
      m('quorumkv', (r) => r.write64.p99Ms) <= m('etcd', (r) => r.write64.p99Ms),
      `write p99 ≤ etcd's (${fmt(
        m('quorumkv', (r) => r.write64.p99Ms),
        2,
      )} ms vs ${fmt(
        m('etcd', (r) => r.write64.p99Ms),
        2,
      )} ms)`,
    );
    check(
      m('quorumkv', (r) => r.read64.p99Ms) <= m('etcd', (r) => r.read64.p99Ms),
      `read p99 ≤ etcd's (${fmt(
        m('quorumkv', (r) => r.read64.p99Ms),
        2,
      )} ms vs ${fmt(
        m('etcd', (r) => r.read64.p99Ms),
        2,
      )} ms)`,
    );
  }
  if (has('quorumkv')) {
    const w1 = m('quorumkv', (r) => r.write1.p50Ms);
    const r1 = m('quorumkv', (r) => r.read1.p50Ms);
    verdicts.push(`- ${w1 <= 1 ? 'met' : 'NOT met'}: one connection, write p50 ≤ 1.0 ms (${fmt(w1, 2)} ms)`);
    verdicts.push(`- ${r1 <= 0.5 ? 'met' : 'NOT met'}: one connection, read p50 ≤ 0.5 ms (${fmt(r1, 2)} ms)`);
  }
  if (floorRounds.length > 0) {
    const fw = median(floorRounds.map((f) => f.write1.p50Ms));
    const fr = median(floorRounds.map((f) => f.read1.p50Ms));
    const beside = has('quorumkv')
      ? `; quorumkv's are ${fmt(m('quorumkv', (r) => r.write1.p50Ms) - fw, 2)} and ${fmt(m('quorumkv', (r) => r.read1.p50Ms) - fr, 2)} ms above it`
      : '';
    verdicts.push(
      `- the floor of this run (bare processes doing only a quorum write's or read's HTTP, frames and O_DSYNC writes): ` +
        `one connection, write p50 ${fmt(fw, 2)} ms, read p50 ${fmt(fr, 2)} ms${beside}`,
    );
  }
  if (has('quorumkv-poll')) {
    const w1 = m('quorumkv-poll', (r) => r.write1.p50Ms);
    const r1 = m('quorumkv-poll', (r) => r.read1.p50Ms);
    const flag = `with --idle-poll-us ${IDLE_POLL_US}`;
    verdicts.push(`- ${w1 <= 1 ? 'met' : 'NOT met'} ${flag}: one connection, write p50 ≤ 1.0 ms (${fmt(w1, 2)} ms)`);
    verdicts.push(`- ${r1 <= 0.5 ? 'met' : 'NOT met'} ${flag}: one connection, read p50 ≤ 0.5 ms (${fmt(r1, 2)} ms)`);
  }
  const rounds = systems
    .filter((name) => name !== 'floor')
    .map(
      (name) =>
        `${name}, each round: writes/s ${results[name].map((r) => r.write64.opsPerSec.toFixed(0)).join(', ')}; ` +
        `reads/s ${results[name].map((r) => r.read64.opsPerSec.toFixed(0)).join(', ')}; ` +
        `errors ${results[name].map((r) => errorsOf(r.write64) + errorsOf(r.read64) + errorsOf(r.write1) + errorsOf(r.read1)).join(', ')}; ` +
        `peak RSS MB ${results[name].map((r) => r.peakRssMb.map((x) => x.toFixed(0)).join('/')).join(', ')}`,
    )
    .concat(
      floorRounds.length === 0
        ? []
        : [
            `floor, each round: one connection, write p50 ms ${floorRounds.map((f) => f.write1.p50Ms.toFixed(2)).join(', ')}; ` +
              `read p50 ms ${floorRounds.map((f) => f.read1.p50Ms.toFixed(2)).join(', ')}; ` +
              `errors ${floorRounds.map((f) => errorsOf(f.write1) + errorsOf(f.read1)).join(', ')}`,
          ],
    )
    .map((l) => `- ${l}`)
    .join('\n');
  console.log(`\nmedians over ${ROUNDS} rounds\n${table}\n\n${verdicts.join('\n')}\n\n${rounds}`);

  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  const section = `## quorumkv and etcd side by side, 3 members each on loopback

- When: ${new Date().toISOString()}
- Machine: ${os.cpus().length} x ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}
- Load: wrk, one thread per member, ${CONNECTIONS} connections spread over the members (1 connection
  to the first member for the single-client rows), ${VALUE_BYTES}-byte values over ${KEYS} random keys, ${SECONDS} s per
  phase after a ${WARMUP_SECONDS} s warm-up; ${ROUNDS} rounds, each on fresh clusters, alternating which system goes first;
  medians across rounds. The load generator and all six members share this machine's cores.
- quorumkv: N=3, W=2, R=2 through \`/kv/<key>\`; a write is synced to disk on W replicas before its ack.
- etcd ${systems.includes('etcd') ? '3.4 (Debian etcd-server)' : '(not installed: no comparison)'}: its JSON gateway, \`POST /v3/kv/put\`, and
  \`POST /v3/kv/range\` with \`"serializable": true\`.
- CPU and system calls: user + system time and read/write-class system calls (/proc/<pid>/io) of
  every member during the 64-connection phase, divided by the requests it completed.${
    floorRounds.length > 0
      ? `
- Floor: \`scripts/lib/quorum-floor.ts\`, three bare processes started fresh in each round, through the same
  one-connection phases (a write: HTTP in, a frame to each peer, an O_DSYNC write on each, the reply after two;
  a read: its own copy and one peer's). What any N=3, W=2 write costs on this machine in this run.`
      : ''
  }

${table}

${verdicts.join('\n')}

${rounds}
`;
  if (has('quorumkv') || has('etcd')) console.log(`\nwritten to ${writeBenchmarkSection('quorum', section)}`);
  if (has('quorumkv') && has('quorumkv-tls')) {
    const tlsTable = versus('quorumkv', 'quorumkv-tls', ['plain (default)', 'TLS + tokens', 'TLS + tokens / plain'], rows.slice(0, 12));
    console.log(`\nplain against TLS + tokens, medians over ${ROUNDS} rounds\n${tlsTable}`);
    const tlsSection = `## What security costs: plain against HTTPS, mutual TLS and client tokens

- When: ${new Date().toISOString()}, the same run as the section above (same rounds, alternating order).
- Machine: ${os.cpus().length} x ${cpu}, Node ${process.version}.
- plain: the nodes as \`npm start\` runs them (HTTP, no tokens). TLS + tokens: \`--tls all\` (HTTPS on the
  API port, mutual TLS between members; EC P-256 certificates from one CA) and \`--tokens-file\` (wrk
  sends a write token over https, keep-alive connections as before; wrk does not verify the certificate).
- Load as above: wrk, ${CONNECTIONS} connections over the three members, ${VALUE_BYTES}-byte values over ${KEYS} keys, ${SECONDS} s per phase.

${tlsTable}
`;
    console.log(`written to ${writeBenchmarkSection('tls', tlsSection)}`);
  }
  if (has('quorumkv') && has('quorumkv-poll')) {
    const pollTable = versus(
      'quorumkv',
      'quorumkv-poll',
      ['off (default)', `--idle-poll-us ${IDLE_POLL_US}`, 'on / off'],
      [
        ...rows.slice(0, 10),
        ['CPU µs per write, 64 connections (all members)', (r) => r.cpuUsPerWrite, 0],
        ['CPU µs per read, 64 connections (all members)', (r) => r.cpuUsPerRead, 0],
        ['CPU µs per write, 1 connection (all members)', (r) => r.cpuUsPerWrite1, 0],
        ['CPU µs per read, 1 connection (all members)', (r) => r.cpuUsPerRead1, 0],
      ],
    );
    console.log(`\nidle polling off against on, medians over ${ROUNDS} rounds\n${pollTable}`);
    const pollSection = `## What idle polling buys a single client, and what it costs

- When: ${new Date().toISOString()}, the same run as the first section (same rounds, alternating order).
- Machine: ${os.cpus().length} x ${cpu}, Node ${process.version}, ${os.platform()} ${os.release()}.
- off: the nodes as \`npm start\` runs them. on: \`--idle-poll-us ${IDLE_POLL_US}\` (a thread at nice 19 keeps one CPU busy
  for ${IDLE_POLL_US} µs after each client request or internode frame, and stands down while the node is busy;
  src/net/idle-poll.ts). CPU counts every thread.
- Load as above.

${pollTable}
`;
    console.log(`written to ${writeBenchmarkSection('idle-poll', pollSection)}`);
  }
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
