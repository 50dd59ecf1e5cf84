// A short `npm run fuzz` inside the suite: a few hundred hostile HTTP requests and internode frames
// against a fresh 3-node cluster on 127.40.1.x. It runs the compiled script in plain node, as
// test/sim/seeds.test.ts runs the simulator, and reads its --json summary. A violation is printed
// with its replay command (`npm run fuzz -- --seed 1 --replay-request <i>`).

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { HTTP_CATEGORIES } from '../../scripts/lib/fuzz-http';
import { FRAME_CATEGORIES } from '../../scripts/lib/fuzz-internode';
import { repoRoot } from '../../scripts/lib/local-cluster';

const run = promisify(execFile);
const SEED = 1;
const REQUESTS = 300;
const FRAMES = 300;

interface Summary {
  requests: { sent: number; byCategory: Record<string, number> };
  statuses: Record<string, number>;
  parserAnswered: Record<string, number>;
  frames: { sent: number; byCategory: Record<string, number> };
  storage: { accepted: number; refused: number; refusedChecked: number; readBack: number };
  nodes: Array<{ id: string; running: boolean }>;
  elapsedSeconds: { total: number };
  violations: Array<{ campaign: string; problem: string; what?: string; replay?: string }>;
}

/** The categories of which nothing was sent. */
function unexercised(counts: Record<string, number>, categories: readonly string[]): string[] {
  return categories.filter((c) => !((counts[c] ?? 0) > 0));
}

test(`${REQUESTS} hostile HTTP requests and ${FRAMES} internode frames: no 5xx, a JSON error for every refusal, nothing stored by one, no node down`, async () => {
  let stdout: string;
  try {
    ({ stdout } = await run(
      process.execPath,
      [
        'dist/scripts/fuzz.js',
        '--seed',
        String(SEED),
        '--requests',
        String(REQUESTS),
        '--frames',
        String(FRAMES),
        '--net',
        '127.40.1',
        '--strict-parser',
        '--json',
      ],
      { cwd: repoRoot(), timeout: 55_000, maxBuffer: 64 * 1024 * 1024 },
    ));
  } catch (err) {
    // exit 1 means violations: the JSON summary is still on stdout
    stdout = (err as { stdout?: string }).stdout ?? '';
    if (!stdout) throw err;
  }
  const s = JSON.parse(stdout) as Summary;
  console.log(
    `seed ${SEED}: ${s.requests.sent} requests ${JSON.stringify(s.statuses)}, parser-answered ${JSON.stringify(s.parserAnswered)}, ` +
      `${s.frames.sent} frames, writes ${JSON.stringify(s.storage)}, ${s.elapsedSeconds.total.toFixed(1)} s`,
  );
  expect(s.violations.map((v) => `[${v.campaign}] ${v.problem.slice(0, 300)}${v.what ? ` (${v.what})` : ''} ${v.replay ?? ''}`)).toEqual(
    [],
  );
  expect(s.requests.sent).toBe(REQUESTS);
  expect(s.frames.sent).toBeGreaterThanOrEqual(FRAMES);
  expect(unexercised(s.requests.byCategory, HTTP_CATEGORIES)).toEqual([]);
  expect(unexercised(s.frames.byCategory, FRAME_CATEGORIES)).toEqual([]);
  // the storage checks really ran: some writes were refused and read from every replica, some acknowledged and read back
  expect(s.storage.refusedChecked).toBeGreaterThan(0);
  expect(s.storage.readBack).toBeGreaterThan(0);
  expect(s.nodes.map((n) => n.running)).toEqual([true, true, true]);
}, 60_000);
