// A kubelet and StatefulSet controller in miniature, for the manifests in k8s/: no API server can
// run here, so this reads the manifests and does what Kubernetes would do with them, with real
// `quorumkv serve` processes as the pods and a real DNS server (dnsmasq) as cluster DNS.
//
// What it follows from the manifests: replicas, podManagementPolicy (OrderedReady creates pod i
// only when pods 0..i-1 are Running and Ready; Parallel creates all), serviceName and the headless
// Service's publishNotReadyAddresses (a pod's DNS record exists from the moment it has an IP, or
// only while it is Ready), the container's command and env (downward API fields, Secret and
// ConfigMap references), its port, the startup/readiness/liveness exec probes with their
// initialDelaySeconds, periodSeconds, timeoutSeconds, successThreshold and failureThreshold, the
// preStop hook, terminationGracePeriodSeconds, restartPolicy Always with back-off, and one data
// directory per pod (its PersistentVolumeClaim) that outlives the pod.
//
// Where it must differ (all pods share one machine): pod i gets its own loopback IP
// (<prefix>.<k>.<10+i>, k counting the pod's re-creations, so a re-created pod has a new IP) and
// QUORUMKV_HOST is set to it instead of 0.0.0.0; QUORUMKV_DATA_DIR points at the pod's volume
// directory; QUORUMKV_DNS_SERVER points at the dnsmasq (a pod's resolv.conf would); exec probes get
// QUORUMKV_URL=http://<pod IP>:<port> (inside a pod, 127.0.0.1 would reach its own container); and
// the `quorumkv` binary is the compiled CLI of this repository. `timeScale` shrinks probe periods,
// initial delays, back-off and the termination grace period (not probe timeouts) to make runs
// faster; 1 is the manifest's timing.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { type DnsServer, startDnsmasq } from './dnsmasq';
import { cliPath, repoRoot } from './local-cluster';
import { find, type K8sObject, loadManifests } from './manifests';

export type Policy = 'OrderedReady' | 'Parallel';

export interface StatefulSetSimOptions {
  manifests?: string;
  podManagementPolicy?: Policy;
  replicas?: number;
  /** `naive` runs the readiness probe with --rule naive: the seed design's deadlock. */
  readinessRule?: 'two-phase' | 'naive';
  /** First two octets of pod IPs (default 127.0: pod i at 127.0.0.(10+i)). */
  ipPrefix?: string;
  dnsPort?: number;
  dataRoot: string;
  timeScale?: number;
  /** Extra env for every container (documented in the caller). */
  env?: Record<string, string>;
  log?: (line: string) => void;
}

interface Probe {
  command: string[];
  initialDelaySeconds: number;
  periodSeconds: number;
  timeoutSeconds: number;
  successThreshold: number;
  failureThreshold: number;
}

function probeOf(p: Record<string, unknown> | undefined): Probe | undefined {
  if (!p) return undefined;
  const exec = p.exec as { command?: string[] } | undefined;
  if (!exec?.command) throw new Error('only exec probes are simulated');
  return {
    command: exec.command,
    initialDelaySeconds: Number(p.initialDelaySeconds ?? 0),
    periodSeconds: Number(p.periodSeconds ?? 10),
    timeoutSeconds: Number(p.timeoutSeconds ?? 1),
    successThreshold: Number(p.successThreshold ?? 1),
    failureThreshold: Number(p.failureThreshold ?? 3),
  };
}

export class SimPod {
  phase: 'Pending' | 'Running' | 'Terminating' | 'Deleted' = 'Pending';
  ready = false;
  started = false;
  restarts = 0;
  proc: ChildProcess | undefined;
  /** Bumped on every container start: probe loops of an old container stop. */
  containerGeneration = 0;
  readonly logTail: string[] = [];
  terminating: Promise<void> | undefined;

  constructor(
    readonly name: string,
    readonly ordinal: number,
    readonly ip: string,
    readonly incarnation: number,
    readonly dataDir: string,
    readonly port: number,
  ) {}

  get url(): string {
    return `http://${this.ip}:${this.port}`;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }
}

export class StatefulSetSim {
  readonly timeline: string[] = [];
  private readonly objects: K8sObject[];
  private readonly sts: K8sObject;
  private readonly container: Record<string, unknown>;
  private readonly namespace: string;
  private readonly service: string;
  private readonly publishNotReady: boolean;
  private readonly port: number;
  private readonly probes: { startup?: Probe; readiness?: Probe; liveness?: Probe };
  private readonly graceSeconds: number;
  private readonly preStop: string[] | undefined;
  readonly policy: Policy;
  replicas: number;
  private readonly pods = new Map<number, SimPod>();
  private readonly incarnations = new Map<number, number>();
  private dns: DnsServer | undefined;
  private dnsHosts = '';
  private dnsUpdate: Promise<void> = Promise.resolve();
  private reconcileTimer: NodeJS.Timeout | undefined;
  private readonly startedAt = Date.now();
  private stopped = false;
  /** Probe and restart timers, cleared by stop() so nothing fires after the run. */
  private readonly timers = new Set<NodeJS.Timeout>();

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.stopped) fn();
    }, ms);
    this.timers.add(t);
  }

  constructor(private readonly opts: StatefulSetSimOptions) {
    this.objects = loadManifests(opts.manifests ?? path.join(repoRoot(), 'k8s'));
    this.sts = find(this.objects, 'StatefulSet');
    const spec = this.sts.spec;
    this.namespace = this.sts.metadata.namespace ?? 'default';
    this.service = spec.serviceName;
    const svc = find(this.objects, 'Service', this.service);
    this.publishNotReady = svc.spec.publishNotReadyAddresses === true;
    this.policy = opts.podManagementPolicy ?? spec.podManagementPolicy ?? 'OrderedReady';
    this.replicas = opts.replicas ?? spec.replicas ?? 1;
    const podSpec = spec.template.spec;
    this.container = podSpec.containers[0];
    this.graceSeconds = Number(podSpec.terminationGracePeriodSeconds ?? 30);
    const ports = (this.container.ports as Array<{ containerPort: number }> | undefined) ?? [];
    this.port = ports[0]?.containerPort ?? 8080;
    this.probes = {
      startup: probeOf(this.container.startupProbe as Record<string, unknown>),
      readiness: probeOf(this.container.readinessProbe as Record<string, unknown>),
      liveness: probeOf(this.container.livenessProbe as Record<string, unknown>),
    };
    if (opts.readinessRule === 'naive' && this.probes.readiness) {
      this.probes.readiness = { ...this.probes.readiness, command: [...this.probes.readiness.command, '--rule', 'naive'] };
    }
    const lifecycle = this.container.lifecycle as { preStop?: { exec?: { command?: string[] } } } | undefined;
    this.preStop = lifecycle?.preStop?.exec?.command;
  }

  // ---- bookkeeping ---------------------------------------------------------------------------------

  private event(line: string): void {
    const t = ((Date.now() - this.startedAt) / 1000).toFixed(2).padStart(7);
    const entry = `+${t}s ${line}`;
    this.timeline.push(entry);
    this.opts.log?.(entry);
  }

  private scaled(seconds: number): number {
    return seconds * 1000 * (this.opts.timeScale ?? 1);
  }

  podName(i: number): string {
    return `${this.sts.metadata.name}-${i}`;
  }

  dnsName(i: number): string {
    return `${this.podName(i)}.${this.service}.${this.namespace}.svc.cluster.local`;
  }

  pod(i: number): SimPod | undefined {
    const p = this.pods.get(i);
    return p && p.phase !== 'Deleted' ? p : undefined;
  }

  allPods(): SimPod[] {
    return [...this.pods.values()].filter((p) => p.phase !== 'Deleted').sort((a, b) => a.ordinal - b.ordinal);
  }

  /** Every desired pod exists, runs and is Ready. */
  allReady(): boolean {
    for (let i = 0; i < this.replicas; i++) {
      const p = this.pod(i);
      if (p?.phase !== 'Running' || !p.ready) return false;
    }
    return true;
  }

  /** Resolves true once `cond()` holds, false after `timeoutMs`. */
  async waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() > deadline || this.stopped) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
    return true;
  }

  // ---- cluster DNS ----------------------------------------------------------------------------------

  private syncDns(): Promise<void> {
    const hosts: Array<{ ip: string; names: string[] }> = [];
    for (const p of this.allPods()) {
      if (p.phase === 'Terminating' && !this.publishNotReady) continue;
      if (!this.publishNotReady && !p.ready) continue;
      hosts.push({ ip: p.ip, names: [this.dnsName(p.ordinal), `${this.service}.${this.namespace}.svc.cluster.local`] });
    }
    const key = JSON.stringify(hosts);
    if (key === this.dnsHosts || !this.dns) return this.dnsUpdate;
    this.dnsHosts = key;
    const dns = this.dns;
    this.dnsUpdate = this.dnsUpdate
      .then(() => dns.setHosts(hosts))
      .catch((err: unknown) => this.event(`dns update failed: ${String(err)}`));
    return this.dnsUpdate;
  }

  // ---- the StatefulSet controller ---------------------------------------------------------------

  async start(): Promise<void> {
    this.dns = await startDnsmasq({ port: this.opts.dnsPort ?? 15390, domain: 'cluster.local', hosts: [] });
    this.event(
      `statefulset ${this.sts.metadata.name}: ${this.replicas} replicas, ${this.policy}, readiness rule ${this.opts.readinessRule ?? 'two-phase'}`,
    );
    this.reconcileTimer = setInterval(() => void this.reconcile(), 100);
    await this.reconcile();
  }

  private reconciling = false;

  private async reconcile(): Promise<void> {
    if (this.reconciling || this.stopped) return;
    this.reconciling = true;
    try {
      for (let i = 0; i < this.replicas; i++) {
        const existing = this.pods.get(i);
        if (existing && existing.phase !== 'Deleted') {
          if (this.policy === 'OrderedReady' && !(existing.phase === 'Running' && existing.ready)) break;
          continue;
        }
        await this.createPod(i);
        if (this.policy === 'OrderedReady') break; // one at a time, the next once this one is Ready
      }
      // scale down: highest ordinals first, one at a time under OrderedReady
      const extra = this.allPods()
        .filter((p) => p.ordinal >= this.replicas && p.phase !== 'Terminating')
        .sort((a, b) => b.ordinal - a.ordinal);
      for (const p of extra) {
        void this.terminate(p, 'scaled down', true);
        if (this.policy === 'OrderedReady') break;
      }
      await this.syncDns();
    } finally {
      this.reconciling = false;
    }
  }

  private async createPod(i: number): Promise<void> {
    const k = this.incarnations.get(i) ?? 0;
    this.incarnations.set(i, k + 1);
    const ip = `${this.opts.ipPrefix ?? '127.0'}.${k}.${10 + i}`;
    const dataDir = path.join(this.opts.dataRoot, `data-${this.podName(i)}`); // the PVC outlives the pod
    mkdirSync(dataDir, { recursive: true });
    const pod = new SimPod(this.podName(i), i, ip, k, dataDir, this.port);
    this.pods.set(i, pod);
    this.event(`pod ${pod.name}: created, ip ${ip}`);
    await this.syncDns();
    pod.phase = 'Running';
    this.startContainer(pod);
  }

  /** Deletes a pod gracefully (preStop, SIGTERM, grace period, SIGKILL); the controller re-creates it. */
  deletePod(i: number): Promise<void> {
    const p = this.pod(i);
    if (!p) return Promise.resolve();
    return this.terminate(p, 'deleted', true);
  }

  /** Sets the desired replicas (kubectl scale). */
  scale(replicas: number): void {
    this.event(`statefulset scaled ${this.replicas} -> ${replicas}`);
    this.replicas = replicas;
  }

  // ---- the kubelet ---------------------------------------------------------------------------------

  private env(pod: SimPod): Record<string, string> {
    const env: Record<string, string> = {};
    for (const from of (this.container.envFrom as Array<{ configMapRef?: { name: string } }> | undefined) ?? []) {
      if (from.configMapRef) Object.assign(env, find(this.objects, 'ConfigMap', from.configMapRef.name).data ?? {});
    }
    for (const e of (this.container.env as Array<Record<string, unknown>> | undefined) ?? []) {
      const name = e.name as string;
      if (typeof e.value === 'string') env[name] = e.value;
      const vf = e.valueFrom as Record<string, Record<string, string>> | undefined;
      if (vf?.fieldRef) {
        const field = vf.fieldRef.fieldPath;
        env[name] =
          field === 'metadata.name' ? pod.name : field === 'metadata.namespace' ? this.namespace : field === 'status.podIP' ? pod.ip : '';
      } else if (vf?.secretKeyRef) {
        const secret = find(this.objects, 'Secret', vf.secretKeyRef.name);
        const key = vf.secretKeyRef.key as string;
        env[name] = secret.stringData?.[key] ?? Buffer.from(secret.data?.[key] ?? '', 'base64').toString();
      } else if (vf?.configMapKeyRef) {
        env[name] = find(this.objects, 'ConfigMap', vf.configMapKeyRef.name).data?.[vf.configMapKeyRef.key as string] ?? '';
      }
    }
    // The differences a shared machine forces (see the top of this file).
    env.QUORUMKV_HOST = pod.ip;
    env.QUORUMKV_DATA_DIR = pod.dataDir;
    env.QUORUMKV_DNS_SERVER = this.dns?.address ?? '';
    Object.assign(env, this.opts.env ?? {});
    return env;
  }

  /** The manifest's command, with the image's `quorumkv` being this repository's compiled CLI. */
  private argv(command: string[]): string[] {
    return command[0] === 'quorumkv' ? [process.execPath, cliPath(), ...command.slice(1)] : command;
  }

  private startContainer(pod: SimPod): void {
    if (pod.phase !== 'Running' || this.stopped) return;
    const [bin, ...args] = this.argv([...((this.container.command as string[]) ?? []), ...((this.container.args as string[]) ?? [])]);
    const proc = spawn(bin as string, args, { env: { ...process.env, ...this.env(pod) }, stdio: ['ignore', 'pipe', 'pipe'] });
    pod.proc = proc;
    pod.started = false;
    pod.ready = false;
    const generation = ++pod.containerGeneration;
    this.event(`pod ${pod.name}: container started (pid ${proc.pid}, restarts ${pod.restarts})`);
    for (const stream of [proc.stdout, proc.stderr]) {
      createInterface({ input: stream }).on('line', (line) => {
        pod.logTail.push(line);
        if (pod.logTail.length > 300) pod.logTail.shift();
      });
    }
    proc.once('exit', (code, signal) => {
      if (pod.containerGeneration !== generation) return;
      pod.ready = false;
      void this.syncDns();
      if (pod.phase !== 'Running' || this.stopped) return;
      // restartPolicy Always, with kubelet's back-off: at once the first time, then 10 s, 20 s, ... (max 5 min)
      const delay = pod.restarts === 0 ? 0 : Math.min(10 * 2 ** (pod.restarts - 1), 300);
      pod.restarts++;
      this.event(`pod ${pod.name}: container exited (code ${code}, signal ${signal}); restarting in ${delay} s`);
      this.later(this.scaled(delay), () => this.startContainer(pod));
    });
    this.runProbes(pod, generation);
  }

  private alive(pod: SimPod, generation: number): boolean {
    return pod.containerGeneration === generation && pod.phase === 'Running' && pod.running && !this.stopped;
  }

  /** Runs one exec probe: true on exit 0 within its timeout. */
  private exec(pod: SimPod, probe: Probe): Promise<{ ok: boolean; line: string }> {
    const [bin, ...args] = this.argv(probe.command);
    return new Promise((resolve) => {
      const child = spawn(bin as string, args, {
        env: { ...process.env, ...this.env(pod), QUORUMKV_URL: pod.url },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        out += d.toString();
      });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve({ ok: false, line: `probe timed out after ${probe.timeoutSeconds} s` });
      }, probe.timeoutSeconds * 1000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve({ ok: code === 0, line: out.trim().split('\n').at(-1) ?? '' });
      });
    });
  }

  private runProbes(pod: SimPod, generation: number): void {
    const { startup, readiness, liveness } = this.probes;
    /** Runs `probe` every period until the container goes or `onResult` returns 'stop'. */
    const loop = (probe: Probe, onResult: (ok: boolean, line: string) => 'stop' | undefined) => {
      const tick = async () => {
        if (!this.alive(pod, generation)) return;
        const r = await this.exec(pod, probe);
        if (!this.alive(pod, generation)) return;
        if (onResult(r.ok, r.line) === 'stop') return;
        if (this.alive(pod, generation)) this.later(this.scaled(probe.periodSeconds), () => void tick());
      };
      this.later(this.scaled(probe.initialDelaySeconds), () => void tick());
    };
    const afterStartup = () => {
      if (readiness) {
        let ok = 0;
        let fail = 0;
        loop(readiness, (success, line) => {
          if (success) {
            fail = 0;
            ok++;
            if (!pod.ready && ok >= readiness.successThreshold) {
              pod.ready = true;
              this.event(`pod ${pod.name}: Ready (${line})`);
              void this.syncDns();
            }
          } else {
            ok = 0;
            fail++;
            if (pod.ready && fail >= readiness.failureThreshold) {
              pod.ready = false;
              this.event(`pod ${pod.name}: NotReady (${line})`);
              void this.syncDns();
            } else if (!pod.ready && fail === 1) this.event(`pod ${pod.name}: readiness failed (${line})`);
          }
          return undefined;
        });
      } else {
        pod.ready = true;
      }
      if (liveness) {
        let fail = 0;
        loop(liveness, (success, line) => {
          if (success) {
            fail = 0;
            return undefined;
          }
          fail++;
          this.event(`pod ${pod.name}: liveness failed ${fail}/${liveness.failureThreshold} (${line})`);
          if (fail < liveness.failureThreshold) return undefined;
          void this.restartContainer(pod, 'liveness probe failed');
          return 'stop';
        });
      }
    };
    if (startup) {
      let fail = 0;
      loop(startup, (success, line) => {
        if (success) {
          pod.started = true;
          this.event(`pod ${pod.name}: started (${line})`);
          afterStartup();
          return 'stop'; // a startup probe runs until it first succeeds
        }
        if (++fail < startup.failureThreshold) return undefined;
        void this.restartContainer(pod, `startup probe failed ${fail} times (${line})`);
        return 'stop';
      });
    } else {
      pod.started = true;
      afterStartup();
    }
  }

  /** Kills the container the way kubelet does (preStop, SIGTERM, grace, SIGKILL); it then restarts it. */
  private async restartContainer(pod: SimPod, why: string): Promise<void> {
    this.event(`pod ${pod.name}: killing container: ${why}`);
    await this.stopContainer(pod);
  }

  private async stopContainer(pod: SimPod): Promise<void> {
    const proc = pod.proc;
    if (!proc || !pod.running) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    const deadline = Date.now() + this.scaled(this.graceSeconds);
    if (this.preStop) {
      const hook = this.exec(pod, {
        command: this.preStop,
        initialDelaySeconds: 0,
        periodSeconds: 0,
        timeoutSeconds: this.graceSeconds,
        successThreshold: 1,
        failureThreshold: 1,
      });
      const r = await Promise.race([hook, exited.then(() => ({ ok: false, line: 'container exited' }))]);
      this.event(`pod ${pod.name}: preStop ${r.ok ? 'done' : 'failed'} (${r.line})`);
    }
    if (pod.running) proc.kill('SIGTERM');
    const graceLeft = Math.max(0, deadline - Date.now());
    let graceTimer: NodeJS.Timeout | undefined;
    const killed = await Promise.race([
      exited.then(() => false),
      new Promise<boolean>((r) => {
        graceTimer = setTimeout(() => r(true), graceLeft);
      }),
    ]);
    clearTimeout(graceTimer);
    if (killed && pod.running) {
      this.event(`pod ${pod.name}: grace period over: SIGKILL`);
      proc.kill('SIGKILL');
      await exited;
    }
  }

  private terminate(pod: SimPod, why: string, remove: boolean): Promise<void> {
    pod.terminating ??= (async () => {
      pod.phase = 'Terminating';
      pod.ready = false;
      this.event(`pod ${pod.name}: terminating (${why})`);
      await this.syncDns();
      await this.stopContainer(pod);
      if (remove) {
        pod.phase = 'Deleted';
        this.event(`pod ${pod.name}: deleted`);
        await this.syncDns();
      }
    })();
    return pod.terminating;
  }

  /** Sends a signal to a pod's container process (SIGKILL: the process dies; SIGSTOP: it hangs). */
  signal(i: number, signal: NodeJS.Signals): void {
    const p = this.pod(i);
    if (!p?.proc?.pid) throw new Error(`pod ${i} has no running container`);
    this.event(`pod ${p.name}: ${signal} sent to the container process (pid ${p.proc.pid})`);
    process.kill(p.proc.pid, signal);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await Promise.all(
      [...this.pods.values()].map(async (p) => {
        if (p.proc && p.running) {
          const exited = new Promise<void>((r) => p.proc?.once('exit', () => r()));
          if (p.proc.pid) {
            try {
              process.kill(p.proc.pid, 'SIGCONT');
            } catch {}
          }
          p.proc.kill('SIGKILL');
          await exited;
        }
      }),
    );
    await this.dns?.stop();
  }
}
