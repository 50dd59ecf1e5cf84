// Runs seeds of the simulator compiled, as `npm run sim` does (scripts/sim.ts): plain node, which
// takes less CPU than jest's sandbox (4 elastic seeds: 3.7 s against 5.3 s), in two worker threads,
// so a file of many seeds uses both cores while the other jest worker waits on its processes. A
// failing seed comes back with its replay command.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { repoRoot } from '../../scripts/lib/local-cluster';

const run = promisify(execFile);

export interface SimSummary {
  runs: number;
  ops: number;
  faults: Record<string, number>;
  violations: Record<string, number>;
  failingSeeds: number[];
  convergencePct: number;
  seedsPerMinute: number;
  opsPerMinute: number;
}

/** `npm run sim -- <args> --json --workers 2`: the summary, whether or not seeds failed. */
export async function runSimSeeds(args: string[], timeoutMs: number): Promise<SimSummary> {
  let stdout: string;
  try {
    ({ stdout } = await run(process.execPath, ['dist/scripts/sim.js', ...args, '--json', '--workers', '2'], {
      cwd: repoRoot(),
      timeout: timeoutMs,
      maxBuffer: 16 * 1024 * 1024,
    }));
  } catch (err) {
    // exit 1 means violations: the JSON summary is still on stdout
    stdout = (err as { stdout?: string }).stdout ?? '';
    if (!stdout) throw err;
  }
  return JSON.parse(stdout) as SimSummary;
}

/** The replay commands of the first failing seeds (none when every seed passed). */
export function replays(s: SimSummary, args: string[]): string[] {
  const extra = args.filter((a, i) => !(a === '--seeds' || args[i - 1] === '--seeds' || a === '--from' || args[i - 1] === '--from'));
  return s.failingSeeds.slice(0, 5).map((seed) => `npm run sim -- ${[...extra, '--seed', String(seed), '--trace'].join(' ')}`);
}
