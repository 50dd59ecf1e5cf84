// Reads what one replica holds for a key, straight from its store, the way its peers ask it
// (scripts/lib/replica-reader.ts): one reader per cluster token, reused across calls;
// cleanupClusters() closes them.

import { ReplicaReader } from '../../scripts/lib/replica-reader';
import type { StoredRecord } from '../../src/core/record';

const readers = new Map<string, ReplicaReader>();

/** What the node at `apiAddress` (host:port of its API) holds for `key` on its own store; null when nothing. */
export function replicaRecord(apiAddress: string, key: string, clusterToken?: string): Promise<StoredRecord | null> {
  const k = clusterToken ?? '';
  let reader = readers.get(k);
  if (reader === undefined) {
    reader = new ReplicaReader(clusterToken);
    readers.set(k, reader);
  }
  return reader.read(apiAddress, key);
}

/** Closes the readers replicaRecord opened. */
export async function closePeers(): Promise<void> {
  const all = [...readers.values()];
  readers.clear();
  await Promise.all(all.map((r) => r.close()));
}
