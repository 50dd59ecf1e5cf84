// 1,000 seeds of whole clusters under mixed faults must keep every invariant. They run through
// `npm run sim` (compiled, plain node, worker threads): in jest's vm sandbox the same runs take
// twice the CPU. A failing seed is printed with its replay command. This is the suite's short
// version, sized to keep `npm test` under ten minutes on 2 cores; the campaign is `npm run sim --
// --seeds 10000` (FINDINGS.md §8).

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { repoRoot } from '../../scripts/lib/local-cluster';

const run = promisify(execFile);
const SEEDS = 1000;

test(`${SEEDS} seeds of mixed faults (partition, crash, move, pause, drop, skew) violate no invariant`, async () => {
  let stdout: string;
  try {
    ({ stdout } = await run(process.execPath, ['dist/scripts/sim.js', '--seeds', String(SEEDS), '--json', '--workers', '2'], {
      cwd: repoRoot(),
      timeout: 300_000,
      maxBuffer: 16 * 1024 * 1024,
    }));
  } catch (err) {
    // exit 1 means violations: the JSON summary is still on stdout
    stdout = (err as { stdout?: string }).stdout ?? '';
    if (!stdout) throw err;
  }
  const summary = JSON.parse(stdout) as {
    runs: number;
    ops: number;
    faults: Record<string, number>;
    violations: Record<string, number>;
    failingSeeds: number[];
    convergencePct: number;
    seedsPerMinute: number;
    opsPerMinute: number;
  };
  console.log(
    `${summary.runs} seeds, ${summary.ops} ops, faults ${JSON.stringify(summary.faults)}, ` +
      `convergence ${summary.convergencePct.toFixed(2)}%, ${summary.seedsPerMinute.toFixed(0)} seeds/min, ${summary.opsPerMinute.toFixed(0)} ops/min`,
  );
  const replay = summary.failingSeeds.slice(0, 5).map((s) => `npm run sim -- --seed ${s} --trace`);
  expect({ violations: summary.violations, replay }).toEqual({ violations: {}, replay: [] });
  expect(summary.runs).toBe(SEEDS);
  // with hinted handoff, read repair and anti-entropy every replica of every key converges
  expect(summary.convergencePct).toBe(100);
  for (const kind of ['partition', 'crash', 'move', 'pause', 'drop', 'skew']) expect(summary.faults[kind]).toBeGreaterThan(SEEDS / 4);
}, 320_000);
