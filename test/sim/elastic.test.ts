// Scaling in the simulator (src/sim/scenarios.ts): 3 -> 5 -> 3, a member that dies and is removed,
// a fresh one in its place, and a volume that comes back empty, while clients read and write and
// nodes crash, pause, move, and the network partitions and drops. No acknowledged write may be
// lost, no quorum read may miss a write acknowledged before it started (so no false "not found"),
// every move must finish, and every node must end on the same ring with identical replicas.

import { Ring } from '../../src/core/ring';
import type { Node } from '../../src/node/node';
import { type SimNode, Simulation } from '../../src/sim/simulation';
import { replays, runSimSeeds } from '../helpers/sim-run';

// Seeds 1-8 of `npm run sim -- --scenario elastic --keys 200 --ops 600`, in worker threads.
const ELASTIC = ['--scenario', 'elastic', '--keys', '200', '--ops', '600', '--seeds', '8'];

test.each([
  ['one at a time', []],
  ['overlapping', ['--concurrent-moves']],
])(
  'elastic cluster under faults, moves %s (seeds 1-8)',
  async (_name, extra) => {
    const args = [...ELASTIC, ...extra];
    const summary = await runSimSeeds(args, 110_000);
    expect({ violations: summary.violations, replay: replays(summary, args) }).toEqual({ violations: {}, replay: [] });
    expect(summary.runs).toBe(8);
    // every replica of every key converged
    expect(summary.convergencePct).toBe(100);
  },
  120_000,
);

test('a join whose stream source dies for good streams from the other replicas instead, and removenode finishes the job', async () => {
  const sim = new Simulation({ seed: 41, nodes: 3, faults: [], keys: 300 });
  await sim.start();
  const [n1, n2] = sim.nodes as [SimNode, SimNode];
  const keys = Array.from({ length: 300 }, (_, i) => `k${i}`);
  await sim.until(Promise.all(keys.map((k, i) => (n2.node as Node).put(k, i, 3))));
  const [n4] = (await sim.until(sim.scaleUp(1))) as [SimNode];
  const streaming = () => (n4.node as Node).movement.progress.phase === 'stream';
  expect(await sim.scheduler.runWhile(() => !streaming(), sim.scheduler.now + 60_000)).toBe(true);
  sim.kill(n1); // the displaced replica of some of n4's ranges, gone for good mid-stream
  const normal = () => (n4.node as Node).memberStatus() === 'normal';
  expect(await sim.scheduler.runWhile(() => !normal(), sim.scheduler.now + 120_000)).toBe(true);
  expect(await sim.until(sim.removeNode(n1))).toBe(true);
  expect(await sim.settleMoves()).toBe(true);
  await sim.quiesce(10_000);
  for (const [i, k] of keys.entries()) {
    const r = await sim.until((n4.node as Node).get(k, 2));
    expect(r.record?.value).toBe(i);
  }
  // (the writes above bypass the simulated clients, so only convergence is checked, not the history)
  expect(sim.check().convergence.diverged).toEqual([]);
});

test('a write coordinated under the old ring that reaches the displaced replica after the joiner streamed from it is still read (the settle pause)', async () => {
  // A joiner confirms its ring change with every member, then waits one request deadline before it
  // streams. A write a coordinator sent just before it learned of the join can still be in flight
  // to the replica the joiner displaces; without the wait it lands there after the stream read that
  // range, so the joiner never gets it, and once the joiner is normal a quorum can miss it. The
  // random faults never line this up; here it is built on purpose with slow and cut links.
  const sim = new Simulation({ seed: 3, nodes: 3, faults: [], keys: 1, antiEntropyIntervalMs: 1e12 });
  await sim.start();
  const byId = new Map(sim.nodes.map((s) => [s.id, s]));
  const next = new Ring(['n1', 'n2', 'n3', 'n4'], 64);
  const key = Array.from({ length: 100 }, (_, i) => `late-${i}`).find((k) => next.preferenceList(k, 3).includes('n4')) as string;
  const [c, y] = next
    .preferenceList(key, 3)
    .filter((id) => id !== 'n4')
    .map((id) => byId.get(id) as SimNode) as [SimNode, SimNode];
  const d = sim.nodes.find((s) => s !== c && s !== y) as SimNode; // displaced by n4 for this key
  const timeoutMs = sim.opts.requestTimeoutMs;
  sim.network.degradeLink(c.address, d.address, timeoutMs * 0.7); // the write reaches d late (but its ack is in time)
  sim.network.degradeLink(c.address, y.address, Infinity); // and never reaches y, nor y c
  sim.network.degradeLink(y.address, c.address, Infinity);

  const [n4] = (await sim.until(sim.scaleUp(1))) as [SimNode];
  const joining = () => n4.node?.memberStatus() === 'joining';
  expect(await sim.scheduler.runWhile(() => !joining(), sim.scheduler.now + 60_000)).toBe(true);
  // n4 has announced itself but nobody has heard yet: c coordinates under the old ring
  expect((c.node as Node).preferenceList(key).sort()).toEqual(['n1', 'n2', 'n3']);
  const written = await sim.until((c.node as Node).put(key, 'late', 2));
  expect(written.acked.sort()).toEqual([c.id, d.id].sort());
  // n4 has finished joining, and y (by gossip) knows: y reads n4 for the key
  const readsN4 = () => (y.node as Node).placement().replicas(key).stable.includes('n4');
  expect(await sim.scheduler.runWhile(() => !readsN4(), sim.scheduler.now + 60_000)).toBe(true);

  // a quorum of the new replicas that does not include c: y (never reached) and n4
  const read = await sim.until((y.node as Node).get(key, 2));
  expect(read.replicas.sort()).toEqual(['n4', c.id, y.id].sort());
  expect(read.responded.sort()).toEqual(['n4', y.id].sort());
  expect(read.record?.value).toBe('late');
});
