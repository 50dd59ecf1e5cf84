// A kubelet and StatefulSet controller in miniature, for the manifests in k8s/: no API server can
// run here, so this renders a kustomization (`kubectl kustomize <dir>`, k8s/ unless told otherwise)
// and does what Kubernetes would do with the objects, with real
// `quorumkv serve` processes as the pods and a real DNS server (dnsmasq) as cluster DNS.
//
// What it follows from the manifests: replicas, podManagementPolicy (OrderedReady creates pod i
// only when pods 0..i-1 are Running and Ready; Parallel creates all), serviceName and the headless
// Service's publishNotReadyAddresses (a pod's DNS record exists from the moment it has an IP, or
// only while it is Ready), the container's command and env (downward API fields, Secret and
// ConfigMap references), its port, the startup/readiness/liveness exec probes with their
// initialDelaySeconds, periodSeconds, timeoutSeconds, successThreshold and failureThreshold, the
// preStop hook, terminationGracePeriodSeconds, restartPolicy Always with back-off, and one data
// directory per pod (its PersistentVolumeClaim) that outlives the pod unless the StatefulSet's
// persistentVolumeClaimRetentionPolicy says otherwise.
//
// The controller follows the real one (pkg/controller/statefulset): scale-up creates the missing
// ordinals (OrderedReady: one at a time, each once its predecessors are Running and Ready);
// scale-down terminates the ordinals >= replicas (Parallel: all at once; OrderedReady: the highest
// first, the next only once it is gone); `kubectl rollout restart` (rollingRestart) replaces pods
// from the highest ordinal to 0, one at a time, each only once the one before is Running and Ready
// again. Terminating a pod: it leaves the client Service's endpoints at once, its preStop hook runs
// (output and exit code in the timeline), then SIGTERM, then SIGKILL when the grace period ends.
// With whenScaled: Delete, the volume of a pod removed by a scale-down is deleted once the pod is
// gone; a pod deleted for any other reason keeps it. With Retain (the manifests') every volume stays.
// Faults a scale-down must survive: halt() (a pod's machine is lost), crashLoop() (its container
// exits at start), and the fake API's `forbid` (the preStop's call refused with 403).
//
// A fake API server (kube-api.ts) answers the pods' GET of their StatefulSet with the replicas the
// controller wants now, after checking the pod's ServiceAccount token and the manifests' RBAC.
//
// Where it must differ (all pods share one machine): pod i gets its own loopback IP
// (<prefix>.<k>.<10+i>, k counting the pod's re-creations, so a re-created pod has a new IP) and
// QUORUMKV_HOST is set to it instead of 0.0.0.0; QUORUMKV_DATA_DIR points at the pod's volume
// directory; QUORUMKV_DNS_SERVER points at the dnsmasq (a pod's resolv.conf would); exec probes get
// QUORUMKV_URL=http://<pod IP>:<port> (inside a pod, 127.0.0.1 would reach its own container); and
// the `quorumkv` binary is the compiled CLI of this repository. Like kubelet, it sets
// KUBERNETES_SERVICE_HOST/PORT (here the fake API server on 127.0.0.1) in every container; the
// service-account directory cannot be mounted at /var/run/secrets/kubernetes.io/serviceaccount on
// a shared machine, so QUORUMKV_SERVICEACCOUNT_DIR points at the fake's (when the token is mounted,
// i.e. automountServiceAccountToken is not false). The Secret the pods read is made by hand at
// install time, not by the manifests: the simulator makes it (`secrets`, random tokens by default).
// The cluster domain is cluster.local (dnsmasq's zone): QUORUMKV_CLUSTER_DOMAIN says so, since this
// machine's /etc/resolv.conf, unlike a pod's, has no `svc.<domain>` search entry to read it from. `timeScale` shrinks probe periods,
// initial delays, back-off and the termination grace period (not probe timeouts) to make runs
// faster; 1 is the manifest's timing. Below 1 it also shrinks the preStop drain's wait for the
// endpoints to drop the pod (QUORUMKV_PRESTOP_WAIT_MS): here they drop it at once.

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { TUNING } from '../../src/core/defaults';
import { type DnsServer, startDnsmasq } from './dnsmasq';
import { FakeKubeApi } from './kube-api';
import { cliPath, repoRoot } from './local-cluster';
import { find, type K8sObject, loadManifests } from './manifests';

export type Policy = 'OrderedReady' | 'Parallel';

export interface StatefulSetSimOptions {
  /** A kustomization directory, rendered with `kubectl kustomize` (default: k8s/). */
  manifests?: string;
  /**
   * The Secrets that exist in the namespace besides the manifests' own, by name and key (what
   * `kubectl create secret` made at install time). Default: Secret quorumkv with random
   * cluster-secret and admin-token values, as README's install step makes it.
   */
  secrets?: Record<string, Record<string, string>>;
  podManagementPolicy?: Policy;
  replicas?: number;
  /** `naive` runs the readiness probe with --rule naive: the seed design's deadlock. */
  readinessRule?: 'two-phase' | 'naive';
  /** First two octets of pod IPs (default 127.0: pod i at 127.0.0.(10+i)). */
  ipPrefix?: string;
  dnsPort?: number;
  dataRoot: string;
  timeScale?: number;
  /**
   * Caps the termination grace period (after timeScale), so that a bounded test cannot wait for
   * the manifest's hour-long one; like `kubectl delete --grace-period`. Default: no cap.
   */
  maxGraceSeconds?: number;
  /** Overrides the manifest's persistentVolumeClaimRetentionPolicy.whenScaled (to compare both). */
  pvcWhenScaled?: 'Retain' | 'Delete';
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
  /** Probe-level override of the pod's grace period when this probe's failure kills the container. */
  terminationGracePeriodSeconds?: number;
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
    ...(p.terminationGracePeriodSeconds !== undefined ? { terminationGracePeriodSeconds: Number(p.terminationGracePeriodSeconds) } : {}),
  };
}

/** What a preStop hook did: kubelet records a failed one as a FailedPreStopHook event. */
export interface HookResult {
  /** Exit code; null when it was killed (grace period over, or the container exited under it). */
  code: number | null;
  /** Why it ended when it did not exit by itself. */
  cutShort?: string;
  /** Its output, stdout and stderr interleaved by line (the last MAX_HOOK_LINES lines). */
  output: string[];
  durationMs: number;
}

/** What makes a crash-looping container exit at start: a setting `quorumkv serve` refuses (exit 2). */
const CRASH_LOOP_ENV = { QUORUMKV_REPLICATION_FACTOR: '0' } as const;

/** Lines of a preStop hook's output kept per run, and copied into the timeline. */
const MAX_HOOK_LINES = 200;
/** kubelet's minimum grace after a preStop that used up the grace period (minimumGracePeriodInSeconds). */
const MIN_GRACE_AFTER_HOOK_SECONDS = 2;

export class SimPod {
  phase: 'Pending' | 'Running' | 'Terminating' | 'Deleted' = 'Pending';
  /** Why it is being terminated: a scale-down, a rolling update, a deletion. */
  terminationReason: string | undefined;
  /** The preStop hook runs of this pod (one per container stop that ran it). */
  readonly preStops: HookResult[] = [];
  ready = false;
  started = false;
  restarts = 0;
  proc: ChildProcess | undefined;
  /** Bumped on every container start: probe loops of an old container stop. */
  containerGeneration = 0;
  readonly logTail: string[] = [];
  terminating: Promise<void> | undefined;
  /** Its machine is gone (halt()): the container is not restarted until restore(). */
  halted = false;
  /** Its container exits at start (crashLoop()): kubelet's back-off, CrashLoopBackOff. */
  crashLooping = false;
  /** Readiness probes that failed, over every container of the pod. */
  readinessFailures = 0;

  constructor(
    readonly name: string,
    readonly ordinal: number,
    readonly ip: string,
    readonly incarnation: number,
    readonly dataDir: string,
    readonly port: number,
    /** The StatefulSet revision (controller-revision-hash) the pod was created from. */
    readonly revision: number,
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
  /** The Secrets made at install time (`secrets` option), by name and key. */
  readonly secrets: Record<string, Record<string, string>>;
  private readonly sts: K8sObject;
  private readonly container: Record<string, unknown>;
  private readonly namespace: string;
  private readonly service: string;
  private readonly publishNotReady: boolean;
  private readonly port: number;
  private readonly probes: { startup?: Probe; readiness?: Probe; liveness?: Probe };
  private readonly graceSeconds: number;
  private readonly preStop: string[] | undefined;
  private readonly serviceAccount: string;
  private readonly mountToken: boolean;
  private readonly clientService: string | undefined;
  /** persistentVolumeClaimRetentionPolicy.whenScaled: Delete removes a scaled-down pod's volume. */
  readonly pvcWhenScaled: 'Retain' | 'Delete';
  readonly updateStrategy: 'RollingUpdate' | 'OnDelete';
  /** The update revision: bumped by rollingRestart(), as `kubectl rollout restart` does. */
  revision = 1;
  /** The cap on grace periods (StatefulSetSimOptions.maxGraceSeconds); may change during a run. */
  maxGraceSeconds: number | undefined;
  /** The fake API server the pods' ServiceAccount talks to; set by start(). */
  kubeApi: FakeKubeApi | undefined;
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
    this.maxGraceSeconds = opts.maxGraceSeconds;
    this.objects = loadManifests(opts.manifests ?? path.join(repoRoot(), 'k8s'));
    this.secrets = opts.secrets ?? {
      quorumkv: { 'cluster-secret': randomBytes(32).toString('hex'), 'admin-token': randomBytes(32).toString('hex') },
    };
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
    // A pod cannot be created with a ServiceAccount that does not exist ("default" always does).
    this.serviceAccount = podSpec.serviceAccountName ?? 'default';
    const sa = this.objects.find((o) => o.kind === 'ServiceAccount' && o.metadata?.name === this.serviceAccount);
    if (!sa && this.serviceAccount !== 'default')
      throw new Error(`the pod's ServiceAccount ${this.serviceAccount} is not in the manifests`);
    // The pod's setting wins over the ServiceAccount's; mounted unless one says false.
    this.mountToken = (podSpec.automountServiceAccountToken ?? sa?.automountServiceAccountToken ?? true) !== false;
    this.clientService = this.objects.find(
      (o) => o.kind === 'Service' && o.spec?.clusterIP !== 'None' && o.metadata?.name !== this.service,
    )?.metadata.name;
    this.pvcWhenScaled = opts.pvcWhenScaled ?? spec.persistentVolumeClaimRetentionPolicy?.whenScaled ?? 'Retain';
    this.updateStrategy = spec.updateStrategy?.type ?? 'RollingUpdate';
  }

  // ---- bookkeeping ---------------------------------------------------------------------------------

  /** Milliseconds since the simulation was created: the clock of the timeline. */
  elapsedMs(): number {
    return Date.now() - this.startedAt;
  }

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

  /** The client Service's endpoints: pods that are Ready and not Terminating (the endpoints controller's view). */
  readyEndpoints(): string[] {
    return this.allPods()
      .filter((p) => p.phase === 'Running' && p.ready)
      .map((p) => p.url);
  }

  /** Running, Ready and not Terminating: what the controller waits for. */
  private healthy(p: SimPod | undefined): boolean {
    return p !== undefined && p.phase === 'Running' && p.ready;
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
    this.kubeApi = new FakeKubeApi({
      objects: this.objects,
      namespace: this.namespace,
      statefulSet: this.sts.metadata.name,
      serviceAccount: this.serviceAccount,
      state: () => this.apiState(),
    });
    await this.kubeApi.start();
    this.dns = await startDnsmasq({ port: this.opts.dnsPort ?? 15390, domain: 'cluster.local', hosts: [] });
    this.event(
      `statefulset ${this.sts.metadata.name}: ${this.replicas} replicas, ${this.policy}, readiness rule ${this.opts.readinessRule ?? 'two-phase'}; ` +
        `kube-apiserver (fake) at ${this.kubeApi.url}`,
    );
    this.reconcileTimer = setInterval(() => void this.reconcile(), 100);
    await this.reconcile();
  }

  /** spec.replicas and status as the API server would show them. */
  private apiState(): { replicas: number; status: Record<string, number> } {
    const pods = this.allPods().filter((p) => p.phase !== 'Terminating');
    const ready = pods.filter((p) => this.healthy(p)).length;
    return {
      replicas: this.replicas,
      status: {
        observedGeneration: this.revision,
        replicas: pods.length,
        readyReplicas: ready,
        availableReplicas: ready,
        currentReplicas: pods.filter((p) => p.revision === this.revision).length,
        updatedReplicas: pods.filter((p) => p.revision === this.revision).length,
      },
    };
  }

  private reconciling = false;

  private async reconcile(): Promise<void> {
    if (this.reconciling || this.stopped) return;
    this.reconciling = true;
    try {
      await this.sync();
      await this.syncDns();
    } finally {
      this.reconciling = false;
    }
  }

  /**
   * One pass of the StatefulSet controller (stateful_set_control.go): create the missing ordinals
   * below replicas, then terminate the condemned ones (ordinal >= replicas) from the highest, then
   * replace pods of an old revision from the highest. OrderedReady ("monotonic") stops the pass at
   * the first pod that is not Running and Ready or is Terminating; Parallel goes on.
   */
  private async sync(): Promise<void> {
    const monotonic = this.policy === 'OrderedReady';
    for (let i = 0; i < this.replicas; i++) {
      const existing = this.pod(i);
      if (!existing) {
        await this.createPod(i);
        if (monotonic) return; // one at a time, the next once this one is Ready
        continue;
      }
      if (monotonic && !this.healthy(existing)) return;
    }
    const condemned = this.allPods()
      .filter((p) => p.ordinal >= this.replicas)
      .sort((a, b) => b.ordinal - a.ordinal);
    const firstUnhealthy = this.allPods().find((p) => !this.healthy(p));
    for (const p of condemned) {
      if (p.phase === 'Terminating') {
        if (monotonic) return; // wait for it to be gone before the next
        continue;
      }
      if (monotonic && !this.healthy(p) && p !== firstUnhealthy) return;
      void this.terminate(p, `scaled down to ${this.replicas} replicas`, 'scale-down');
      if (monotonic) return;
    }
    if (this.updateStrategy !== 'RollingUpdate') return; // OnDelete: pods get the new revision when deleted
    // Rolling update, partition 0: from the highest ordinal, one pod at a time, in both policies.
    for (let i = this.replicas - 1; i >= 0; i--) {
      const p = this.pod(i);
      if (!p) return;
      if (p.revision !== this.revision && p.phase !== 'Terminating') {
        void this.terminate(p, `rolling update to revision ${this.revision}`, 'update');
        return;
      }
      if (!this.healthy(p)) return; // wait for the replaced pod to be Running and Ready
    }
  }

  private async createPod(i: number): Promise<void> {
    const k = this.incarnations.get(i) ?? 0;
    this.incarnations.set(i, k + 1);
    const ip = `${this.opts.ipPrefix ?? '127.0'}.${k}.${10 + i}`;
    const dataDir = this.volumeDir(i); // the PVC outlives the pod
    mkdirSync(dataDir, { recursive: true });
    const pod = new SimPod(this.podName(i), i, ip, k, dataDir, this.port, this.revision);
    this.pods.set(i, pod);
    this.event(`pod ${pod.name}: created, ip ${ip}, revision ${pod.revision}`);
    await this.syncDns();
    pod.phase = 'Running';
    this.startContainer(pod);
  }

  /** The directory that stands for PersistentVolumeClaim data-<pod name>. */
  volumeDir(i: number): string {
    return path.join(this.opts.dataRoot, `data-${this.podName(i)}`);
  }

  /** Deletes a pod gracefully (preStop, SIGTERM, grace period, SIGKILL); the controller re-creates it on its volume. */
  deletePod(i: number): Promise<void> {
    const p = this.pod(i);
    if (!p) return Promise.resolve();
    return this.terminate(p, 'deleted', 'delete');
  }

  /** Sets the desired replicas (kubectl scale); the controller creates or terminates pods on its next pass. */
  scale(replicas: number): void {
    if (!Number.isSafeInteger(replicas) || replicas < 0) throw new Error(`replicas must be a non-negative integer; got ${replicas}`);
    this.event(`statefulset scaled ${this.replicas} -> ${replicas}`);
    this.replicas = replicas;
  }

  /** Scales and waits until exactly the ordinals 0..replicas-1 exist, Running and Ready (false at the deadline). */
  async scaleAndWait(replicas: number, timeoutMs: number): Promise<boolean> {
    this.scale(replicas);
    const done = await this.waitFor(() => this.allReady() && this.allPods().length === this.replicas, timeoutMs);
    this.event(done ? `scale to ${replicas}: done` : `scale to ${replicas}: not done after ${timeoutMs} ms`);
    return done;
  }

  /** Every pod below replicas runs the update revision and is Ready, and no other pod remains. */
  rolloutComplete(): boolean {
    return this.allReady() && this.allPods().every((p) => p.ordinal < this.replicas && p.revision === this.revision);
  }

  /**
   * `kubectl rollout restart`, then `kubectl rollout status`: a new template revision, which the
   * controller rolls out (RollingUpdate: highest ordinal first, one pod at a time, each Running and
   * Ready before the next). Resolves true once complete, false at the deadline.
   */
  async rollingRestart(timeoutMs: number): Promise<boolean> {
    this.revision++;
    this.event(`rollout restart: revision ${this.revision} (${this.updateStrategy})`);
    const done = await this.waitFor(() => this.rolloutComplete(), timeoutMs);
    this.event(
      done ? `rollout to revision ${this.revision}: complete` : `rollout to revision ${this.revision}: not complete after ${timeoutMs} ms`,
    );
    return done;
  }

  /** Container env values set by setEnv(), by the template revision that set them (each holds all set so far). */
  private readonly templateEnv = new Map<number, Record<string, string>>();

  /** What setEnv() had set in the template of `revision`: its own values, or those of the last revision before it that set some. */
  private templateEnvOf(revision: number): Record<string, string> {
    let at = 0;
    for (const r of this.templateEnv.keys()) if (r <= revision && r > at) at = r;
    return this.templateEnv.get(at) ?? {};
  }

  /**
   * `kubectl set env statefulset/<name> NAME=value`: a new template revision whose container has
   * `name` set to `value` (over what the manifest or `env` gave it), rolled out like any template
   * change (RollingUpdate: highest ordinal first, one at a time); wait for it with rolloutStatus().
   * A pod keeps the env of the revision it was created from, in its container, probes and preStop,
   * also when its container restarts. The value is not shown in the timeline (it may be a secret).
   */
  setEnv(name: string, value: string): void {
    const env = { ...this.templateEnvOf(this.revision), [name]: value };
    this.revision++;
    this.templateEnv.set(this.revision, env);
    this.event(`set env ${name} (value not shown): revision ${this.revision} (${this.updateStrategy})`);
  }

  /** `kubectl rollout status`: true once the update revision is rolled out (rolloutComplete), false at the deadline. */
  async rolloutStatus(timeoutMs: number): Promise<boolean> {
    const done = await this.waitFor(() => this.rolloutComplete(), timeoutMs);
    this.event(
      done ? `rollout to revision ${this.revision}: complete` : `rollout to revision ${this.revision}: not complete after ${timeoutMs} ms`,
    );
    return done;
  }

  // ---- the kubelet ---------------------------------------------------------------------------------

  private env(pod: SimPod): Record<string, string> {
    // What kubelet puts in every container before the container's own env (which may override it):
    // the API server's Service address. Here it is the fake API server.
    const env: Record<string, string> = {
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: String(this.kubeApi?.port ?? ''),
    };
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
        env[name] = this.secretValue(vf.secretKeyRef.name as string, vf.secretKeyRef.key as string);
      } else if (vf?.configMapKeyRef) {
        env[name] = find(this.objects, 'ConfigMap', vf.configMapKeyRef.name).data?.[vf.configMapKeyRef.key as string] ?? '';
      }
    }
    // The differences a shared machine forces (see the top of this file).
    env.QUORUMKV_HOST = pod.ip;
    env.QUORUMKV_DATA_DIR = pod.dataDir;
    env.QUORUMKV_DNS_SERVER = this.dns?.address ?? '';
    env.QUORUMKV_CLUSTER_DOMAIN = 'cluster.local';
    if (this.mountToken && this.kubeApi) env.QUORUMKV_SERVICEACCOUNT_DIR = this.kubeApi.serviceAccountDir;
    if ((this.opts.timeScale ?? 1) < 1) env.QUORUMKV_PRESTOP_WAIT_MS = String(this.scaled(TUNING.drainWaitMs / 1000));
    Object.assign(env, this.opts.env ?? {});
    Object.assign(env, this.templateEnvOf(pod.revision));
    return env;
  }

  /** A Secret's value as kubelet would read it; a missing one fails the pod like CreateContainerConfigError. */
  private secretValue(name: string, key: string): string {
    const made = this.secrets[name];
    if (made) {
      if (made[key] === undefined) throw new Error(`secret "${name}" has no key "${key}"`);
      return made[key];
    }
    const secret = find(this.objects, 'Secret', name);
    return secret.stringData?.[key] ?? Buffer.from(secret.data?.[key] ?? '', 'base64').toString();
  }

  /** The manifest's command, with the image's `quorumkv` being this repository's compiled CLI. */
  /** The image's binaries as the built files they link to (Dockerfile: bin/quorumkv, bin/quorumkv-probe). */
  private argv(command: string[]): string[] {
    if (command[0] === 'quorumkv') return [process.execPath, cliPath(), ...command.slice(1)];
    if (command[0] === 'quorumkv-probe') return [process.execPath, path.join(path.dirname(cliPath()), 'probe.js'), ...command.slice(1)];
    return command;
  }

  private startContainer(pod: SimPod): void {
    if (pod.phase !== 'Running' || this.stopped || pod.running || pod.halted) return;
    const [bin, ...args] = this.argv([...((this.container.command as string[]) ?? []), ...((this.container.args as string[]) ?? [])]);
    const env = { ...process.env, ...this.env(pod), ...(pod.crashLooping ? CRASH_LOOP_ENV : {}) };
    const proc = spawn(bin as string, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
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
      if (pod.halted) {
        this.event(`pod ${pod.name}: container exited (code ${code}, signal ${signal}); its node is down: not restarted`);
        return;
      }
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
            pod.readinessFailures++;
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
          void this.restartContainer(pod, 'liveness probe failed', liveness.terminationGracePeriodSeconds);
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
        void this.restartContainer(pod, `startup probe failed ${fail} times (${line})`, startup.terminationGracePeriodSeconds);
        return 'stop';
      });
    } else {
      pod.started = true;
      afterStartup();
    }
  }

  /** Kills the container the way kubelet does (preStop, SIGTERM, grace, SIGKILL); it then restarts it. */
  private async restartContainer(pod: SimPod, why: string, graceSeconds?: number): Promise<void> {
    this.event(`pod ${pod.name}: killing container: ${why}`);
    await this.stopContainer(pod, graceSeconds);
  }

  /**
   * Stops the container as kubelet's killContainer does: the preStop hook first, within the grace
   * period; then SIGTERM; then SIGKILL once the grace period is over (at least 2 s after a hook
   * that used it all up). The grace period is the pod's, or a failed probe's own
   * terminationGracePeriodSeconds when that probe's failure is the reason.
   */
  private async stopContainer(pod: SimPod, graceSeconds = this.graceSeconds): Promise<void> {
    const proc = pod.proc;
    if (!proc || !pod.running) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    const started = Date.now();
    let graceMs = this.scaled(graceSeconds);
    const cap = this.maxGraceSeconds;
    if (cap !== undefined && graceMs > cap * 1000) {
      graceMs = cap * 1000;
      this.event(`pod ${pod.name}: grace period capped at ${cap} s (maxGraceSeconds)`);
    }
    let deadline = started + graceMs;
    if (this.preStop) {
      const r = await this.runHook(pod, this.preStop, deadline, exited);
      pod.preStops.push(r);
      if (pod.preStops.length > 20) pod.preStops.shift();
      const took = `${(r.durationMs / 1000).toFixed(2)} s`;
      this.event(
        r.code === 0
          ? `pod ${pod.name}: preStop done (exit code 0, ${took})`
          : `pod ${pod.name}: preStop failed (${r.code === null ? `killed: ${r.cutShort}` : `exit code ${r.code}`}, ${took}): FailedPreStopHook`,
      );
      deadline = Math.max(deadline, Date.now() + this.scaled(MIN_GRACE_AFTER_HOOK_SECONDS));
    }
    if (pod.running) {
      this.event(`pod ${pod.name}: SIGTERM (${((deadline - Date.now()) / 1000).toFixed(1)} s of grace left)`);
      proc.kill('SIGTERM');
    }
    let graceTimer: NodeJS.Timeout | undefined;
    const killed = await Promise.race([
      exited.then(() => false),
      new Promise<boolean>((r) => {
        graceTimer = setTimeout(() => r(true), Math.max(0, deadline - Date.now()));
      }),
    ]);
    clearTimeout(graceTimer);
    if (killed && pod.running) {
      this.event(`pod ${pod.name}: grace period over: SIGKILL`);
      proc.kill('SIGKILL');
      await exited;
    }
    this.event(`pod ${pod.name}: container stopped (${((Date.now() - started) / 1000).toFixed(2)} s after the stop began)`);
  }

  /** Hook processes still running, killed by stop(). */
  private readonly hooks = new Set<ChildProcess>();

  /**
   * Runs an exec hook in the pod until it exits, the deadline passes, or the container exits (which
   * in a real pod kills every process in it). Each output line goes into the timeline (bounded).
   */
  private runHook(pod: SimPod, command: string[], deadline: number, containerExited: Promise<void>): Promise<HookResult> {
    const [bin, ...args] = this.argv(command);
    const started = Date.now();
    this.event(`pod ${pod.name}: preStop: ${command.join(' ')}`);
    return new Promise((resolve) => {
      // its own process group, so that what it starts dies with it
      const child = spawn(bin as string, args, {
        env: { ...process.env, ...this.env(pod), QUORUMKV_URL: pod.url },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      this.hooks.add(child);
      const output: string[] = [];
      let lines = 0;
      for (const stream of [child.stdout, child.stderr]) {
        createInterface({ input: stream }).on('line', (line) => {
          lines++;
          output.push(line);
          if (output.length > MAX_HOOK_LINES) output.shift();
          if (lines <= MAX_HOOK_LINES) this.event(`pod ${pod.name}: preStop| ${line}`);
          else if (lines === MAX_HOOK_LINES + 1) this.event(`pod ${pod.name}: preStop| (more output not shown in the timeline)`);
        });
      }
      let cutShort: string | undefined;
      const kill = (why: string) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        cutShort = why;
        try {
          if (child.pid) process.kill(-child.pid, 'SIGKILL');
        } catch {}
      };
      const timer = setTimeout(() => kill('the grace period is over'), Math.max(0, deadline - Date.now()));
      void containerExited.then(() => kill('the container exited'));
      child.once('error', (err) => {
        output.push(`cannot run ${bin}: ${err.message}`);
      });
      let finished = false;
      const finish = (code: number | null) => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        this.hooks.delete(child);
        resolve({ code: cutShort ? null : code, ...(cutShort ? { cutShort } : {}), output, durationMs: Date.now() - started });
      };
      // 'close' comes once its output is read to the end; a process it left behind holding the
      // pipes must not hold up the pod, so 'exit' ends it too, a second later.
      child.once('close', (code) => finish(code));
      child.once('exit', (code) => {
        const t = setTimeout(() => finish(code), 1000);
        t.unref();
      });
    });
  }

  /**
   * Pod deletion: the pod leaves the client Service's endpoints at once (the endpoints controller
   * drops a pod with a deletionTimestamp), then kubelet stops its container. `cause` decides what
   * happens to its volume: with whenScaled: Delete, a pod removed by a scale-down loses its
   * PersistentVolumeClaim once it is gone (unless a scale-up wants its ordinal back by then);
   * deleted or replaced pods keep it.
   */
  private terminate(pod: SimPod, why: string, cause: 'scale-down' | 'update' | 'delete'): Promise<void> {
    pod.terminating ??= (async () => {
      pod.phase = 'Terminating';
      pod.terminationReason = why;
      pod.ready = false;
      this.event(`pod ${pod.name}: terminating (${why}); out of the endpoints of Service ${this.clientService ?? '(none)'}`);
      await this.syncDns();
      await this.stopContainer(pod);
      pod.phase = 'Deleted';
      this.event(`pod ${pod.name}: deleted`);
      await this.syncDns();
      if (cause === 'scale-down' && this.pvcWhenScaled === 'Delete' && pod.ordinal >= this.replicas && !this.stopped) {
        rmSync(pod.dataDir, { recursive: true, force: true });
        this.event(`pvc data-${pod.name}: deleted (persistentVolumeClaimRetentionPolicy.whenScaled: Delete)`);
      } else if (cause === 'scale-down' && !this.stopped) {
        this.event(`pvc data-${pod.name}: kept (persistentVolumeClaimRetentionPolicy.whenScaled: ${this.pvcWhenScaled})`);
      }
    })();
    return pod.terminating;
  }

  // ---- faults a scale-down must survive (scripts/lib/scale-down.ts) -------------------------------

  /**
   * The machine of pod i goes away: its container dies (SIGKILL) and kubelet does not restart it
   * until restore(i). The pod object stays, as a pod on a lost node does.
   */
  halt(i: number): void {
    const p = this.pod(i);
    if (!p) throw new Error(`no pod ${i}`);
    p.halted = true;
    this.event(`pod ${p.name}: its node is down (the container is killed and not restarted)`);
    if (p.running) p.proc?.kill('SIGKILL');
  }

  /**
   * Pod i's container exits at start from now on (a setting it cannot start with), so kubelet
   * restarts it with back-off (CrashLoopBackOff) and it never runs a preStop.
   */
  crashLoop(i: number): void {
    const p = this.pod(i);
    if (!p) throw new Error(`no pod ${i}`);
    p.crashLooping = true;
    this.event(`pod ${p.name}: its container now exits at start (${Object.entries(CRASH_LOOP_ENV).map(([k, v]) => `${k}=${v}`)})`);
    if (p.running) p.proc?.kill('SIGKILL');
  }

  /** Undoes halt(i) and crashLoop(i) on pod i if it still exists; its container starts again now. */
  restore(i: number): void {
    const p = this.pod(i);
    if (!p || (!p.halted && !p.crashLooping)) return;
    p.halted = false;
    p.crashLooping = false;
    this.event(`pod ${p.name}: restored (its node is back, its container can start)`);
    this.startContainer(p);
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
    for (const h of this.hooks) {
      try {
        if (h.pid) process.kill(-h.pid, 'SIGKILL');
      } catch {}
    }
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
    await this.kubeApi?.stop();
  }
}
