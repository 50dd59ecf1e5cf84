// Start a cluster of real processes for one test, on loopback addresses no other test uses, and
// make sure it is gone afterwards (SIGKILL, data removed).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type ClusterOptions, FAST_ARGS as FAST_ARGS_OF_SCRIPTS, LocalCluster } from '../../scripts/lib/local-cluster';
import { closePeers } from './peer';

/** Short deadline and fast gossip so tests see failures in seconds (shared with the campaigns). */
export const FAST_ARGS = [...FAST_ARGS_OF_SCRIPTS];

const live: Array<{ cluster: LocalCluster; dataRoot: string }> = [];

/**
 * `net` is a /24 of 127.0.0.0/8 such as '127.21.3': node i listens on `${net}.${i}:7000`. Give every
 * test its own net so tests and files can run in parallel without port clashes.
 */
export async function startCluster(net: string, opts: Partial<ClusterOptions> = {}): Promise<LocalCluster> {
  const count = opts.nodes ?? 3;
  const dataRoot = mkdtempSync(path.join(tmpdir(), 'qkv-test-'));
  const cluster = LocalCluster.create({
    hosts: Array.from({ length: count }, (_, i) => `${net}.${i + 1}`),
    port: 7000,
    dataRoot,
    args: opts.args ?? FAST_ARGS,
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.clientToken ? { clientToken: opts.clientToken } : {}),
  });
  live.push({ cluster, dataRoot });
  await cluster.start();
  return cluster;
}

/** Call from afterEach: kills every cluster this file started and removes its data. */
export async function cleanupClusters(): Promise<void> {
  await closePeers();
  for (const { cluster, dataRoot } of live.splice(0)) {
    await cluster.stopAll('SIGKILL');
    rmSync(dataRoot, { recursive: true, force: true });
  }
}

/** The log lines of every node, for a failing test's message. */
export function logsOf(cluster: LocalCluster): string {
  return cluster.nodes.map((n) => `--- ${n.id}\n${n.logTail.slice(-30).join('\n')}`).join('\n');
}
