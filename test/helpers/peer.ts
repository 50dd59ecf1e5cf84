// Talks to a node the way its peers do, over the internode protocol (src/net/): to read what one
// replica holds for a key, straight from its store, with no quorum in between.

import { INTERNODE_PORT_DISTANCE } from '../../src/config';
import { silentLogger } from '../../src/core/log';
import type { StoredRecord } from '../../src/core/record';
import { internodeAddress } from '../../src/net/address';
import { PeerTransport } from '../../src/net/peer-transport';

/** What the node at `apiAddress` (host:port of its API) holds for `key` on its own store; null when nothing. */
export async function replicaRecord(apiAddress: string, key: string, clusterToken?: string): Promise<StoredRecord | null> {
  const transport = new PeerTransport({
    nodeId: 'test-peer',
    clusterToken,
    peerAddress: (a) => internodeAddress(a, INTERNODE_PORT_DISTANCE),
    log: silentLogger,
    maxFrameBytes: 64 * 2 ** 20,
  });
  try {
    return (await transport.send(apiAddress, { type: 'read', key }, 5_000)).record;
  } finally {
    await transport.close();
  }
}
