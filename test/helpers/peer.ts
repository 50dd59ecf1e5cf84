// Talks to a node the way its peers do, over the internode protocol (src/net/): to read what one
// replica holds for a key, straight from its store, with no quorum in between. One transport per
// cluster token, reused across calls (a connection and handshake per read would make reading 10k
// keys slow); cleanupClusters() closes them.

import { INTERNODE_PORT_DISTANCE } from '../../src/config';
import { silentLogger } from '../../src/core/log';
import type { StoredRecord } from '../../src/core/record';
import { internodeAddress } from '../../src/net/address';
import { PeerTransport } from '../../src/net/peer-transport';

const transports = new Map<string, PeerTransport>();

function transportFor(clusterToken: string | undefined): PeerTransport {
  const k = clusterToken ?? '';
  let t = transports.get(k);
  if (t === undefined) {
    t = new PeerTransport({
      nodeId: 'test-peer',
      clusterToken,
      peerAddress: (a) => internodeAddress(a, INTERNODE_PORT_DISTANCE),
      log: silentLogger,
      maxFrameBytes: 64 * 2 ** 20,
    });
    transports.set(k, t);
  }
  return t;
}

/** What the node at `apiAddress` (host:port of its API) holds for `key` on its own store; null when nothing. */
export async function replicaRecord(apiAddress: string, key: string, clusterToken?: string): Promise<StoredRecord | null> {
  return (await transportFor(clusterToken).send(apiAddress, { type: 'read', key }, 5_000)).record;
}

/** Closes the transports replicaRecord opened. */
export async function closePeers(): Promise<void> {
  const all = [...transports.values()];
  transports.clear();
  await Promise.all(all.map((t) => t.close()));
}
