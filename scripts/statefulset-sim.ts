// `npm run k8s-sim -- --scenario <name>`: runs k8s/ in the StatefulSet simulator at the manifest's
// own timing (or --time-scale) and prints the timeline. Scenarios:
//   deadlock         OrderedReady with the naive readiness rule (ready only with N-1 peers), 60 s
//   start            all pods to Ready (--policy OrderedReady|Parallel)
//   delete-pod       delete pod 1 while writers run through pods 0 and 2; count acked and lost writes
//   kill             SIGKILL the process in pod 2: kubelet restarts the container
//   hang             SIGSTOP the process in pod 1: liveness fails, kubelet restarts it
// Every run is bounded by --timeout-s (default 180) and stops its processes by PID at the end.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Policy, StatefulSetSim } from './lib/statefulset-sim';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? (process.argv[i + 1] as string) : fallback;
}

async function request(method: string, url: string, body?: unknown): Promise<number> {
  try {
    const res = await fetch(url, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    });
    await res.text();
    return res.status;
  } catch {
    return 0;
  }
}

async function main(): Promise<void> {
  const scenario = arg('scenario', 'start');
  const policy = arg('policy', scenario === 'deadlock' ? 'OrderedReady' : 'Parallel') as Policy;
  const timeoutMs = Number(arg('timeout-s', '180')) * 1000;
  const dataRoot = mkdtempSync(path.join(tmpdir(), 'qkv-k8s-sim-'));
  const sim = new StatefulSetSim({
    dataRoot,
    podManagementPolicy: policy,
    readinessRule: scenario === 'deadlock' ? 'naive' : 'two-phase',
    timeScale: Number(arg('time-scale', '1')),
    ipPrefix: arg('ip-prefix', '127.0'),
    dnsPort: Number(arg('dns-port', '15390')),
    log: (line) => process.stdout.write(`${line}\n`),
  });
  const summary: string[] = [];
  const t0 = Date.now();
  try {
    await sim.start();
    if (scenario === 'deadlock') {
      const ready = await sim.waitFor(() => sim.allReady(), Math.min(timeoutMs, 60_000));
      summary.push(
        `after ${((Date.now() - t0) / 1000).toFixed(0)} s: all ready: ${ready}; pods: ${sim
          .allPods()
          .map((p) => `${p.name}${p.ready ? ' Ready' : ' NotReady'}`)
          .join(', ')}`,
      );
    } else {
      const ready = await sim.waitFor(() => sim.allReady(), timeoutMs);
      summary.push(`${policy}: all ${sim.replicas} pods ready: ${ready}, after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      if (!ready) throw new Error('pods did not become ready');
    }
    if (scenario === 'delete-pod') {
      const old = sim.pod(1);
      let acked = 0;
      let failed = 0;
      const keys: string[] = [];
      let writing = true;
      const writer = async (ordinal: number) => {
        for (let i = 0; writing && i < 20_000; i++) {
          const pod = sim.pod(ordinal);
          if (!pod) continue;
          const key = `w-${ordinal}-${i}`;
          if ((await request('PUT', `${pod.url}/kv/${key}`, { value: i })) === 200) {
            acked++;
            keys.push(key);
          } else failed++;
        }
      };
      const writers = Promise.all([writer(0), writer(2)]);
      const deleted = Date.now();
      await sim.deletePod(1);
      const back = await sim.waitFor(() => sim.pod(1) !== undefined && sim.pod(1) !== old && sim.allReady(), timeoutMs);
      summary.push(
        `pod 1 deleted and back (new ip ${sim.pod(1)?.ip}, was ${old?.ip}): ${back}, ${((Date.now() - deleted) / 1000).toFixed(1)} s`,
      );
      writing = false;
      await writers;
      let lost = 0;
      for (const key of keys) if ((await request('GET', `${sim.pod(0)?.url}/kv/${key}`)) !== 200) lost++;
      summary.push(`writes during the deletion: ${acked} acknowledged, ${failed} failed, ${lost} acknowledged writes lost`);
    } else if (scenario === 'kill' || scenario === 'hang') {
      const ordinal = scenario === 'kill' ? 2 : 1;
      const pod = sim.pod(ordinal);
      const sent = Date.now();
      sim.signal(ordinal, scenario === 'kill' ? 'SIGKILL' : 'SIGSTOP');
      const back = await sim.waitFor(() => pod !== undefined && pod.restarts === 1 && pod.ready, timeoutMs);
      summary.push(
        `pod ${ordinal} after ${scenario}: restarted and Ready again: ${back}, ${((Date.now() - sent) / 1000).toFixed(1)} s after the signal`,
      );
    }
  } finally {
    await sim.stop();
    rmSync(dataRoot, { recursive: true, force: true });
    process.stdout.write(`\n${summary.join('\n')}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`k8s-sim: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
