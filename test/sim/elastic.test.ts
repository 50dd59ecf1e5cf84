// Scaling in the simulator (src/sim/scenarios.ts): 3 -> 5 -> 3, a member that dies and is removed,
// a fresh one in its place, and a volume that comes back empty, while clients read and write and
// nodes crash, pause, move, and the network partitions and drops. No acknowledged write may be
// lost, no quorum read may miss a write acknowledged before it started (so no false "not found"),
// every move must finish, and every node must end on the same ring with identical replicas.

import type { Node } from '../../src/node/node';
import { runSeed, type SimNode, Simulation } from '../../src/sim/simulation';

const BASE = { nodes: 3, scenario: 'elastic', keys: 200, opsPerClient: 600 } as const;

test.each([1, 2, 3, 4, 5, 6, 7, 8])(
  'elastic cluster under faults, moves one at a time (seed %i)',
  async (seed) => {
    const r = await runSeed({ ...BASE, seed });
    expect(r.violations).toEqual([]);
    expect(r.convergence.diverged).toEqual([]);
  },
  60_000,
);

test.each([1, 2, 3, 4, 5, 6, 7, 8])(
  'elastic cluster under faults, moves overlapping (seed %i)',
  async (seed) => {
    const r = await runSeed({ ...BASE, seed, moveWaitMs: 0 });
    expect(r.violations).toEqual([]);
    expect(r.convergence.diverged).toEqual([]);
  },
  60_000,
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
