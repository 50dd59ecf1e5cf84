// The simulator itself: a seed replays exactly; its network, clock and disk do what they claim.

import { SeededRandom } from '../../src/core/random';
import { liveRecord } from '../../src/core/record';
import { TransportError } from '../../src/net/transport';
import { SimNetwork } from '../../src/sim/network';
import { Scheduler } from '../../src/sim/scheduler';
import { SimClock } from '../../src/sim/sim-clock';
import { SimStore } from '../../src/sim/sim-store';
import { runSeed, Simulation } from '../../src/sim/simulation';

describe('replay', () => {
  test('the same seed gives a byte-identical trace twice; another seed gives another', async () => {
    const a = await runSeed({ seed: 1234, trace: true });
    const b = await runSeed({ seed: 1234, trace: true });
    const c = await runSeed({ seed: 1235, trace: true });
    const text = (r: typeof a) => r.trace.join('\n');
    expect(a.trace.length).toBeGreaterThan(1000);
    expect(text(b)).toBe(text(a));
    expect(text(c)).not.toBe(text(a));
    // the trace shows the workload, the messages and the faults
    expect(text(a)).toMatch(/ op #\d+ c\d (put|get|delete) k\d+/);
    expect(text(a)).toMatch(/ send n?[\d.:]+ -> [\d.:]+ write /);
    expect(text(a)).toMatch(/ fault (crash|pause|partition|drop|skew)/);
  });

  test('without faults every operation succeeds and every replica converges', async () => {
    const r = await runSeed({ seed: 7, faults: [] });
    expect(r.okOps).toBe(r.ops);
    expect(r.violations).toEqual([]);
    expect(r.convergence.converged).toBe(r.convergence.keys);
  });
});

describe('scheduler and clocks', () => {
  test('events run in time order, ties in scheduling order, and promise callbacks settle between them', async () => {
    const s = new Scheduler(0);
    const seen: string[] = [];
    s.after(5, () => seen.push('b'));
    s.after(1, () => {
      seen.push('a');
      void Promise.resolve().then(() => seen.push('a-then'));
    });
    s.after(5, () => seen.push('c'));
    await s.runUntil(10);
    expect(seen).toEqual(['a', 'a-then', 'b', 'c']);
    expect(s.now).toBe(10);
  });

  test('a skewed clock reads whole milliseconds off true time; a paused one fires its timers on resume; a crashed one never', async () => {
    const s = new Scheduler(1000);
    const clock = new SimClock(s, -250);
    expect(clock.nowMs()).toBe(750);
    const fired: string[] = [];
    clock.setTimer(10, () => fired.push('t1'));
    clock.pause();
    await s.runUntil(1020);
    expect(fired).toEqual([]);
    clock.resume();
    expect(fired).toEqual(['t1']);
    clock.setTimer(10, () => fired.push('t2'));
    clock.crash();
    await s.runUntil(1100);
    expect(fired).toEqual(['t1']);
  });
});

describe('simulated disk', () => {
  test('a crash loses writes whose commit had not landed, and keeps those that had', async () => {
    const s = new Scheduler(0);
    const store = new SimStore(s, new SeededRandom(1), 5);
    let firstDone = false;
    void store.put('a', liveRecord(1, { wallMs: 1, counter: 0, nodeId: 'n1' })).then(() => {
      firstDone = true;
    });
    await s.runWhile(() => !firstDone, 1000);
    void store.put('b', liveRecord(2, { wallMs: 2, counter: 0, nodeId: 'n1' }));
    expect(store.get('b')?.value).toBe(2); // visible before it is durable
    store.crash();
    await s.runUntil(s.now + 1000);
    expect(store.get('a')?.value).toBe(1);
    expect(store.get('b')).toBeUndefined();
  });
});

describe('simulated network', () => {
  function pair() {
    const s = new Scheduler(0);
    const net = new SimNetwork(s, new SeededRandom(3), undefined);
    const handled: unknown[] = [];
    const b = {
      incarnation: 0,
      state: 'up' as 'up' | 'paused' | 'down',
      inbox: [] as Array<() => void>,
      handle: async (m: unknown) => {
        handled.push(m);
        return { record: null };
      },
    };
    net.register('a:1', { incarnation: 0, state: 'up', inbox: [], handle: async () => ({}) });
    net.register('b:1', b);
    const clock = new SimClock(s, 0);
    const t = net.transportFor('a:1', clock);
    return { s, net, b, t, handled };
  }

  async function outcome(s: Scheduler, p: Promise<unknown>): Promise<string> {
    let result = 'pending';
    p.then(
      () => {
        result = 'ok';
      },
      (e: unknown) => {
        result = e instanceof TransportError ? e.kind : 'error';
      },
    );
    await s.runUntil(s.now + 2000);
    return result;
  }

  test('delivers, refuses at a crashed node, times out across a partition', async () => {
    const { s, net, b, t } = pair();
    expect(await outcome(s, t.send('b:1', { type: 'read', key: 'k' }, 1000))).toBe('ok');
    b.state = 'down';
    expect(await outcome(s, t.send('b:1', { type: 'read', key: 'k' }, 1000))).toBe('refused');
    b.state = 'up';
    net.partition([['a:1'], ['b:1']]);
    expect(await outcome(s, t.send('b:1', { type: 'read', key: 'k' }, 1000))).toBe('timeout');
    net.heal();
    expect(await outcome(s, t.send('b:1', { type: 'read', key: 'k' }, 1000))).toBe('ok');
  });

  test('a paused node keeps messages in its inbox and handles them when it resumes', async () => {
    const { s, b, t, handled } = pair();
    b.state = 'paused';
    expect(await outcome(s, t.send('b:1', { type: 'read', key: 'k' }, 1000))).toBe('timeout');
    expect(handled).toEqual([]);
    expect(b.inbox.length).toBe(1);
    b.state = 'up';
    for (const deliver of b.inbox.splice(0)) deliver();
    expect(handled).toEqual([{ type: 'read', key: 'k' }]);
  });

  test('with a drop rate some messages are lost, and the count says so', async () => {
    const { s, net, t } = pair();
    net.dropRate = 0.5;
    const results = [];
    for (let i = 0; i < 40; i++) results.push(await outcome(s, t.send('b:1', { type: 'read', key: 'k' }, 100)));
    expect(results.filter((r) => r === 'timeout').length).toBeGreaterThan(10);
    expect(net.stats.dropped).toBeGreaterThan(10);
  });
});

test('a crashed node restarts on its disk with a higher generation and its members', async () => {
  const sim = new Simulation({ seed: 99, faults: [] });
  await sim.start();
  const n1 = sim.nodes[0] as (typeof sim.nodes)[0];
  const before = n1.node?.generation as number;
  sim.crash(n1);
  expect(n1.node).toBeUndefined();
  expect(n1.endpoint.state).toBe('down');
  // what survived on its disk: the members whose entry had been committed before the crash
  const persisted = (n1.store.getMeta<Array<{ id: string }>>('members') ?? []).map((m) => m.id);
  expect(persisted.length).toBeGreaterThan(0);
  await sim.heal();
  expect(n1.node?.generation).toBeGreaterThan(before);
  // at once, before any gossip: its ring has every member it had persisted
  expect(n1.node?.memberList().map((m) => m.id)).toEqual(expect.arrayContaining(['n1', ...persisted]));
  // and gossip brings back the rest
  expect(await sim.runUntilFormed(30_000)).toBe(true);
  expect(n1.node?.memberList().length).toBe(5);
});
