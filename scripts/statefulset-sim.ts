// `npm run k8s-sim -- --scenario <name>`: runs k8s/ in the StatefulSet simulator at the manifest's
// own timing (or --time-scale) and prints the timeline. Scenarios:
//   deadlock         OrderedReady with the naive readiness rule (ready only with N-1 peers), 60 s
//   start            all pods to Ready (--policy OrderedReady|Parallel)
//   delete-pod       delete pod 1 while writers run through pods 0 and 2; count acked and lost writes
//   kill             SIGKILL the process in pod 2: kubelet restarts the container
//   hang             SIGSTOP the process in pod 1: liveness fails, kubelet restarts it
//   scale            under load: 3 -> 5 (scale-up: the new members bootstrap), then 5 -> 3 (scale-down:
//                    the preStop of pods 4 and 3 decommissions them; their volumes are kept)
//   rolling-restart  under load: kubectl rollout restart, highest ordinal first, one pod at a time
//   rotate-token     under load: the cluster token A -> B by rolling out QUORUMKV_CLUSTER_SECRET=A,B,
//                    then B,A, then B (kubectl set env; in a cluster: the Secret changed, then a
//                    rollout restart); then a peer holding only A is refused, one holding B let in
//   scale-down       under load: --from 5 --to 3 --fault member-down|forbidden|crashloop|none, then the
//                    operator's remedy; reports acknowledged writes lost (scripts/lib/scale-down.ts);
//                    --fault-lead-s keeps the fault on that long before the scale, --pvc-when-scaled
//                    Delete replays it with the policy the manifests no longer use
//   scale-down-matrix  the nine runs 5->3, 3->2, 3->1 x member-down, forbidden, crashloop, one after
//                    the other, and the table FINDINGS.md shows
// The two load scenarios run quorum PUTs and GETs through the client Service's ready endpoints all
// along (--concurrency, --keys, --write-ratio), and print per step: requests failed and why, second by
// second, GETs that said 404 for an acknowledged key or returned an older version, whether every
// member reports the same ring, and at the end every acknowledged key read back (lost writes).
// Every run is bounded by --timeout-s (default 180) and stops its processes by PID at the end.
//
// The pods get QUORUMKV_ADMIN_TOKEN (their preStop calls the admin routes with it) and, in
// rotate-token, QUORUMKV_CLUSTER_SECRET: fresh random tokens, as `kubectl create secret` would make
// once per install.
//
// --tls internode runs any scenario with mutual TLS between the members: a CA and one member
// certificate made with openssl (what cert-manager's CA Issuer does for k8s/overlays/prod), given
// to every pod as QUORUMKV_TLS=internode with its cert, key and CA. The API stays plain here: the
// probes and the load reach pods by their (changing) IPs.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { INTERNODE_PORT_DISTANCE } from '../src/config';
import { formatLoadReport, type LoadHandle, startLoad } from './lib/load';
import { makeCa, makeCert } from './lib/pki';
import { ReplicaReader } from './lib/replica-reader';
import { runScaleDown, SCALE_DOWN_FAULTS, SCALE_DOWN_TABLE_HEAD, type ScaleDownFault, scaleDownRow } from './lib/scale-down';
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

/** The ring checksum each ready member reports, and whether they agree. */
async function ringAgreement(sim: StatefulSetSim): Promise<string> {
  const seen: string[] = [];
  for (const url of sim.readyEndpoints()) {
    try {
      const res = await fetch(`${url}/ring`, { signal: AbortSignal.timeout(5000) });
      const body = (await res.json()) as { checksum?: string; members?: Array<{ id: string }> };
      seen.push(`${url.replace(/^http:\/\//, '')}: ${body.checksum} (${body.members?.map((m) => m.id).join(',')})`);
    } catch (err) {
      seen.push(`${url}: ${(err as Error).message}`);
    }
  }
  const checksums = new Set(seen.map((l) => l.split(': ')[1]?.split(' ')[0]));
  return `ring: ${checksums.size === 1 ? 'all agree' : 'DISAGREE'}\n  ${seen.join('\n  ')}`;
}

/** Runs `steps` under one continuous load, printing each step's part of the load report and the ring. */
async function underLoad(
  sim: StatefulSetSim,
  timeoutMs: number,
  summary: string[],
  steps: Array<{ name: string; run: () => Promise<boolean> }>,
): Promise<void> {
  const settleMs = Number(arg('settle-s', '5')) * 1000;
  const load: LoadHandle = startLoad({
    endpoints: () => sim.readyEndpoints(),
    concurrency: Number(arg('concurrency', '4')),
    keySpace: Number(arg('keys', '2000')),
    writeRatio: Number(arg('write-ratio', '0.5')),
    maxOps: Number(arg('max-ops', '1000000')),
    maxDurationMs: timeoutMs,
  });
  const print = (line: string) => process.stdout.write(`${line}\n`);
  print(`load: second 0 of its report is +${(sim.elapsedMs() / 1000).toFixed(2)}s of the timeline`);
  try {
    const all = [{ name: 'baseline (no change)', run: () => new Promise<boolean>((r) => setTimeout(() => r(true), settleMs)) }, ...steps];
    for (const step of all) {
      const fromMs = load.elapsedMs();
      const t = Date.now();
      const ok = await step.run();
      const took = `${((Date.now() - t) / 1000).toFixed(1)} s`;
      if (step !== all[0]) await new Promise((r) => setTimeout(r, settleMs)); // let it settle, still under load
      const toMs = load.elapsedMs();
      const r = load.report({ fromMs, toMs });
      const ring = await ringAgreement(sim);
      print(`\n== ${step.name}: ${ok ? 'done' : 'NOT DONE'} in ${took} (+${settleMs / 1000} s settling)\n${formatLoadReport(r)}\n${ring}`);
      summary.push(
        `${step.name}: ${ok ? 'done' : 'NOT DONE'} in ${took}; ${r.ops} ops, failed: ${r.put.failed} puts, ${r.get.failed} gets; ` +
          `false 404s ${r.falseNotFound.length}, stale reads ${r.staleReads.length}; ${ring.split('\n')[0]}`,
      );
      if (!ok) break;
    }
  } finally {
    const total = await load.stop();
    print(`\n== whole run\n${formatLoadReport(total)}`);
    summary.push(`whole run: ${formatLoadReport(total).split('\n').join('\n  ')}`);
    const via = sim.readyEndpoints()[0];
    if (via) {
      for (const consistency of ['quorum', 'all'] as const) {
        const v = await load.verify(via, { consistency });
        summary.push(
          `read back at consistency=${consistency} via ${via}: ${v.checked} acknowledged keys, ${v.lost.length} lost, ${v.unverified.length} unreadable` +
            v.lost
              .slice(0, 10)
              .map((l) => `\n  lost: ${l.key}: expected ${l.expected}, got ${l.got}`)
              .join('') +
            v.unverified
              .slice(0, 5)
              .map((u) => `\n  unreadable: ${u.key}: ${u.reason}`)
              .join(''),
        );
      }
    } else summary.push('no ready endpoint left to read back through');
  }
}

/** After a rotation: which token each running pod lets in (a peer proving only A must be refused). */
async function tokenCheck(sim: StatefulSetSim, tokens: Record<'A' | 'B', string>): Promise<string[]> {
  const lines: string[] = [];
  for (const [name, value] of Object.entries(tokens)) {
    const reader = new ReplicaReader(value);
    const seen: string[] = [];
    for (const pod of sim.allPods().filter((p) => p.running)) {
      const address = `${pod.ip}:${pod.port}`;
      try {
        await reader.read(address, 'token-check');
        seen.push(`${address} let in`);
      } catch (err) {
        seen.push(`${address} REFUSED (${/token/.test((err as Error).message) ? 'token' : (err as Error).message})`);
      }
    }
    await reader.close();
    lines.push(`a peer holding only ${name}: ${seen.join(', ')}`);
  }
  return lines;
}

/**
 * With --tls internode: what each running pod's internode port does with a peer that speaks the
 * protocol in the clear, and with one that shows the members' certificate (whose CN it answers with).
 */
async function tlsCheck(sim: StatefulSetSim, member: { cert: string; key: string; ca: string }): Promise<string[]> {
  const hello = Buffer.concat([Buffer.from('QKVN'), Buffer.from([0, 0, 0, 5, 0x10, 0, 1, 0, 1])]);
  const out: string[] = [];
  for (const pod of sim.allPods().filter((p) => p.running)) {
    const port = pod.port + INTERNODE_PORT_DISTANCE;
    const plain = await new Promise<string>((resolve) => {
      const s = net.connect({ host: pod.ip, port }, () => s.write(hello));
      let got = 0;
      s.on('data', (c: Buffer) => {
        got += c.length;
      });
      s.on('error', () => {});
      s.on('close', () => resolve(got === 0 ? 'refused (no reply)' : `ANSWERED ${got} bytes`));
      setTimeout(() => s.destroy(), 3000).unref();
    });
    const withCert = await new Promise<string>((resolve) => {
      const s = tls.connect(
        {
          host: pod.ip,
          port,
          cert: readFileSync(member.cert),
          key: readFileSync(member.key),
          ca: readFileSync(member.ca),
          checkServerIdentity: () => undefined,
        },
        () => {
          resolve(
            `TLS with the member certificate: ${s.authorized ? 'verified' : 'NOT verified'}, CN ${s.getPeerCertificate().subject?.CN}`,
          );
          s.destroy();
        },
      );
      s.on('error', (err) => resolve(`TLS with the member certificate: FAILED ${err.message}`));
    });
    out.push(`${pod.name} internode ${pod.ip}:${port}: plain protocol ${plain}; ${withCert}`);
  }
  return out;
}

/** The scale-down scenarios: each run builds its own simulator (scripts/lib/scale-down.ts). */
async function scaleDown(matrix: boolean): Promise<void> {
  const print = (line: string) => process.stdout.write(`${line}\n`);
  const runs: Array<{ from: number; to: number; fault: ScaleDownFault }> = matrix
    ? [5, 3, 3].flatMap((from, k) => SCALE_DOWN_FAULTS.map((fault) => ({ from, to: [3, 2, 1][k] as number, fault })))
    : [{ from: Number(arg('from', '5')), to: Number(arg('to', '3')), fault: arg('fault', 'member-down') as ScaleDownFault }];
  for (const r of runs) {
    if (!(r.from > r.to && r.to >= 1) || !['none', ...SCALE_DOWN_FAULTS].includes(r.fault)) {
      throw new Error(`--from must exceed --to (>= 1), --fault one of none, ${SCALE_DOWN_FAULTS.join(', ')}`);
    }
  }
  const rows: string[] = [];
  let failed = false;
  for (const r of runs) {
    print(`\n=== scale-down ${r.from} -> ${r.to}, fault ${r.fault}`);
    const res = await runScaleDown({
      ...r,
      policy: arg('policy', 'Parallel') as Policy,
      timeScale: Number(arg('time-scale', '0.5')),
      maxGraceSeconds: Number(arg('grace-s', '30')),
      ipPrefix: arg('ip-prefix', '127.0'),
      dnsPort: Number(arg('dns-port', '15390')),
      timeoutMs: Number(arg('timeout-s', '600')) * 1000,
      concurrency: Number(arg('concurrency', '4')),
      keys: Number(arg('keys', '2000')),
      faultLeadMs: Number(arg('fault-lead-s', '0')) * 1000,
      ...(process.argv.includes('--pvc-when-scaled') ? { pvcWhenScaled: arg('pvc-when-scaled', 'Retain') as 'Retain' | 'Delete' } : {}),
      log: print,
    });
    rows.push(scaleDownRow(res));
    print(`\nresult: ${JSON.stringify({ ...res, statusOutput: undefined })}`);
    if (res.error || res.lostQuorum > 0 || res.lostAll > 0 || res.unverified > 0) failed = true;
  }
  print(`\n${SCALE_DOWN_TABLE_HEAD}\n${rows.join('\n')}`);
  if (failed) process.exitCode = 1;
}

async function main(): Promise<void> {
  const scenario = arg('scenario', 'start');
  if (scenario === 'scale-down' || scenario === 'scale-down-matrix') return scaleDown(scenario === 'scale-down-matrix');
  const policy = arg('policy', scenario === 'deadlock' ? 'OrderedReady' : 'Parallel') as Policy;
  const timeoutMs = Number(arg('timeout-s', '180')) * 1000;
  const dataRoot = mkdtempSync(path.join(tmpdir(), 'qkv-k8s-sim-'));
  const token = () => randomBytes(32).toString('hex');
  const [tokenA, tokenB] = [token(), token()];
  const tlsMode = arg('tls', 'off');
  if (tlsMode !== 'off' && tlsMode !== 'internode') throw new Error(`--tls ${tlsMode}: the simulator runs off or internode`);
  let tlsEnv: Record<string, string> = {};
  let member: { cert: string; key: string; ca: string } | undefined;
  if (tlsMode === 'internode') {
    const ca = makeCa(path.join(dataRoot, 'pki'));
    member = makeCert(path.join(dataRoot, 'pki'), ca, 'quorumkv', { dnsNames: ['*.quorumkv-headless.quorumkv.svc.cluster.local'] });
    tlsEnv = { QUORUMKV_TLS: 'internode', QUORUMKV_TLS_CERT: member.cert, QUORUMKV_TLS_KEY: member.key, QUORUMKV_TLS_CA: ca.cert };
  }
  const sim = new StatefulSetSim({
    env: { QUORUMKV_ADMIN_TOKEN: token(), ...(scenario === 'rotate-token' ? { QUORUMKV_CLUSTER_SECRET: tokenA } : {}), ...tlsEnv },
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
      summary.push(
        `${policy}${tlsMode === 'off' ? '' : ', mutual TLS between members'}: all ${sim.replicas} pods ready: ${ready}, after ${((Date.now() - t0) / 1000).toFixed(1)} s`,
      );
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
    } else if (scenario === 'scale') {
      const up = Number(arg('to', '5'));
      const down = Number(arg('back-to', String(sim.replicas)));
      await underLoad(sim, timeoutMs, summary, [
        { name: `scale ${sim.replicas} -> ${up}`, run: () => sim.scaleAndWait(up, timeoutMs) },
        { name: `scale ${up} -> ${down}`, run: () => sim.scaleAndWait(down, timeoutMs) },
      ]);
      for (let i = down; i < up; i++)
        summary.push(`volume of quorumkv-${i} after the scale-down: ${existsSync(sim.volumeDir(i)) ? 'KEPT' : 'deleted'}`);
      summary.push(...sim.timeline.filter((l) => /: preStop (done|failed)|pvc .*: deleted/.test(l)));
    } else if (scenario === 'rolling-restart') {
      await underLoad(sim, timeoutMs, summary, [{ name: 'rollout restart', run: () => sim.rollingRestart(timeoutMs) }]);
    } else if (scenario === 'rotate-token') {
      const rollout = (value: string) => () => {
        sim.setEnv('QUORUMKV_CLUSTER_SECRET', value);
        return sim.rolloutStatus(timeoutMs);
      };
      await underLoad(sim, timeoutMs, summary, [
        { name: 'rollout QUORUMKV_CLUSTER_SECRET=A,B (prove A, accept A or B)', run: rollout(`${tokenA},${tokenB}`) },
        { name: 'rollout QUORUMKV_CLUSTER_SECRET=B,A (prove B, accept B or A)', run: rollout(`${tokenB},${tokenA}`) },
        { name: 'rollout QUORUMKV_CLUSTER_SECRET=B (A retired)', run: rollout(tokenB) },
      ]);
      summary.push(...(await tokenCheck(sim, { A: tokenA, B: tokenB })));
    }
    if (member !== undefined) summary.push(...(await tlsCheck(sim, member)));
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
