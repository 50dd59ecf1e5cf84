// 1,000 seeds of whole clusters under mixed faults must keep every invariant. They run through
// `npm run sim` (compiled, plain node, two worker threads: test/helpers/sim-run.ts). A failing seed
// is printed with its replay command. This is the suite's short
// version, sized to keep `npm test` under ten minutes on 2 cores; the campaign is `npm run sim --
// --seeds 10000` (FINDINGS.md §8).

import { replays, runSimSeeds } from '../helpers/sim-run';

const SEEDS = 1000;

test(`${SEEDS} seeds of mixed faults (partition, crash, move, pause, drop, skew) violate no invariant`, async () => {
  const args = ['--seeds', String(SEEDS)];
  const summary = await runSimSeeds(args, 300_000);
  console.log(
    `${summary.runs} seeds, ${summary.ops} ops, faults ${JSON.stringify(summary.faults)}, ` +
      `convergence ${summary.convergencePct.toFixed(2)}%, ${summary.seedsPerMinute.toFixed(0)} seeds/min, ${summary.opsPerMinute.toFixed(0)} ops/min`,
  );
  expect({ violations: summary.violations, replay: replays(summary, args) }).toEqual({ violations: {}, replay: [] });
  expect(summary.runs).toBe(SEEDS);
  // with hinted handoff, read repair and anti-entropy every replica of every key converges
  expect(summary.convergencePct).toBe(100);
  for (const kind of ['partition', 'crash', 'move', 'pause', 'drop', 'skew']) expect(summary.faults[kind]).toBeGreaterThan(SEEDS / 4);
}, 320_000);
