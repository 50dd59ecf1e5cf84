// A scale-down that goes wrong, under write load, in the StatefulSet simulator, and the operator's
// remedy: does any acknowledged write get lost? (`npm run k8s-sim -- --scenario scale-down`.)
//
// Faults, each injected just before `kubectl scale --replicas <to>`:
//   member-down  pod 1's machine goes away (its container is killed and not restarted): for a
//                scale-down to 2 or more it is a remaining member, and every decommission waits for
//                it until the grace period ends; for 3 -> 1 it is one of the removed pods, which then
//                goes without any preStop while the other one's decommission waits for it
//   forbidden    the API server refuses the preStop's GET of the StatefulSet (403): the preStop
//                cannot tell a scale-down from a restart, so it only drains; nobody decommissions
//   crashloop    the highest removed pod's container exits at start (CrashLoopBackOff) when its turn
//                comes: it runs no preStop, and is deleted as it is
// The remedy is the one README's "Scaling down safely" gives: fix the cause, then, unless every
// removed ordinal already shows as `removed` in `quorumkv status`, scale back up to the old count
// (the volumes were kept: whenScaled Retain, so each ordinal comes back on its own data, and a
// decommission cut short resumes), wait until no member is joining or leaving, and scale down
// again. Then every acknowledged write is read back at quorum and at all.

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { formatLoadReport, startLoad } from './load';
import { cliPath } from './local-cluster';
import { type Policy, StatefulSetSim } from './statefulset-sim';

export type ScaleDownFault = 'none' | 'member-down' | 'forbidden' | 'crashloop';
export const SCALE_DOWN_FAULTS: readonly ScaleDownFault[] = ['member-down', 'forbidden', 'crashloop'];

export interface ScaleDownOptions {
  from: number;
  to: number;
  fault: ScaleDownFault;
  policy?: Policy;
  /** Shrinks probe periods, back-off and grace (StatefulSetSim). Default 0.5. */
  timeScale?: number;
  /** The grace period a blocked preStop gets before it is killed (the manifest's is an hour). Default 30. */
  maxGraceSeconds?: number;
  /** How long the fault lasts before kubectl scale (writes meanwhile may be acknowledged by removed pods only). Default 0. */
  faultLeadMs?: number;
  /** Overrides the manifests' whenScaled (Delete: what this scenario shows the Retain policy prevents). */
  pvcWhenScaled?: 'Retain' | 'Delete';
  /** The grace period during the remedy (decommissions that take turns need more). Default 180. */
  remedyGraceSeconds?: number;
  ipPrefix: string;
  dnsPort: number;
  /** Every wait of the run together stays under this. Default 600 s. */
  timeoutMs?: number;
  concurrency?: number;
  keys?: number;
  log?: (line: string) => void;
}

export interface MemberView {
  id: string;
  status: string;
  state: string;
}

export interface ScaleDownResult {
  from: number;
  to: number;
  fault: ScaleDownFault;
  policy: Policy;
  /** The first scale-down: its pods gone, in this long. */
  firstScaleDownS: number;
  /** The preStop outcome of each removed pod in the first scale-down (or "no preStop"). */
  preStops: string[];
  /** How the removed ordinals looked in `quorumkv status` (pod 0's /cluster) after the first scale-down. */
  sawAfterFirst: MemberView[];
  /** `quorumkv status` output after the first scale-down. */
  statusOutput: string;
  remedy: string;
  remedyS: number;
  /** Every removed ordinal shows as removed at the end (its retained volume is safe to delete). */
  allRemoved: boolean;
  volumesKept: number;
  putsAcked: number;
  putsFailed: number;
  ackedKeys: number;
  /** The consistency levels every acknowledged write was read back at (lostQuorum, lostAll). */
  readAt: string;
  lostQuorum: number;
  lostAll: number;
  unverified: number;
  lostSamples: string[];
  totalS: number;
  /** Why the run could not complete, if it did not. */
  error?: string;
}

const exec = promisify(execFile);

async function clusterView(url: string): Promise<MemberView[] | undefined> {
  try {
    const res = await fetch(`${url}/cluster`, { signal: AbortSignal.timeout(3000) });
    const body = (await res.json()) as { members?: MemberView[] };
    return body.members?.map((m) => ({ id: m.id, status: m.status, state: m.state }));
  } catch {
    return undefined;
  }
}

/** Runs one scale-down with one fault and the remedy; never throws for a scenario that goes wrong (see `error`). */
export async function runScaleDown(o: ScaleDownOptions): Promise<ScaleDownResult> {
  const policy = o.policy ?? 'Parallel';
  const timeoutMs = o.timeoutMs ?? 600_000;
  const deadline = Date.now() + timeoutMs;
  const left = () => Math.max(1000, deadline - Date.now());
  const log = o.log ?? (() => {});
  const dataRoot = mkdtempSync(path.join(tmpdir(), 'qkv-scale-down-'));
  const sim = new StatefulSetSim({
    dataRoot,
    replicas: o.from,
    podManagementPolicy: policy,
    timeScale: o.timeScale ?? 0.5,
    maxGraceSeconds: o.maxGraceSeconds ?? 30,
    ...(o.pvcWhenScaled ? { pvcWhenScaled: o.pvcWhenScaled } : {}),
    ipPrefix: o.ipPrefix,
    dnsPort: o.dnsPort,
    log,
  });
  const t0 = Date.now();
  const removed = Array.from({ length: o.from - o.to }, (_, k) => o.to + k);
  const idOf = (i: number) => sim.podName(i);
  const result: ScaleDownResult = {
    from: o.from,
    to: o.to,
    fault: o.fault,
    policy,
    firstScaleDownS: 0,
    preStops: [],
    sawAfterFirst: [],
    statusOutput: '',
    remedy: '',
    remedyS: 0,
    allRemoved: false,
    volumesKept: 0,
    putsAcked: 0,
    putsFailed: 0,
    ackedKeys: 0,
    readAt: '',
    lostQuorum: 0,
    lostAll: 0,
    unverified: 0,
    lostSamples: [],
    totalS: 0,
  };
  const viewVia0 = () => clusterView((sim.pod(0) as { url: string }).url);
  /** Every removed ordinal shows as removed in pod 0's view. */
  const finished = async () => {
    const v = await viewVia0();
    return v !== undefined && removed.every((i) => v.find((m) => m.id === idOf(i))?.status === 'removed');
  };
  /** The pods 0..n-1 run; no member joins or leaves; the normal ones are alive and their pods Ready. */
  const settled = async (n: number) => {
    if (sim.allPods().length !== n || sim.allPods().some((p) => p.phase !== 'Running' || !p.running)) return false;
    const v = await viewVia0();
    if (!v) return false;
    return Array.from({ length: n }, (_, i) => i).every((i) => {
      const m = v.find((x) => x.id === idOf(i));
      if (m?.status === 'removed') return true;
      return m?.status === 'normal' && m.state === 'alive' && sim.pod(i)?.ready === true;
    });
  };
  const poll = async (cond: () => Promise<boolean>, ms: number) => {
    const until = Date.now() + Math.min(ms, left());
    while (Date.now() < until) {
      if (await cond()) return true;
      await new Promise((r) => setTimeout(r, 500));
    }
    return false;
  };
  const podsGone = () => Promise.resolve(removed.every((i) => sim.pod(i) === undefined));

  let load: ReturnType<typeof startLoad> | undefined;
  try {
    await sim.start();
    if (!(await sim.waitFor(() => sim.allReady(), left()))) throw new Error(`the ${o.from} pods did not become ready`);
    load = startLoad({
      endpoints: () => sim.readyEndpoints(),
      concurrency: o.concurrency ?? 4,
      keySpace: o.keys ?? 2000,
      writeRatio: 0.5,
      maxOps: 10_000_000,
      maxDurationMs: timeoutMs,
    });
    await new Promise((r) => setTimeout(r, 3000)); // some acknowledged writes on every member first

    // the fault, then kubectl scale
    const crashing = o.from - 1;
    if (o.fault === 'member-down') sim.halt(1);
    if (o.fault === 'forbidden' && sim.kubeApi) {
      sim.kubeApi.forbid =
        'statefulsets.apps "quorumkv" is forbidden: User "system:serviceaccount:quorumkv:quorumkv" cannot get resource "statefulsets"';
    }
    if (o.fault === 'crashloop') {
      sim.crashLoop(crashing);
      const pod = sim.pod(crashing);
      // crash-looping when its turn comes: it has failed to start at least twice
      await sim.waitFor(() => (pod?.restarts ?? 0) >= 2, 60_000);
    }
    if (o.faultLeadMs) await new Promise((r) => setTimeout(r, o.faultLeadMs));
    const firstAt = Date.now();
    sim.scale(o.to);
    // kubelet gives up on a blocked preStop at the end of the grace period: the pods go in any case
    await poll(podsGone, (o.maxGraceSeconds ?? 30) * 1000 * removed.length + 60_000);
    result.firstScaleDownS = (Date.now() - firstAt) / 1000;
    result.preStops = removed.map((i) => {
      const lines = sim.timeline.filter((l) => l.includes(`pod ${idOf(i)}: preStop `) && /preStop (done|failed)/.test(l));
      return `${idOf(i)}: ${lines.length === 0 ? 'no preStop ran' : (lines.at(-1)?.replace(/^.*preStop /, 'preStop ') ?? '')}`;
    });
    await new Promise((r) => setTimeout(r, 2000));
    result.sawAfterFirst = ((await viewVia0()) ?? []).filter((m) => removed.some((i) => idOf(i) === m.id) || m.state !== 'alive');
    try {
      const { stdout } = await exec(process.execPath, [cliPath(), 'status', '--url', (sim.pod(0) as { url: string }).url], {
        timeout: 10_000,
      });
      result.statusOutput = stdout;
    } catch (err) {
      result.statusOutput = `quorumkv status failed: ${(err as Error).message}`;
    }
    log(`quorumkv status after the first scale-down:\n${result.statusOutput}`);

    // the remedy: fix the cause; if a removed ordinal did not finish leaving, scale back up and down again
    const remedyAt = Date.now();
    const steps: string[] = [];
    // a patient operator: the manifest's hour of grace, here long enough for decommissions in turn
    sim.maxGraceSeconds = o.remedyGraceSeconds ?? 180;
    if (o.fault === 'member-down') {
      sim.restore(1);
      steps.push('pod 1 back');
    }
    if (o.fault === 'forbidden' && sim.kubeApi) {
      sim.kubeApi.forbid = undefined;
      steps.push('RBAC fixed');
    }
    if (o.fault === 'crashloop') steps.push('bad setting fixed');
    if (await finished()) {
      steps.push('nothing else: every removed member shows removed');
    } else {
      steps.push(`scale back to ${o.from}`);
      sim.scale(o.from);
      if (!(await poll(() => settled(o.from), left()))) throw new Error(`after scaling back to ${o.from}: members did not settle`);
      steps.push(`scale to ${o.to} again`);
      sim.scale(o.to);
      if (!(await poll(async () => (await podsGone()) && (await finished()), left()))) {
        throw new Error(`the second scale-down to ${o.to} did not finish`);
      }
    }
    result.remedy = steps.join(', ');
    result.remedyS = (Date.now() - remedyAt) / 1000;
    result.allRemoved = await finished();
  } catch (err) {
    result.error = err instanceof Error ? err.message : String(err);
    log(`scale-down ${o.from} -> ${o.to} (${o.fault}): ${result.error}`);
  } finally {
    if (load) {
      const total = await load.stop();
      log(`load over the whole run:\n${formatLoadReport(total)}`);
      result.putsAcked = total.put.ok;
      result.putsFailed = total.put.failed;
      result.ackedKeys = total.ackedKeys;
      const via = sim.pod(0)?.url;
      if (via) {
        // a cluster of one cannot answer quorum reads (N = 3): there, its one copy is every replica
        const [first, second] = o.to >= 2 ? (['quorum', 'all'] as const) : (['one', 'one'] as const);
        result.readAt = o.to >= 2 ? 'quorum, all' : 'one (the only member)';
        const q = await load.verify(via, { consistency: first });
        const a = await load.verify(via, { consistency: second });
        result.lostQuorum = q.lost.length;
        result.lostAll = a.lost.length;
        result.unverified = q.unverified.length;
        result.lostSamples = q.lost.slice(0, 5).map((l) => `${l.key}: expected ${l.expected}, got ${l.got}`);
      }
    }
    result.volumesKept = removed.filter((i) => existsSync(sim.volumeDir(i))).length;
    result.totalS = (Date.now() - t0) / 1000;
    await sim.stop();
    rmSync(dataRoot, { recursive: true, force: true });
  }
  return result;
}

/** One line of the FINDINGS table. */
export function scaleDownRow(r: ScaleDownResult): string {
  const saw = r.sawAfterFirst.map((m) => `${m.id} ${m.status}/${m.state}`).join(', ');
  const lost = r.error ? `run failed: ${r.error}` : `${r.lostQuorum} / ${r.lostAll} (read at ${r.readAt}), ${r.unverified} unreadable`;
  return (
    `| ${r.from} -> ${r.to} | ${r.fault} | ${r.putsAcked} puts (${r.ackedKeys} keys), ${r.putsFailed} failed | ${lost} | ` +
    `${r.preStops.join('; ')}; status: ${saw || 'all alive'} | ${r.remedy} | ${r.firstScaleDownS.toFixed(0)} s + ${r.remedyS.toFixed(0)} s (run ${r.totalS.toFixed(0)} s) |`
  );
}

export const SCALE_DOWN_TABLE_HEAD =
  '| scale | fault | acknowledged (failed) | lost after the remedy | what the operator saw after the first scale-down | remedy | time: scale-down + remedy |\n' +
  '|---|---|---|---|---|---|---|';
