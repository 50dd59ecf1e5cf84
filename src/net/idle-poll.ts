// Idle polling: keep one CPU busy for a short while after each message, at the lowest priority, so
// that the next message does not pay for waking an idle virtual CPU.
//
// On a virtual machine a halted vCPU is woken by the hypervisor, and the task that wakes it (the
// sender's write() on loopback, which runs the receiver's wake-up) waits for that. A hop between two
// processes then costs ~0.1-0.3 ms more when the CPUs are idle than when they are busy (measured on
// this project's benchmark machine, whose kernel runs with guest halt-polling off:
// `haltpoll.guest_halt_poll_ns=0`; docs/BENCHMARKS.md). A single client pays it on every hop. The
// kernel's own remedy is guest halt-polling (200 µs by default where it is on); ScyllaDB's is its
// reactor polling for --idle-poll-time-us (200 µs) before it sleeps. This is the second, for a
// process whose event loop cannot spin: a worker thread, niced to 19 so that any real work preempts
// it, spins while a message came in the last `windowUs` and sleeps otherwise. The event loop only
// counts messages (`beat`: one atomic add, no system call); the spinner reads the count, so the hot
// path makes no call to start it. Where the thread cannot be niced on its own (only Linux nices one
// thread), it does not spin at all: it must never compete with the node.
// What it costs, measured (docs/BENCHMARKS.md): CPU under light load, where it spins most of the
// time. Under heavy load a spinning thread takes the CPUs' idle moments, and on this VM that cost
// 6-17% of the throughput even at the lowest priority (SCHED_IDLE as well as nice 19: the host, not
// the guest's scheduler, pays for it). So it does not spin while the node is busy: messages that
// arrive while others are still in hand are counted apart (`crowded`), and two of them within
// CROWD_PAIR_MS hold the spinner off for CROWD_HOLD_MS. A lone client never crowds the node it
// talks to, so it keeps the whole benefit. The window has to outlast the gap between a lone
// client's requests (~1.2 ms for a write here) or the next request finds the CPUs asleep anyway.
// Off by default all the same: CPU time counts against a container's CPU limit.

import { Worker } from 'node:worker_threads';

/**
 * [0]: messages seen so far (wraps); [1]: 1 once the spinner must stop; [2]: messages that came
 * while others were still in hand (wraps).
 */
let shared: Int32Array | undefined;

/**
 * Counts one message (a client request, an internode read); `crowded` when it came while others
 * were still in hand. Free when idle polling is off.
 */
export function beat(crowded: boolean): void {
  if (shared !== undefined) Atomics.add(shared, crowded ? 2 : 0, 1);
}

/** While idle: how often the spinner looks at the count, shortly after traffic and long after. */
const RECHECK_RECENT_MS = 1;
const RECHECK_IDLE_MS = 100;
/** "Shortly after traffic": a message in the last second. */
const RECENT_MS = 1000;
/**
 * Two crowded messages this close together mean the node is busy: no spinning for CROWD_HOLD_MS.
 * (One alone does not: a lone client's write reaches the slowest replica with the one before it now
 * and then, when that replica lags.)
 */
const CROWD_PAIR_MS = 5;
const CROWD_HOLD_MS = 50;

// Plain JavaScript, run by the worker (eval: no separate file to ship and find).
const SPINNER = `
const { workerData, parentPort } = require('node:worker_threads');
const os = require('node:os');
let niced = false;
if (os.platform() === 'linux') {
  try { os.setPriority(0, 19); niced = true; } catch {}  // on Linux, this thread only
}
parentPort.postMessage({ niced });
if (!niced) process.exit(0);
const shared = new Int32Array(workerData.buffer);
const windowMs = workerData.windowUs / 1000;
let seen = Atomics.load(shared, 0);
let crowdSeen = Atomics.load(shared, 2);
let spinUntil = 0;
let lastMessage = -Infinity;
let lastCrowded = -Infinity;
let holdUntil = 0;
for (;;) {
  const count = Atomics.load(shared, 0);
  const crowd = Atomics.load(shared, 2);
  const now = performance.now();
  if (count !== seen) { seen = count; spinUntil = now + windowMs; lastMessage = now; }
  if (crowd !== crowdSeen) {
    if (((crowd - crowdSeen) | 0) > 1 || now - lastCrowded < ${CROWD_PAIR_MS}) holdUntil = now + ${CROWD_HOLD_MS};
    crowdSeen = crowd;
    lastCrowded = now;
    lastMessage = now;
  }
  if (now < spinUntil && now >= holdUntil) continue;
  if (Atomics.load(shared, 1) !== 0) break;
  Atomics.wait(shared, 0, seen, now - lastMessage < ${RECENT_MS} ? ${RECHECK_RECENT_MS} : ${RECHECK_IDLE_MS});
}
`;

export interface IdlePoll {
  /** The spinner's thread was given the lowest priority and spins (false: it has ended, or was never started). */
  readonly niced: Promise<boolean>;
  stop(): Promise<void>;
}

/** Starts the spinner (one a process); `windowUs` 0 starts nothing. */
export function startIdlePoll(windowUs: number): IdlePoll {
  if (windowUs <= 0 || shared !== undefined) return { niced: Promise.resolve(false), stop: async () => {} };
  const buffer = new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT);
  const own = new Int32Array(buffer);
  shared = own;
  const worker = new Worker(SPINNER, { eval: true, workerData: { buffer, windowUs } });
  // the spinner never keeps the process alive, and its failure never takes the node down
  worker.unref();
  worker.on('error', () => {});
  const niced = new Promise<boolean>((resolve) => {
    worker.once('message', (m: { niced: boolean }) => resolve(m.niced));
    worker.once('exit', () => resolve(false));
  });
  return {
    niced,
    stop: async () => {
      if (shared === own) shared = undefined;
      Atomics.store(own, 1, 1);
      Atomics.notify(own, 0);
      await worker.terminate();
    },
  };
}
