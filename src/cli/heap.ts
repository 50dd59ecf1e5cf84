// The V8 heap follows the container's memory limit. Node sizes its old space from the machine's
// memory, not the container's: in a 512 MiB container on a 64 GiB machine the heap may grow far
// past the limit, and the kernel's OOM killer ends the pod (exit 137) where V8 would have collected
// garbage instead. The pod passes its limit through the downward API (CONTAINER_MEMORY_LIMIT_BYTES,
// resourceFieldRef limits.memory); `quorumkv serve` then runs itself again with
// --max-old-space-size at a share of it. V8 cannot change that limit once it runs, hence the second
// process: the first only forwards signals and the exit code.

import { spawn } from 'node:child_process';
import { constants } from 'node:os';

/** The downward API variable with the container's memory limit, in bytes. */
export const MEMORY_LIMIT_ENV = 'CONTAINER_MEMORY_LIMIT_BYTES';

/**
 * Share of the limit for the V8 heap. The rest: the new space and code (~50 MiB), LMDB's dirty pages
 * and read cache (page cache charged to the container), socket buffers of a few hundred
 * connections, and the first process (~40 MiB). Node's own guidance for containers is 75-80%.
 */
export const HEAP_SHARE_OF_LIMIT = 0.75;
/** Below this the node cannot hold its ring, member table and request buffers: refuse to guess. */
export const MIN_HEAP_MIB = 64;
const MIB = 2 ** 20;

/**
 * --max-old-space-size in MiB for a container memory limit in bytes: 75% of it, rounded down.
 * Throws, naming the variable, for a value that is not a positive whole number of bytes or that
 * leaves less than MIN_HEAP_MIB.
 */
export function heapSizeMib(limitBytes: string): number {
  const bytes = /^[0-9]{1,20}$/.test(limitBytes.trim()) ? Number(limitBytes.trim()) : Number.NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new Error(
      `${MEMORY_LIMIT_ENV} must be the container's memory limit in bytes (downward API limits.memory); got ${JSON.stringify(limitBytes)}`,
    );
  }
  const mib = Math.floor((bytes * HEAP_SHARE_OF_LIMIT) / MIB);
  if (mib < MIN_HEAP_MIB) {
    throw new Error(
      `${MEMORY_LIMIT_ENV} ${bytes} (${(bytes / MIB).toFixed(0)} MiB) leaves a heap of ${mib} MiB, under the ${MIN_HEAP_MIB} MiB a node needs: raise the memory limit`,
    );
  }
  return mib;
}

/** Whether the heap size was chosen already: a --max-old-space-size of the process or in NODE_OPTIONS. */
export function heapSizeGiven(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  const given = (a: string) => /^--max[-_]old[-_]space[-_]size(=|$)/.test(a);
  return execArgv.some(given) || (nodeOptions ?? '').split(/\s+/).some(given);
}

/**
 * The node flags to run `serve` again with, or undefined to run it in this process: no limit is
 * given, or the heap size already was (an operator's own flag wins, and the second process does
 * not start a third).
 */
export function heapFlags(env: Record<string, string | undefined>, execArgv: readonly string[]): string[] | undefined {
  const limit = env[MEMORY_LIMIT_ENV];
  if (limit === undefined || limit === '' || heapSizeGiven(execArgv, env.NODE_OPTIONS)) return undefined;
  return [`--max-old-space-size=${heapSizeMib(limit)}`];
}

/**
 * Runs this command again in a node with `flags`, forwarding SIGTERM, SIGINT and SIGHUP, and
 * resolves with the exit code to leave with (128 + the signal number when it was killed).
 */
export function runAgainWith(flags: string[]): Promise<number> {
  const child = spawn(process.execPath, [...process.execArgv, ...flags, ...process.argv.slice(1)], { stdio: 'inherit' });
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
  for (const sig of signals) process.on(sig, forward);
  return new Promise((resolve) => {
    child.on('error', (err) => {
      process.stderr.write(`quorumkv serve: cannot start node with ${flags.join(' ')}: ${err.message}\n`);
      resolve(1);
    });
    child.on('exit', (code, signal) => {
      for (const sig of signals) process.off(sig, forward);
      const signum = signal ? (constants.signals[signal] as number | undefined) : undefined;
      resolve(code ?? 128 + (signum ?? 9));
    });
  });
}
