// `npm run bench`: a fresh 3-node cluster on loopback, 64 client connections spread over the
// nodes, 100-byte values over 10k keys: quorum writes, then quorum reads, then GET /health as a
// reference measured in the same run (the HTTP stack alone, no quorum). Several runs; medians are
// reported, and the ratio of each to the reference, because these machines are shared and noisy.
// Bounded: every phase stops after its duration. Writes the figures to docs/BENCHMARKS.md.
//
//   node dist/scripts/bench.js [--runs 3] [--seconds 10] [--connections 64] [--keys 10000]

import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Pool } from 'undici';
import { writeBenchmarkSection } from './lib/bench-doc';
import { LocalCluster } from './lib/local-cluster';

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const RUNS = option('runs', 3);
const SECONDS = option('seconds', 10);
const REFERENCE_SECONDS = Math.max(2, Math.round(SECONDS / 2));
const CONNECTIONS = option('connections', 64);
const KEYS = option('keys', 10_000);
const VALUE = 'x'.repeat(100);

interface PhaseResult {
  ops: number;
  errors: number;
  /** GETs answered 404 (a key not written yet): correct answers, counted apart. */
  misses: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** `CONNECTIONS` workers, each with one request in flight, round-robin over the nodes, for `seconds`. */
async function phase(
  pools: Pool[],
  seconds: number,
  request: (i: number) => { method: 'GET' | 'PUT'; path: string; body?: string },
): Promise<PhaseResult> {
  const latencies: number[] = [];
  let errors = 0;
  let misses = 0;
  let counter = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  const worker = async (w: number) => {
    const pool = pools[w % pools.length] as Pool;
    while (performance.now() < end) {
      const i = counter++;
      const r = request(i);
      const t0 = performance.now();
      try {
        const res = await pool.request({
          method: r.method,
          path: r.path,
          headers: r.body ? { 'content-type': 'application/json' } : {},
          ...(r.body ? { body: r.body } : {}),
          headersTimeout: 10_000,
          bodyTimeout: 10_000,
        });
        await res.body.dump();
        if (res.statusCode === 404 && r.method === 'GET') misses++;
        else if (res.statusCode >= 300) errors++;
        else latencies.push(performance.now() - t0);
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, (_, w) => worker(w)));
  const elapsed = (performance.now() - start) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  return {
    ops: latencies.length,
    errors,
    misses,
    opsPerSec: latencies.length / elapsed,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
  };
}

async function fill(pools: Pool[], from: number, body: string): Promise<void> {
  let next = from;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async (_, w) => {
      const pool = pools[w % pools.length] as Pool;
      while (next < KEYS) {
        const res = await pool.request({
          method: 'PUT',
          path: `/kv/bench:${next++}`,
          headers: { 'content-type': 'application/json' },
          body,
        });
        await res.body.dump();
      }
    }),
  );
}

async function oneRun(run: number): Promise<{ write: PhaseResult; read: PhaseResult; reference: PhaseResult }> {
  const dataRoot = mkdtempSync(path.join(os.tmpdir(), 'qkv-bench-'));
  const cluster = LocalCluster.create({ host: '127.0.0.1', basePort: 18081, nodes: 3, dataRoot, args: ['--log-level', 'warn'] });
  try {
    await cluster.start();
    const pools = cluster.nodes.map((n) => new Pool(n.url, { connections: Math.ceil(CONNECTIONS / 3), pipelining: 1 }));
    const key = (i: number) => `/kv/bench:${i % KEYS}`;
    const body = JSON.stringify({ value: VALUE });
    const write = await phase(pools, SECONDS, (i) => ({ method: 'PUT', path: key(i), body }));
    // Untimed: write the keys the timed phase did not reach, so every read finds its key.
    await fill(pools, write.ops + write.errors, body);
    const read = await phase(pools, SECONDS, (i) => ({ method: 'GET', path: key(i) }));
    const reference = await phase(pools, REFERENCE_SECONDS, () => ({ method: 'GET', path: '/health' }));
    await Promise.all(pools.map((p) => p.close()));
    const fmt = (name: string, r: PhaseResult) =>
      `  ${name.padEnd(16)} ${r.opsPerSec.toFixed(0).padStart(7)} ops/s  p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  errors ${r.errors}${r.misses ? `  404s ${r.misses}` : ''}`;
    console.log(
      `run ${run + 1}/${RUNS}\n${fmt('quorum writes', write)}\n${fmt('quorum reads', read)}\n${fmt('GET /health (ref)', reference)}`,
    );
    return { write, read, reference };
  } finally {
    await cluster.stopAll('SIGTERM');
    rmSync(dataRoot, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  console.log(
    `quorumkv bench: ${RUNS} runs; ${CONNECTIONS} connections; ${KEYS} keys; 100-byte values; ${SECONDS} s writes, ${SECONDS} s reads, ${REFERENCE_SECONDS} s reference`,
  );
  const runs: Array<Awaited<ReturnType<typeof oneRun>>> = [];
  for (let r = 0; r < RUNS; r++) runs.push(await oneRun(r));

  const row = (name: string, pick: (x: (typeof runs)[0]) => PhaseResult) => {
    const ops = median(runs.map((x) => pick(x).opsPerSec));
    const ratio = median(runs.map((x) => pick(x).opsPerSec / x.reference.opsPerSec));
    const p50 = median(runs.map((x) => pick(x).p50Ms));
    const p99 = median(runs.map((x) => pick(x).p99Ms));
    const errors = runs.reduce((a, x) => a + pick(x).errors, 0);
    return { name, ops, ratio, p50, p99, errors, each: runs.map((x) => pick(x).opsPerSec.toFixed(0)).join(', ') };
  };
  const rows = [
    row('quorum writes (W=2 of 3)', (x) => x.write),
    row('quorum reads (R=2 of 3)', (x) => x.read),
    row('GET /health (reference)', (x) => x.reference),
  ];
  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  const table = [
    '| phase | median ops/s | ops/s of each run | vs reference | median p50 | median p99 | errors |',
    '|---|---:|---|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.ops.toFixed(0)} | ${r.each} | ${r.ratio.toFixed(2)} | ${r.p50.toFixed(2)} ms | ${r.p99.toFixed(2)} ms | ${r.errors} |`,
    ),
  ].join('\n');
  console.log(`\nmedians over ${RUNS} runs\n${table}`);

  const section = `## Quorum writes and reads, 3 nodes on loopback

- When: ${new Date().toISOString()}
- Machine: ${os.cpus().length} x ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}
- Load: ${CONNECTIONS} connections (one request in flight each) spread round-robin over the 3 nodes,
  100-byte values over ${KEYS} keys; ${SECONDS} s of quorum PUTs, then ${SECONDS} s of quorum GETs, then
  ${REFERENCE_SECONDS} s of \`GET /health\` as the reference (the HTTP stack alone, no quorum, same run).
  ${RUNS} runs, each on a fresh cluster; medians across runs.
- The load generator runs on the same cores as the three nodes, so these are figures for the whole
  system on one small machine, not a per-node capacity. Compare ratios between runs, not absolute
  numbers across machines: these machines are shared and noisy.

${table}

Every write is synced to disk on W=2 replicas before it is acknowledged (LMDB commit + fsync; writes
arriving in the same event-loop turn share one commit).
`;
  console.log(`\nwritten to ${writeBenchmarkSection('quorum', section)}`);
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
