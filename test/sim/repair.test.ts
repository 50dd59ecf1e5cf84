// Repair in the simulator: hinted handoff, read repair and anti-entropy each bring a replica that
// missed writes back in line; tombstones and expired values are purged after the grace period
// without bringing anything back; every run of mixed faults ends with identical replicas.

import { liveRecord } from '../../src/core/record';
import { UnavailableError } from '../../src/node/errors';
import type { Node } from '../../src/node/node';
import { runSeed, type SimNode, Simulation } from '../../src/sim/simulation';

const SECOND = 1000;

/** Writes keys through `via` at W=2 while `down` is crashed; returns the keys. */
async function writeWhileDown(sim: Simulation, via: SimNode, down: SimNode, count: number): Promise<string[]> {
  sim.crash(down);
  const keys = Array.from({ length: count }, (_, i) => `missed-${i}`);
  await sim.until(Promise.all(keys.map((k, i) => (via.node as Node).put(k, i, 2))));
  return keys;
}

/** The keys whose record on `s` differs from the newest any replica holds. */
function staleOn(sim: Simulation, s: SimNode, keys: string[]): string[] {
  const final = sim.readAll();
  return keys.filter((k) => {
    const views = final.get(k) ?? [];
    if (!views.some((v) => v.node === s.id)) return false; // not a replica of k
    const newest = views.map((v) => v.record?.version.wallMs ?? -1).reduce((a, b) => Math.max(a, b), -1);
    return (s.store.get(k)?.version.wallMs ?? -1) < newest;
  });
}

test('hinted handoff alone brings a restarted replica up to date', async () => {
  const sim = new Simulation({ seed: 31, nodes: 3, faults: [], antiEntropyIntervalMs: 3600 * SECOND, readRepair: false });
  await sim.start();
  const [n1, , n3] = sim.nodes as [SimNode, SimNode, SimNode];
  const keys = await writeWhileDown(sim, n1, n3, 300);
  expect((n1.node as Node).hints.pending('n3')).toBe(300);
  await sim.restart(n3);
  expect(await sim.scheduler.runWhile(() => staleOn(sim, n3, keys).length > 0, sim.scheduler.now + 60 * SECOND)).toBe(true);
  await sim.scheduler.runUntil(sim.scheduler.now + 2 * SECOND);
  expect((n1.node as Node).hints.pending()).toBe(0);
});

test('a hint survives the coordinator crashing before it could deliver it', async () => {
  const sim = new Simulation({ seed: 32, nodes: 3, faults: [], antiEntropyIntervalMs: 3600 * SECOND, readRepair: false });
  await sim.start();
  const [n1, , n3] = sim.nodes as [SimNode, SimNode, SimNode];
  const keys = await writeWhileDown(sim, n1, n3, 50);
  await sim.scheduler.runUntil(sim.scheduler.now + SECOND); // hint commits land
  sim.crash(n1);
  await sim.restart(n3);
  await sim.restart(n1);
  expect(await sim.scheduler.runWhile(() => staleOn(sim, n3, keys).length > 0, sim.scheduler.now + 60 * SECOND)).toBe(true);
});

test('read repair alone fixes the stale replica a read meets', async () => {
  const sim = new Simulation({ seed: 33, nodes: 3, faults: [], antiEntropyIntervalMs: 3600 * SECOND, maxHintsPerNode: 0 });
  await sim.start();
  const [n1, n2, n3] = sim.nodes as [SimNode, SimNode, SimNode];
  const keys = await writeWhileDown(sim, n1, n3, 20);
  await sim.restart(n3);
  expect(await sim.runUntilFormed(30 * SECOND)).toBe(true);
  expect(staleOn(sim, n3, keys)).toEqual(keys);
  const r = await sim.until((n2.node as Node).get('missed-7', 3));
  expect(r.record?.value).toBe(7);
  expect(r.repaired).toEqual(['n3']);
  expect(staleOn(sim, n3, keys)).toEqual(keys.filter((k) => k !== 'missed-7'));
});

test('anti-entropy alone rebuilds a replica that lost its whole disk', async () => {
  const sim = new Simulation({ seed: 34, nodes: 3, faults: [], antiEntropyIntervalMs: 2 * SECOND, maxHintsPerNode: 0, readRepair: false });
  await sim.start();
  const [n1, n2, n3] = sim.nodes as [SimNode, SimNode, SimNode];
  const keys = Array.from({ length: 500 }, (_, i) => `k${i}`);
  await sim.until(Promise.all(keys.map((k, i) => (n1.node as Node).put(k, i, 3))));
  await sim.until(Promise.all(keys.slice(0, 100).map((k) => (n2.node as Node).delete(k, 3))));
  sim.wipe(n3);
  await sim.restart(n3);
  expect(staleOn(sim, n3, keys).length).toBe(500);
  expect(await sim.scheduler.runWhile(() => staleOn(sim, n3, keys).length > 0, sim.scheduler.now + 60 * SECOND)).toBe(true);
  await sim.until(n3.store.flushed()); // the checker reads what is on disk
  expect(sim.check().convergence.diverged).toEqual([]);
});

test('TTL: a value reads as absent once it expires, everywhere; after the grace period it is purged', async () => {
  const grace = 30 * SECOND;
  const sim = new Simulation({ seed: 35, nodes: 3, faults: [], tombstoneGraceMs: grace, compactionTickMs: 50 });
  await sim.start();
  const n1 = (sim.nodes[0] as SimNode).node as Node;
  const w = await sim.until(n1.put('session', 'abc', 3, 60 * SECOND));
  expect(w.record.expiresAt).toBe(w.record.version.wallMs + 60 * SECOND);
  await sim.scheduler.runUntil(sim.scheduler.now + 30 * SECOND);
  for (const s of sim.nodes) {
    const r = await sim.until((s.node as Node).get('session', 2));
    expect(r.record?.value).toBe('abc');
    expect((s.node as Node).nowMs()).toBeLessThan(r.record?.expiresAt as number);
  }
  await sim.scheduler.runUntil(sim.scheduler.now + 31 * SECOND + 1000); // past expiry, under every node's skew
  for (const s of sim.nodes) {
    const r = await sim.until((s.node as Node).get('session', 2));
    expect((s.node as Node).nowMs()).toBeGreaterThan(r.record?.expiresAt as number);
  }
  // expiry + grace: gone from every store, and it stays gone
  await sim.scheduler.runUntil(sim.scheduler.now + grace + 10 * SECOND);
  for (const s of sim.nodes) expect(s.store.get('session')).toBeUndefined();
});

test('tombstones are purged after the grace period and the deleted keys do not come back', async () => {
  const grace = 20 * SECOND;
  const sim = new Simulation({ seed: 36, nodes: 5, tombstoneGraceMs: grace, faultCount: 6, compactionTickMs: 50 });
  await sim.start();
  await sim.run();
  await sim.heal();
  await sim.quiesce(grace + 30 * SECOND);
  const { violations, convergence } = sim.check();
  expect(violations).toEqual([]);
  expect(convergence.diverged).toEqual([]);
  // no tombstone older than the grace period remains anywhere
  for (const s of sim.nodes) {
    const now = (s.node as Node).nowMs();
    for (const [, r] of s.store.range(0, 0)) if (r.deleted) expect(r.version.wallMs + grace).toBeGreaterThanOrEqual(now);
  }
  expect(sim.history.some((o) => o.kind === 'delete' && o.outcome === 'ok')).toBe(true);
});

test.each([1, 2, 3, 4, 5, 6, 7, 8])('after mixed faults heal, every replica of every key converges (seed %i)', async (seed) => {
  const r = await runSeed({ seed });
  expect(r.violations).toEqual([]);
  expect(r.convergence.diverged).toEqual([]);
});

test('a stale record written straight to one replica is repaired by anti-entropy', async () => {
  const sim = new Simulation({ seed: 37, nodes: 3, faults: [], antiEntropyIntervalMs: 1 * SECOND, maxHintsPerNode: 0, readRepair: false });
  await sim.start();
  const [n1, n2] = sim.nodes as [SimNode, SimNode];
  await sim.until((n1.node as Node).put('k', 'new', 3));
  const newest = n1.store.get('k');
  await sim.until(n2.store.put('k', liveRecord('old', { wallMs: 1, counter: 0, nodeId: 'x' })));
  expect(await sim.scheduler.runWhile(() => n2.store.get('k')?.value !== 'new', sim.scheduler.now + 30 * SECOND)).toBe(true);
  expect(n2.store.get('k')).toEqual(newest);
});

test('sloppy quorum: with two of three replicas down a write succeeds on substitutes, whose hints reach the replicas once back', async () => {
  const sloppy = new Simulation({
    seed: 38,
    nodes: 5,
    faults: [],
    sloppyQuorum: true,
    antiEntropyIntervalMs: 3600 * SECOND,
    readRepair: false,
  });
  await sloppy.start();
  const coordinator = sloppy.nodes[0] as SimNode;
  const key = 'held-elsewhere';
  const replicas = (coordinator.node as Node).preferenceList(key);
  // two replicas down, the coordinator itself not among them when it can be helped
  const victims = replicas.filter((id) => id !== coordinator.id).slice(0, 2);
  const down = sloppy.nodes.filter((s) => victims.includes(s.id));
  for (const s of down) sloppy.crash(s);
  const convicted = () => victims.every((id) => (coordinator.node as Node).membership.liveness(id) === 'down');
  expect(await sloppy.scheduler.runWhile(() => !convicted(), sloppy.scheduler.now + 120 * SECOND)).toBe(true);

  const w = await sloppy.until((coordinator.node as Node).put(key, 'v', 2));
  expect(Object.keys(w.hintedOn).sort()).toEqual([...victims].sort());
  for (const on of Object.values(w.hintedOn)) expect(replicas).not.toContain(on);
  expect(w.acked.length).toBeGreaterThanOrEqual(2);

  for (const s of down) await sloppy.restart(s);
  const delivered = () => down.every((s) => s.store.get(key)?.value === 'v');
  expect(await sloppy.scheduler.runWhile(() => !delivered(), sloppy.scheduler.now + 60 * SECOND)).toBe(true);

  // the same write without a sloppy quorum is refused before any replica is asked: only one replica
  // could take it, so nothing is written anywhere (no hint either)
  const strict = new Simulation({ seed: 38, nodes: 5, faults: [], antiEntropyIntervalMs: 3600 * SECOND });
  await strict.start();
  const c2 = strict.nodes[0] as SimNode;
  for (const s of strict.nodes.filter((x) => victims.includes(x.id))) strict.crash(s);
  const convicted2 = () => victims.every((id) => (c2.node as Node).membership.liveness(id) === 'down');
  expect(await strict.scheduler.runWhile(() => !convicted2(), strict.scheduler.now + 120 * SECOND)).toBe(true);
  await expect(strict.until((c2.node as Node).put(key, 'v', 2))).rejects.toThrow(UnavailableError);
  expect(strict.nodes.map((s) => s.store.get(key))).toEqual(strict.nodes.map(() => undefined));
  expect((c2.node as Node).hints.pending()).toBe(0);
});
