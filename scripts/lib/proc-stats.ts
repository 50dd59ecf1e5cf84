// What the kernel says about a process, for benchmarks (Linux /proc): resident memory, CPU time and
// the read- and write-class system calls it made (/proc/<pid>/io syscr and syscw: read(2), write(2),
// writev(2) and their kin, sockets included; epoll_wait and other calls are not counted there).

import { readFileSync } from 'node:fs';

export interface ProcCounters {
  /** User + system CPU time, in seconds. */
  cpuS: number;
  /** Read- and write-class system calls since the process started. */
  syscalls: number;
}

const TICKS_PER_S = 100; // USER_HZ on Linux

export function procCounters(pid: number): ProcCounters {
  // /proc/<pid>/stat: fields after the command's closing parenthesis; utime and stime are 14 and 15
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuS = (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)?.[1] ?? Number.NaN);
  return { cpuS, syscalls: field('syscr') + field('syscw') };
}

/** Resident set size in bytes. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? Number.NaN) * 1024;
}

/** Samples the RSS of `pids` every `everyMs` until stopped; the peak of each. */
export function rssSampler(pids: number[], everyMs = 250): { stop(): number[] } {
  const peak = pids.map(() => 0);
  const sample = () =>
    pids.forEach((pid, i) => {
      try {
        peak[i] = Math.max(peak[i] as number, rssBytes(pid));
      } catch {}
    });
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}

/** The sum of the counters of `pids`. */
export function sumCounters(pids: number[]): ProcCounters {
  let cpuS = 0;
  let syscalls = 0;
  for (const pid of pids) {
    const c = procCounters(pid);
    cpuS += c.cpuS;
    syscalls += c.syscalls;
  }
  return { cpuS, syscalls };
}
