// The idle-polling thread: at the lowest priority, spinning only while messages come, gone at stop.
// Read from /proc (Linux): each thread's nice value, state and CPU time.

import { readdirSync, readFileSync } from 'node:fs';
import { beat, startIdlePoll } from '../../src/net/idle-poll';
import { eventually } from '../helpers/eventually';

interface ThreadStat {
  tid: string;
  state: string;
  cpuTicks: number;
  nice: number;
}

function threads(): ThreadStat[] {
  return readdirSync('/proc/self/task').flatMap((tid) => {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    } catch {
      return []; // the thread ended while listed
    }
    // after "pid (comm) ": state, ..., utime (14th field) and stime (15th), ..., nice (19th)
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return [{ tid, state: f[0] as string, cpuTicks: Number(f[11]) + Number(f[12]), nice: Number(f[16]) }];
  });
}

const spinners = () => threads().filter((t) => t.nice === 19);

test('off (0 µs): no thread is started', async () => {
  const poll = startIdlePoll(0);
  beat(false);
  expect(await poll.niced).toBe(false);
  expect(spinners()).toEqual([]);
  await poll.stop();
});

test('on: one thread at nice 19 spins while lone messages come, not while they crowd, sleeps after the window, and is gone at stop', async () => {
  expect(spinners()).toEqual([]);
  const poll = startIdlePoll(5_000);
  expect(await poll.niced).toBe(true);
  const [spinner] = await eventually(() => {
    const s = spinners();
    expect(s).toHaveLength(1);
    return s;
  });
  const tid = (spinner as ThreadStat).tid;
  const ticksOf = () => (threads().find((t) => t.tid === tid) as ThreadStat).cpuTicks;

  // no message yet: asleep
  await eventually(() => expect(threads().find((t) => t.tid === tid)?.state).toBe('S'));
  const before = ticksOf();

  // a message every millisecond: the thread keeps running and spends CPU (ticks are 10 ms)
  const beating = setInterval(() => beat(false), 1);
  try {
    await eventually(() => expect(ticksOf()).toBeGreaterThanOrEqual(before + 5), { timeoutMs: 20_000 });
  } finally {
    clearInterval(beating);
  }

  // no more messages: after the window it sleeps again; it wakes once a millisecond to look at the
  // count, which costs a few µs each (spinning through these 500 ms would be ~50 ticks at 100 Hz)
  await eventually(() => expect(threads().find((t) => t.tid === tid)?.state).toBe('S'));
  const idle = ticksOf();
  await new Promise((r) => setTimeout(r, 500));
  expect(ticksOf()).toBeLessThanOrEqual(idle + 5);

  // messages every millisecond again, some of them arriving while others are in hand (a node under
  // load, whose event loop does not sleep between them): it does not spin
  const crowding = setInterval(() => {
    beat(false);
    beat(true);
  }, 1);
  try {
    const crowded = ticksOf();
    await new Promise((r) => setTimeout(r, 500));
    expect(ticksOf()).toBeLessThanOrEqual(crowded + 5);
  } finally {
    clearInterval(crowding);
  }

  await poll.stop();
  await eventually(() => expect(spinners()).toEqual([]));
});
