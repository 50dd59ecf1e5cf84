// Rotating the cluster token on real processes: a node restarted with `A,B` (proves A, accepts
// either) stays a member of a cluster that holds A; a node holding only B is refused by it. The
// whole rotation, under load and through the StatefulSet simulator, is `npm run k8s-sim --
// --scenario rotate-token` (FINDINGS.md).

import type { LocalCluster, LocalNode } from '../../scripts/lib/local-cluster';
import { cleanupClusters, logsOf, startCluster } from '../helpers/cluster';
import { eventually } from '../helpers/eventually';
import { put } from '../helpers/http';
import { replicaRecord } from '../helpers/peer';

afterEach(cleanupClusters);

async function restartWith(n: LocalNode, clusterSecret: string): Promise<void> {
  await n.stop();
  n.spec = { ...n.spec, env: { ...n.spec.env, QUORUMKV_CLUSTER_SECRET: clusterSecret } };
  await n.start();
}

/** A write every replica acknowledges, through `n`: the proof that all three talk to each other. */
async function writeToAll(c: LocalCluster, n: LocalNode, key: string): Promise<void> {
  await eventually(
    async () => {
      const w = await put(n.url, key, n.id, '?consistency=all');
      expect({ status: w.status, writes: w.body.successful_writes }).toEqual({ status: 200, writes: 3 });
    },
    { timeoutMs: 15_000 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${logsOf(c)}`);
  });
}

test('a node restarted with A,B stays in the cluster that holds A; a node holding only B is refused', async () => {
  const c = await startCluster('127.29.4', { env: { QUORUMKV_CLUSTER_SECRET: 'rot-A' } });
  const [n1, n2, n3] = c.nodes as [LocalNode, LocalNode, LocalNode];
  await writeToAll(c, n1, 'before');

  // the control: B alone cannot talk to A, so the cluster loses a replica, and the logs say why
  await restartWith(n3, 'rot-B');
  const alone = await put(n1.url, 'with-b-alone', 1, '?consistency=all');
  expect(alone.status).toBe(503);
  await eventually(() => expect(logsOf(c)).toMatch(/does not hold (this|the same) cluster('s)? token/), { timeoutMs: 10_000 });

  // current,next: n3 proves A to the others and accepts either; all three serve as one cluster
  await restartWith(n3, 'rot-A,rot-B');
  await c.waitFormed(20_000);
  await writeToAll(c, n1, 'after-1');
  await writeToAll(c, n3, 'after-3');
  await writeToAll(c, n2, 'after-2');

  // n3 lets in a peer proving B (a reader holding B,A), which n1 (A only) refuses
  expect((await replicaRecord(n3.address, 'after-3', 'rot-B,rot-A'))?.value).toBe('n3');
  await expect(replicaRecord(n1.address, 'after-3', 'rot-B,rot-A')).rejects.toThrow(/token/);
  expect((await replicaRecord(n1.address, 'after-3', 'rot-A'))?.value).toBe('n3');
}, 60_000);
