// A three-member etcd cluster on loopback, the peer the benchmark measures quorumkv against
// (Debian package `etcd-server`, etcd 3.4). Each member has its own data directory on the same disk
// as quorumkv's and its own client and peer ports; clients use its JSON gateway
// (POST /v3/kv/put, /v3/kv/range), the way people use etcd with curl. Nothing is installed here.

import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { findBinary } from './wrk';

export function findEtcd(): string | undefined {
  return findBinary('etcd');
}

export interface EtcdMember {
  name: string;
  clientAddress: string;
  proc: ChildProcess;
  logTail: string[];
}

export class EtcdCluster {
  private constructor(readonly members: EtcdMember[]) {}

  /** Starts `count` members (client ports basePort + 10000*i, peer ports one above) and waits until each is healthy. */
  static async start(binary: string, dataRoot: string, count = 3, basePort = 12379, timeoutMs = 30_000): Promise<EtcdCluster> {
    const specs = Array.from({ length: count }, (_, i) => ({
      name: `e${i + 1}`,
      client: `127.0.0.1:${basePort + 10_000 * i}`,
      peer: `127.0.0.1:${basePort + 10_000 * i + 1}`,
    }));
    const initial = specs.map((s) => `${s.name}=http://${s.peer}`).join(',');
    const members = specs.map((s) => {
      const proc = spawn(
        binary,
        [
          '--name',
          s.name,
          '--data-dir',
          path.join(dataRoot, s.name),
          '--listen-client-urls',
          `http://${s.client}`,
          '--advertise-client-urls',
          `http://${s.client}`,
          '--listen-peer-urls',
          `http://${s.peer}`,
          '--initial-advertise-peer-urls',
          `http://${s.peer}`,
          '--initial-cluster',
          initial,
          '--initial-cluster-state',
          'new',
          '--initial-cluster-token',
          'quorumkv-bench',
          '--logger',
          'zap',
          '--log-level',
          'warn',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const logTail: string[] = [];
      for (const stream of [proc.stdout, proc.stderr]) {
        stream?.on('data', (d: Buffer) => {
          logTail.push(...d.toString().split('\n'));
          if (logTail.length > 200) logTail.splice(0, logTail.length - 200);
        });
      }
      return { name: s.name, clientAddress: s.client, proc, logTail };
    });
    const cluster = new EtcdCluster(members);
    const deadline = Date.now() + timeoutMs;
    for (const m of members) {
      for (;;) {
        if (m.proc.exitCode !== null) {
          await cluster.stop();
          throw new Error(`etcd ${m.name} exited (${m.proc.exitCode}):\n${m.logTail.slice(-20).join('\n')}`);
        }
        try {
          const res = await fetch(`http://${m.clientAddress}/health`, { signal: AbortSignal.timeout(1000) });
          if (res.ok && ((await res.json()) as { health?: string }).health === 'true') break;
        } catch {}
        if (Date.now() > deadline) {
          await cluster.stop();
          throw new Error(`etcd ${m.name} was not healthy within ${timeoutMs} ms:\n${m.logTail.slice(-20).join('\n')}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return cluster;
  }

  get pids(): number[] {
    return this.members.map((m) => m.proc.pid as number);
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.members.map(
        (m) =>
          new Promise<void>((resolve) => {
            if (m.proc.exitCode !== null || m.proc.signalCode !== null) return resolve();
            m.proc.once('exit', () => resolve());
            m.proc.kill('SIGTERM');
            setTimeout(() => m.proc.kill('SIGKILL'), 5000).unref();
          }),
      ),
    );
  }
}
