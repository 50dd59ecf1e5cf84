// Scaling in the simulator (src/sim/scenarios.ts): 3 -> 5 -> 3, a member that dies and is removed,
// a fresh one in its place, and a volume that comes back empty, while clients read and write and
// nodes crash, pause, move, and the network partitions and drops. No acknowledged write may be
// lost, no quorum read may miss a write acknowledged before it started (so no false "not found"),
// every move must finish, and every node must end on the same ring with identical replicas.

import { runSeed } from '../../src/sim/simulation';

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
