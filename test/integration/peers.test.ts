// GET /peers with real processes: the seed design's peer list, the addresses of the other members
// that are not down. It follows the failure detector: a kill -9ed node leaves it once convicted and
// comes back when it restarts.

import type { LocalNode } from '../../scripts/lib/local-cluster';
import { cleanupClusters, logsOf, startCluster } from '../helpers/cluster';
import { eventually } from '../helpers/eventually';
import { http } from '../helpers/http';

afterEach(cleanupClusters);

/** One node's /peers, sorted (the order is not part of the contract). */
async function peersOf(n: LocalNode): Promise<string[]> {
  const r = await http('GET', `${n.url}/peers`);
  expect({ node: n.id, status: r.status, isArray: Array.isArray(r.body) }).toEqual({ node: n.id, status: 200, isArray: true });
  return [...(r.body as string[])].sort();
}

/** What every listed node's /peers holds, keyed by node id, for one readable comparison. */
async function peersByNode(nodes: LocalNode[]): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const n of nodes) out[n.id] = await peersOf(n);
  return out;
}

/** The addresses of `all` other than `self`, sorted: what `self`'s /peers should say. */
const othersOf = (self: LocalNode, all: LocalNode[]) =>
  all
    .filter((n) => n !== self)
    .map((n) => n.address)
    .sort();

test('GET /peers lists the other live members; a kill -9ed node leaves it once convicted and returns when restarted', async () => {
  const c = await startCluster('127.27.1');
  const all = c.nodes as [LocalNode, LocalNode, LocalNode];
  const [n1, n2, n3] = all;
  const expectPeers = async (nodes: LocalNode[], members: LocalNode[]) => {
    const want = Object.fromEntries(nodes.map((n) => [n.id, othersOf(n, members)]));
    expect(await peersByNode(nodes)).toEqual(want);
  };

  // formed: each node lists exactly the other two, never itself
  await expectPeers(all, all);
  expect(await peersOf(n1)).toEqual(['127.27.1.2:7000', '127.27.1.3:7000']);

  await n3.kill('SIGKILL');
  const killedAt = Date.now();
  await eventually(() => expectPeers([n1, n2], [n1, n2]), { timeoutMs: 30_000 }).catch((err: Error) => {
    throw new Error(`${err.message}\n${logsOf(c)}`);
  });
  const goneAfterS = (Date.now() - killedAt) / 1000;
  // it left /peers because it was convicted (down), not merely suspected: /cluster agrees
  for (const n of [n1, n2]) {
    const view = (await http('GET', `${n.url}/cluster`)).body as { members: Array<{ id: string; state: string }> };
    expect({ node: n.id, n3: view.members.find((m) => m.id === 'n3')?.state }).toEqual({ node: n.id, n3: 'down' });
  }

  // same id, address and data directory: it rejoins and every node lists the other two again
  await n3.start();
  const restartedAt = Date.now();
  await eventually(() => expectPeers(all, all), { timeoutMs: 20_000 }).catch((err: Error) => {
    throw new Error(`${err.message}\n${logsOf(c)}`);
  });
  console.log(
    `gossip every 100 ms: n3 gone from the others' /peers ${goneAfterS.toFixed(1)} s after kill -9; ` +
      `back in every /peers ${((Date.now() - restartedAt) / 1000).toFixed(1)} s after restarting`,
  );
}, 90_000);
