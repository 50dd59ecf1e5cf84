// Reads what one replica holds for a key, straight from its own store, over the internode protocol
// (the way peers ask it), with no quorum in between: how a checker sees whether replicas diverge.
// One transport, and so one connection per node, for any number of reads.

import { INTERNODE_PORT_DISTANCE } from '../../src/config';
import { silentLogger } from '../../src/core/log';
import type { StoredRecord } from '../../src/core/record';
import { internodeAddress } from '../../src/net/address';
import { PeerTransport } from '../../src/net/peer-transport';

const READ_DEADLINE_MS = 5_000;

export class ReplicaReader {
  private readonly transport: PeerTransport;

  /** `clusterToken` as a node's --cluster-secret: `current[,next]`, the first proven. */
  constructor(clusterToken?: string) {
    this.transport = new PeerTransport({
      nodeId: 'replica-reader',
      clusterTokens: clusterToken === undefined ? [] : clusterToken.split(','),
      peerAddress: (a) => internodeAddress(a, INTERNODE_PORT_DISTANCE),
      log: silentLogger,
      maxFrameBytes: 64 * 2 ** 20,
    });
  }

  /** The record the node whose API is at `apiAddress` (host:port) holds for `key`; null when none. */
  async read(apiAddress: string, key: string): Promise<StoredRecord | null> {
    return (await this.transport.send(apiAddress, { type: 'read', key }, READ_DEADLINE_MS)).record ?? null;
  }

  close(): Promise<void> {
    return this.transport.close();
  }
}
