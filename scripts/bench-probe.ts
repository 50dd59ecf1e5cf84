// `npm run bench:probe`: what one exec probe costs, next to what starting Node costs at all.
//
// kubelet runs every probe as a new process, in every pod, every few seconds: its cost is mostly
// Node's start plus the modules it loads. One real node runs (N = 1, so readiness passes); then,
// round after round, each of these runs once, in an order that rotates every round:
//   - `node -e 0`: the floor, Node starting and exiting;
//   - `node dist/src/cli/probe.js readiness` (the `quorumkv-probe` binary the manifests' probes run);
//   - `node dist/src/cli/main.js health readiness`: `quorumkv health`, the full CLI (commander,
//     axios, config), which the probes ran before.
// Each run's CPU time (user + system) and peak RSS come from the kernel's wait4() rusage of that
// one child, read by a small python3 wrapper (os.posix_spawn + os.wait4: microsecond CPU times, not
// /usr/bin/time's 10 ms). Node cannot read a child's rusage itself, and the wrapper's own cost is
// not in it. Medians over the rounds, and their ratios to `node -e 0`. The goal: a probe costs at
// most 1.3x `node -e 0` in CPU time and in RSS.
// Then the deadline: the node is stopped (SIGSTOP, a hung process) and the probe runs with its
// default --timeout-ms (2000) a few times; its wall time, start-up included, must stay inside the
// manifests' timeoutSeconds (3 s). Figures go to docs/BENCHMARKS.md (section `probe`).
//
// CPU time is what is measured, so run it on a quiet machine: the load average at the start and the
// end is written next to the figures.
//
//   node dist/scripts/bench-probe.js [--runs 30] [--hung-runs 3]

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeBenchmarkSection } from './lib/bench-doc';
import { LocalNode, repoRoot } from './lib/local-cluster';

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const RUNS = option('runs', 30);
const HUNG_RUNS = option('hung-runs', 3);
const HOST = '127.33.0.1';
const PORT = 7500;
/** kubelet's timeoutSeconds for every probe in the manifests. */
const PROBE_TIMEOUT_S = 3;
/** No single run may take longer (a run that does is an error, not a figure). */
const RUN_LIMIT_MS = 10_000;

/** Spawns argv[0] with argv, waits for it with wait4(), writes its rusage as JSON to the file argv names. */
const WRAPPER = `
import json, os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
t = time.monotonic()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, ru = os.wait4(pid, 0)
with open(out, "w") as f:
    json.dump({"exit": os.waitstatus_to_exitcode(status), "wall_s": time.monotonic() - t,
               "cpu_s": ru.ru_utime + ru.ru_stime, "maxrss_kb": ru.ru_maxrss}, f)
`;

interface Sample {
  exit: number;
  wallS: number;
  cpuS: number;
  rssMb: number;
  stdout: string;
}

function measure(argv: string[], scratch: string): Sample {
  const out = path.join(scratch, 'rusage.json');
  rmSync(out, { force: true });
  const r = spawnSync('python3', ['-c', WRAPPER, out, ...argv], { encoding: 'utf8', timeout: RUN_LIMIT_MS });
  if (r.error) throw new Error(`${argv.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`the rusage wrapper failed (exit ${r.status}): ${r.stderr}`);
  const u = JSON.parse(readFileSync(out, 'utf8')) as { exit: number; wall_s: number; cpu_s: number; maxrss_kb: number };
  return { exit: u.exit, wallS: u.wall_s, cpuS: u.cpu_s, rssMb: u.maxrss_kb / 1024, stdout: r.stdout.trim() };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};
const loadavg = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(', ');

async function main(): Promise<void> {
  if (spawnSync('python3', ['--version']).status !== 0) throw new Error('python3 is needed to read a child process rusage (wait4)');
  const root = repoRoot();
  const probeJs = path.join(root, 'dist', 'src', 'cli', 'probe.js');
  const mainJs = path.join(root, 'dist', 'src', 'cli', 'main.js');
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'qkv-bench-probe-'));
  const node = new LocalNode({
    id: 'n1',
    host: HOST,
    port: PORT,
    dataDir: path.join(scratch, 'n1'),
    seeds: [],
    args: ['--replication-factor', '1', '--log-level', 'warn'],
  });
  const loadBefore = loadavg();
  try {
    await node.start();
    const url = node.url;
    const commands = [
      { name: '`node -e 0` (reference)', argv: [process.execPath, '-e', '0'], expect: '' },
      { name: '`quorumkv-probe readiness`', argv: [process.execPath, probeJs, 'readiness', '--url', url], expect: 'readiness: ready' },
      {
        name: '`quorumkv health readiness` (full CLI, before)',
        argv: [process.execPath, mainJs, 'health', 'readiness', '--url', url],
        expect: 'readiness: ready',
      },
    ];
    // one warm-up round (file cache), not counted
    for (const c of commands) measure(c.argv, scratch);
    const samples: Sample[][] = commands.map(() => []);
    for (let round = 0; round < RUNS; round++) {
      for (let k = 0; k < commands.length; k++) {
        const i = (round + k) % commands.length;
        const c = commands[i] as (typeof commands)[number];
        const s = measure(c.argv, scratch);
        if (s.exit !== 0 || !s.stdout.startsWith(c.expect))
          throw new Error(`${c.name}: exit ${s.exit}, printed ${JSON.stringify(s.stdout)}`);
        samples[i]?.push(s);
      }
    }
    const stats = commands.map((c, i) => {
      const xs = samples[i] as Sample[];
      return {
        name: c.name,
        cpuS: median(xs.map((s) => s.cpuS)),
        rssMb: median(xs.map((s) => s.rssMb)),
        wallS: median(xs.map((s) => s.wallS)),
        cpuRange: [Math.min(...xs.map((s) => s.cpuS)), Math.max(...xs.map((s) => s.cpuS))],
      };
    });
    const ref = stats[0] as (typeof stats)[number];
    const probe = stats[1] as (typeof stats)[number];
    const full = stats[2] as (typeof stats)[number];

    // the deadline: a hung node (SIGSTOP) and the probe with its default --timeout-ms
    node.pause();
    const hung: Sample[] = [];
    try {
      for (let i = 0; i < HUNG_RUNS; i++) {
        const s = measure([process.execPath, probeJs, 'liveness', '--url', url], scratch);
        if (s.exit !== 1 || !s.stdout.includes('no answer within 2000 ms'))
          throw new Error(`hung node: exit ${s.exit}, printed ${s.stdout}`);
        hung.push(s);
      }
    } finally {
      node.resume();
    }
    const hungMax = Math.max(...hung.map((s) => s.wallS));
    const loadAfter = loadavg();

    const ms = (s: number) => `${(s * 1000).toFixed(0)} ms`;
    const row = (s: (typeof stats)[number]) =>
      `| ${s.name} | ${ms(s.cpuS)} | ${ms(s.cpuRange[0] as number)}–${ms(s.cpuRange[1] as number)} | ${(s.cpuS / ref.cpuS).toFixed(2)} | ` +
      `${s.rssMb.toFixed(1)} MB | ${(s.rssMb / ref.rssMb).toFixed(2)} | ${ms(s.wallS)} |`;
    const cpuOk = probe.cpuS <= 1.3 * ref.cpuS;
    const rssOk = probe.rssMb <= 1.3 * ref.rssMb;
    const section = [
      '## Probe: what one exec probe costs',
      '',
      `- When: ${new Date().toISOString()}; load average (1, 5, 15 min) ${loadBefore} at the start, ${loadAfter} at the end`,
      `- Machine: ${os.cpus().length} x ${os.cpus()[0]?.model.split(' ').slice(0, 2).join(' ')}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
      '- One node (N = 1, so readiness passes); each command run once per round, the order rotating, after one',
      `  uncounted warm-up round; ${RUNS} rounds; medians. CPU time is user + system from the kernel's wait4()`,
      '  rusage of each child (a python3 wrapper, os.posix_spawn + os.wait4), peak RSS from the same rusage.',
      '',
      '| command | CPU time | CPU min–max | CPU vs `node -e 0` | peak RSS | RSS vs `node -e 0` | wall |',
      '|---|---:|---:|---:|---:|---:|---:|',
      ...stats.map(row),
      '',
      `Goal: a probe costs at most 1.3x \`node -e 0\` in CPU time and in RSS: ${cpuOk && rssOk ? 'met' : 'NOT met'} here ` +
        `(CPU ${(probe.cpuS / ref.cpuS).toFixed(2)}x, RSS ${(probe.rssMb / ref.rssMb).toFixed(2)}x). ` +
        `Against the full CLI it is ${(probe.cpuS / full.cpuS).toFixed(2)}x the CPU time and ${(probe.rssMb / full.rssMb).toFixed(2)}x the RSS.`,
      '',
      `Deadline: against a hung node (SIGSTOP) the probe fails with "no answer within 2000 ms" after at most ${ms(hungMax)}`,
      `of wall time, Node's start included (${HUNG_RUNS} runs: ${hung.map((s) => ms(s.wallS)).join(', ')}), inside kubelet's`,
      `timeoutSeconds of ${PROBE_TIMEOUT_S} s.`,
    ].join('\n');
    writeBenchmarkSection('probe', section);
    console.log(`\n${section}`);
  } finally {
    await node.kill('SIGKILL');
    rmSync(scratch, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
