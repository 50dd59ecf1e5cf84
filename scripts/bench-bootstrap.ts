// `npm run bench:bootstrap`: how long a new member takes to join a cluster that holds a lot of data.
//
// Three nodes (N = 3) start on data directories preloaded with the same K records (100-byte
// values), as an existing cluster; a fourth starts with an empty directory and joins: it streams
// every range it will own (about 3/4 of the keys with 4 members and N = 3) before it is normal.
// Measured: from the fourth process's start to its status `normal`, records and bytes streamed.
// Reference, in the same run: loading the same number of records into an empty store in process
// (LMDB puts, many in flight: the storage's own speed), so the ratio says what streaming costs on
// top of writing. Several runs; medians. Bounded: each join is given --timeout-s.
//
//   node dist/scripts/bench-bootstrap.js [--keys 1500000] [--runs 3] [--timeout-s 300]

import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { liveRecord } from '../src/core/record';
import { LmdbStore } from '../src/storage/lmdb-store';
import { writeBenchmarkSection } from './lib/bench-doc';
import { LocalCluster } from './lib/local-cluster';

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const KEYS = option('keys', 1_500_000);
const RUNS = option('runs', 3);
const TIMEOUT_MS = option('timeout-s', 300) * 1000;
const VALUE = 'v'.repeat(100);
const HOSTS = ['127.31.0.1', '127.31.0.2', '127.31.0.3', '127.31.0.4'];
const PORT = 7400;

/** Puts `count` records into an empty store, many in flight; returns the seconds it took. */
async function load(dir: string, count: number): Promise<number> {
  const store = LmdbStore.open({ path: dir });
  const t = performance.now();
  const wallMs = Date.now();
  const batch = 10_000;
  for (let i = 0; i < count; i += batch) {
    const puts: Array<Promise<void>> = [];
    for (let j = i; j < Math.min(count, i + batch); j++) {
      puts.push(store.put(`user:${j}`, liveRecord(VALUE, { wallMs, counter: j % 65536, nodeId: 'n1' })));
    }
    await Promise.all(puts);
  }
  await store.flushed();
  const seconds = (performance.now() - t) / 1000;
  await store.close();
  return seconds;
}

/** Makes a copy of the preloaded directory the volume of member `i` of a three-member cluster. */
async function member(base: string, dir: string, i: number): Promise<void> {
  cpSync(base, dir, { recursive: true });
  const store = LmdbStore.open({ path: dir });
  const id = `n${i + 1}`;
  await store.putMeta('node', { id, generation: 1, status: 'normal', memberSince: 1 });
  await store.putMeta(
    'members',
    [0, 1, 2].filter((k) => k !== i).map((k) => ({ id: `n${k + 1}`, address: `${HOSTS[k]}:${PORT}`, generation: 1, status: 'normal' })),
  );
  await store.close();
}

interface Run {
  seconds: number;
  records: number;
  bytes: number;
  ranges: number;
}

async function once(base: string, run: number): Promise<Run> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'qkv-bootstrap-'));
  const cluster = LocalCluster.create({
    hosts: HOSTS.slice(0, 3),
    port: PORT,
    dataRoot: root,
    args: ['--log-level', 'warn', '--anti-entropy-interval-ms', '3600000'],
  });
  try {
    for (const [i, n] of cluster.nodes.entries()) await member(base, n.spec.dataDir, i);
    await cluster.start();
    const n4 = cluster.addNode(HOSTS[3] as string, root);
    const t = performance.now();
    await n4.start();
    for (;;) {
      const move = (await (await fetch(`${n4.url}/admin/move`)).json()) as {
        status: string;
        move: { records_streamed: number; bytes_streamed: number; ranges_total: number; phase: string } | null;
      };
      if (move.status === 'normal' && move.move?.phase === 'done') {
        const seconds = (performance.now() - t) / 1000;
        const r = { seconds, records: move.move.records_streamed, bytes: move.move.bytes_streamed, ranges: move.move.ranges_total };
        console.log(
          `run ${run}: joined in ${seconds.toFixed(1)} s, ${r.records} records (${(r.bytes / 1e6).toFixed(0)} MB) over ${r.ranges} ranges`,
        );
        return r;
      }
      if (performance.now() - t > TIMEOUT_MS)
        throw new Error(`run ${run}: not joined after ${TIMEOUT_MS / 1000} s: ${JSON.stringify(move)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await cluster.stopAll('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function main(): Promise<void> {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'qkv-bootstrap-base-'));
  try {
    const base = path.join(scratch, 'base');
    console.log(`preloading ${KEYS} records (the reference: in-process LMDB puts, many in flight)...`);
    const referenceSeconds: number[] = [];
    const runs: Run[] = [];
    for (let run = 1; run <= RUNS; run++) {
      rmSync(base, { recursive: true, force: true });
      const s = await load(base, KEYS);
      referenceSeconds.push(s);
      console.log(`run ${run}: reference load ${s.toFixed(1)} s (${Math.round(KEYS / s)} records/s)`);
      runs.push(await once(base, run));
    }
    const t = median(runs.map((r) => r.seconds));
    const ref = median(referenceSeconds);
    const received = median(runs.map((r) => r.records));
    const refPerRecord = ref / KEYS;
    const section = [
      '## Bootstrap: a fourth node joins a cluster holding data',
      '',
      `- When: ${new Date().toISOString()}`,
      `- Machine: ${os.cpus().length} x ${os.cpus()[0]?.model.split(' ').slice(0, 2).join(' ')}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
      `- Data: ${KEYS} keys with 100-byte values on each of 3 members (N = 3); the fourth, empty, joins and streams`,
      '  every range it will own from the replica that gives it up, then turns normal. Time from its process start.',
      `- Reference, same run: loading ${KEYS} records into an empty store in process (LMDB, puts in flight).`,
      `- ${RUNS} runs; medians.`,
      '',
      '| | median | each run |',
      '|---|---:|---|',
      `| time to normal | ${t.toFixed(1)} s | ${runs.map((r) => r.seconds.toFixed(1)).join(', ')} |`,
      `| records received | ${received} | ${runs.map((r) => r.records).join(', ')} |`,
      `| records/s | ${Math.round(received / t)} | ${runs.map((r) => Math.round(r.records / r.seconds)).join(', ')} |`,
      `| MB streamed | ${(median(runs.map((r) => r.bytes)) / 1e6).toFixed(0)} | ${runs.map((r) => (r.bytes / 1e6).toFixed(0)).join(', ')} |`,
      `| reference: local load of ${KEYS} records | ${ref.toFixed(1)} s | ${referenceSeconds.map((s) => s.toFixed(1)).join(', ')} |`,
      `| join time / local load time of the same records | ${(t / (refPerRecord * received)).toFixed(2)} | |`,
      '',
      `Goal: a node that must receive 1 M keys is normal within 60 s. Median here: ${received} records in ${t.toFixed(1)} s.`,
    ].join('\n');
    writeBenchmarkSection('bootstrap', section);
    console.log(`\n${section}`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
