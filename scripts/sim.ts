// `npm run sim`: many seeds of whole simulated clusters under faults, in parallel worker threads.
//
//   npm run sim -- --seeds 10000 [--from 1] [--workers 2] [--nodes 5] [--faults partition,crash,...]
//   npm run sim -- --seed 1234 --trace       replay one run and print its event trace
//   npm run sim -- --scenario elastic --seeds 500 [--keys 200] [--concurrent-moves]
//                                            scale 3 -> 5 -> 3, removenode, a replaced volume
//
// Prints a summary: runs, operations, faults injected, violations by checker (with the seeds and a
// replay command), convergence, and throughput (seeds and operations per minute of wall time).

import os from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { ALL_FAULTS, type FaultKind, type RunResult, runSeed, type SimOptions } from '../src/sim/simulation';
import { argReader } from './lib/args';

interface Args {
  seeds: number;
  from: number;
  workers: number;
  seed?: number;
  trace: boolean;
  json: boolean;
  base: Omit<SimOptions, 'seed'>;
}

function parseArgs(argv: string[]): Args {
  const { get, num } = argReader(argv);
  const faults = get('faults');
  const base: Omit<SimOptions, 'seed'> = {};
  if (get('nodes')) base.nodes = num('nodes', 5);
  if (get('ops')) base.opsPerClient = num('ops', 200);
  if (get('clients')) base.clients = num('clients', 4);
  if (get('keys')) base.keys = num('keys', 32);
  if (argv.includes('--concurrent-moves')) base.moveWaitMs = 0;
  const scenario = get('scenario');
  if (scenario !== undefined) {
    if (scenario !== 'steady' && scenario !== 'elastic')
      throw new Error(`--scenario must be steady or elastic, got ${JSON.stringify(scenario)}`);
    base.scenario = scenario;
    if (scenario === 'elastic' && !get('nodes')) base.nodes = 3;
  }
  if (faults !== undefined) {
    const list = faults === 'none' ? [] : faults.split(',');
    for (const f of list)
      if (!ALL_FAULTS.includes(f as FaultKind)) throw new Error(`unknown fault ${f}; known: ${ALL_FAULTS.join(', ')}, none`);
    base.faults = list as FaultKind[];
  }
  const seed = get('seed');
  return {
    seeds: num('seeds', 1000),
    from: num('from', 1),
    workers: Math.max(1, num('workers', os.availableParallelism())),
    ...(seed !== undefined ? { seed: num('seed', 1) } : {}),
    trace: argv.includes('--trace'),
    json: argv.includes('--json'),
    base,
  };
}

type Summary = Omit<RunResult, 'trace'>;

async function workerMain(): Promise<void> {
  const { seeds, base } = workerData as { seeds: number[]; base: Omit<SimOptions, 'seed'> };
  for (const seed of seeds) {
    const { trace: _trace, ...summary } = await runSeed({ ...base, seed });
    parentPort?.postMessage(summary);
  }
}

function runParallel(args: Args, onResult: (r: Summary) => void): Promise<void> {
  const all = Array.from({ length: args.seeds }, (_, i) => args.from + i);
  const workers = Math.min(args.workers, all.length);
  return Promise.all(
    Array.from({ length: workers }, (_, w) => {
      const seeds = all.filter((_, i) => i % workers === w);
      return new Promise<void>((resolve, reject) => {
        const worker = new Worker(__filename, { workerData: { seeds, base: args.base } });
        worker.on('message', onResult);
        worker.on('error', reject);
        worker.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker exited with ${code}`))));
      });
    }),
  ).then(() => undefined);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.seed !== undefined) {
    const r = await runSeed({ ...args.base, seed: args.seed, trace: args.trace });
    if (args.trace) process.stdout.write(`${r.trace.join('\n')}\n`);
    process.stdout.write(`seed ${r.seed}: ${r.ops} ops (${r.okOps} ok), faults ${JSON.stringify(r.faults)}, `);
    process.stdout.write(`convergence ${r.convergence.converged}/${r.convergence.keys}, ${r.violations.length} violations\n`);
    for (const v of r.violations) process.stdout.write(`  ${v.checker}: ${v.message}\n`);
    process.exit(r.violations.length ? 1 : 0);
  }

  const start = performance.now();
  const totals = { runs: 0, ops: 0, okOps: 0, events: 0, virtualMs: 0, keys: 0, converged: 0 };
  const faults: Record<string, number> = {};
  const byChecker: Record<string, number> = {};
  const failing: Summary[] = [];
  await runParallel(args, (r) => {
    totals.runs++;
    totals.ops += r.ops;
    totals.okOps += r.okOps;
    totals.events += r.events;
    totals.virtualMs += r.virtualMs;
    totals.keys += r.convergence.keys;
    totals.converged += r.convergence.converged;
    for (const [k, v] of Object.entries(r.faults)) faults[k] = (faults[k] ?? 0) + v;
    for (const v of r.violations) byChecker[v.checker] = (byChecker[v.checker] ?? 0) + 1;
    if (r.violations.length) failing.push(r);
  });
  const minutes = (performance.now() - start) / 60_000;
  const summary = {
    runs: totals.runs,
    ops: totals.ops,
    okOps: totals.okOps,
    faults,
    violations: byChecker,
    failingSeeds: failing.map((f) => f.seed).sort((a, b) => a - b),
    convergencePct: totals.keys ? (100 * totals.converged) / totals.keys : 100,
    seedsPerMinute: totals.runs / minutes,
    opsPerMinute: totals.ops / minutes,
    wallSeconds: minutes * 60,
    workers: Math.min(args.workers, args.seeds),
  };
  if (args.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } else {
    const lines = [
      `runs ${summary.runs} (seeds ${args.from}..${args.from + args.seeds - 1}) on ${summary.workers} workers in ${summary.wallSeconds.toFixed(1)} s`,
      `ops ${summary.ops} (${summary.okOps} answered ok)`,
      `faults injected ${Object.entries(faults)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
      `violations ${Object.keys(byChecker).length ? JSON.stringify(byChecker) : 'none'}`,
      `convergence ${summary.convergencePct.toFixed(2)}% of keys have identical replicas after heal and quiet`,
      `throughput ${summary.seedsPerMinute.toFixed(0)} seeds/min, ${summary.opsPerMinute.toFixed(0)} ops/min`,
    ];
    for (const f of failing.slice(0, 10)) {
      lines.push(`seed ${f.seed} FAILED (replay: npm run sim -- --seed ${f.seed} --trace)`);
      for (const v of f.violations.slice(0, 5)) lines.push(`  ${v.checker}: ${v.message}`);
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  process.exit(failing.length ? 1 : 0);
}

if (isMainThread) {
  main().catch((err: unknown) => {
    process.stderr.write(`sim: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  });
} else {
  void workerMain();
}
