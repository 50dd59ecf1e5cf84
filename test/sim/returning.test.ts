// A volume given back to its ordinal by a later scale-up (the StatefulSet keeps the PVCs of removed
// pods: whenScaled Retain). Its node decides from the directory's own meta (core/volume.ts): a
// member that finished leaving, or that the cluster removed, starts empty and joins as a new
// member; nothing it held before is served again.

import { liveRecord } from '../../src/core/record';
import type { Node } from '../../src/node/node';
import { type SimNode, Simulation } from '../../src/sim/simulation';

const KEYS = Array.from({ length: 200 }, (_, i) => `k${i}`);

async function cluster(seed: number): Promise<Simulation> {
  const sim = new Simulation({ seed, nodes: 4, faults: [], keys: KEYS.length });
  await sim.start();
  const via = sim.nodes[0] as SimNode;
  await sim.until(Promise.all(KEYS.map((k, i) => (via.node as Node).put(k, i, 3))));
  return sim;
}

/** A record only the gone member's volume holds, as if written there long ago: stale by definition. */
async function plantGhost(sim: Simulation, s: SimNode): Promise<void> {
  await sim.until(s.store.put('ghost', liveRecord('from before it left', { wallMs: 1, counter: 0, nodeId: s.id })));
}

async function expectRejoinedEmpty(sim: Simulation, s: SimNode): Promise<void> {
  const normal = () => s.node?.memberStatus() === 'normal';
  expect(await sim.scheduler.runWhile(() => !normal(), sim.scheduler.now + 300_000)).toBe(true);
  expect(await sim.settleMoves()).toBe(true);
  expect(s.store.get('ghost')).toBeUndefined();
  const node = s.node as Node;
  for (const [i, k] of KEYS.entries()) {
    const r = await sim.until(node.get(k, 2));
    expect({ k, value: r.record?.value }).toEqual({ k, value: i });
  }
  const ghost = await sim.until(node.get('ghost', 3));
  expect(ghost.record).toBeUndefined();
  expect(sim.check().convergence.diverged).toEqual([]);
}

test('a decommissioned member given its volume back clears it and joins as a new member', async () => {
  const sim = await cluster(11);
  const n4 = sim.nodes[3] as SimNode;
  expect(await sim.until(sim.decommission(n4))).toBe(true);
  expect(await sim.settleMoves()).toBe(true);
  expect(n4.store.getMeta('node')).toMatchObject({ status: 'removed', removedBy: 'decommission' });
  await plantGhost(sim, n4);
  expect(n4.store.count()).toBeGreaterThan(1);

  await sim.until(sim.comeBack(n4));
  expect([...sim.logCounts.keys()].some((m) => m.includes('clearing it and joining the cluster as a new member'))).toBe(true);
  await expectRejoinedEmpty(sim, n4);
}, 60_000);

test('a member removed (removenode) while it was down, given its volume back, stops, restarts empty and joins', async () => {
  const sim = await cluster(12);
  const n4 = sim.nodes[3] as SimNode;
  sim.kill(n4);
  expect(await sim.until(sim.removeNode(n4))).toBe(true);
  expect(await sim.settleMoves()).toBe(true);
  // its volume never heard of the removal: it still says normal
  expect(n4.store.getMeta('node')).toMatchObject({ status: 'normal' });
  await plantGhost(sim, n4);

  await sim.until(sim.comeBack(n4));
  // it learns from the others that it was removed, records it, and its restart starts empty
  const learned = () => (n4.store.getMeta('node') as { removedBy?: string } | undefined)?.removedBy === 'removenode';
  expect(await sim.scheduler.runWhile(() => !learned(), sim.scheduler.now + 60_000)).toBe(true);
  await expectRejoinedEmpty(sim, n4);
}, 60_000);

test('a member that did not finish leaving comes back with its data', async () => {
  const sim = await cluster(13);
  const n4 = sim.nodes[3] as SimNode;
  sim.kill(n4); // its pod went without a decommission (a crash-looping or forbidden preStop)
  await plantGhost(sim, n4);
  await sim.until(sim.comeBack(n4));
  expect(n4.store.get('ghost')?.value).toBe('from before it left');
  expect(n4.node?.memberStatus()).toBe('normal');
  expect(await sim.settleMoves()).toBe(true);
}, 60_000);
