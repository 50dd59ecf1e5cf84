// The manifests in k8s/ are checked here because no API server can run on these machines
// (kubectl apply --dry-run needs one): every kustomization rendered by a real `kubectl kustomize`,
// every object against the Kubernetes schema, including fields the API does not know, and every
// reference between objects, the CLI and src/config.ts.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { parseDockerfile } from '../../scripts/image-build';
import { rbacAllows } from '../../scripts/lib/kube-api';
import { loadManifests } from '../../scripts/lib/manifests';
import { heapSizeMib, MEMORY_LIMIT_ENV } from '../../src/cli/heap';
import { envName, loadConfig, SETTINGS } from '../../src/config';
import {
  crossReferenceProblems,
  fieldNames,
  type K8sObject,
  KUSTOMIZATIONS,
  loadKustomization,
  MODELS,
  podEnv as podEnvOf,
  REPO,
  renderVariant,
  schemaProblems,
  shapeAt,
  shapeOf,
  unknownFields,
} from './manifests';

const k = loadKustomization();
const objects = k.manifests.map((m) => m.object);
/** Every kustomization of the repository, rendered once. */
const byDir = new Map(KUSTOMIZATIONS.map((dir) => [dir, loadManifests(path.join(REPO, dir))]));
const renderedDir = (dir: string) => byDir.get(dir) as K8sObject[];

function one(kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata?.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''} in k8s/, found ${found.length}`);
  return found[0] as K8sObject;
}

const sts = one('StatefulSet', 'quorumkv');
const pod = sts.spec.template.spec;
const container: K8sObject = pod.containers.find((c: K8sObject) => c.name === 'quorumkv');
const configMap = one('ConfigMap');
const services = objects.filter((o) => o.kind === 'Service');
const pdb = one('PodDisruptionBudget', 'quorumkv');
const templateLabels: Record<string, string> = sts.spec.template.metadata.labels;

/** The container's environment as kubelet would build it, with the downward API values a pod would get. */
const podEnv = (): Record<string, string> => podEnvOf(objects);

function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.keys(selector).length > 0 && Object.entries(selector).every(([key, v]) => labels[key] === v);
}

describe('k8s/ objects against the Kubernetes schema', () => {
  test('k8s/ is the entry point that deploys the base; each object once, no Secret', () => {
    expect(k.resources).toEqual(['base']);
    expect(objects.map((o) => `${o.kind}/${o.metadata?.name}`.replace(/-[a-z0-9]{10}$/, '-<hash>')).sort()).toEqual([
      'ConfigMap/quorumkv-config-<hash>',
      'Namespace/quorumkv',
      'NetworkPolicy/quorumkv',
      'PodDisruptionBudget/quorumkv',
      'Role/quorumkv',
      'RoleBinding/quorumkv',
      'Service/quorumkv',
      'Service/quorumkv-headless',
      'ServiceAccount/quorumkv',
      'StatefulSet/quorumkv',
    ]);
    // the base as it is, nothing added by the entry point
    expect(objects).toEqual(renderedDir('k8s/base'));
  });

  test.each(k.manifests.map((m) => [`${m.file}#${m.doc} ${m.object.kind}/${m.object.metadata?.name}`, m.object]))(
    '%s passes kubernetes-models validation and has no unknown fields',
    (_, o) => {
      expect(schemaProblems(o)).toEqual([]);
    },
  );

  test('the field reader sees the API fields of a Probe, from the kubernetes-models declarations', () => {
    expect(fieldNames(shapeAt(shapeOf('apps/v1', 'StatefulSet'), 'spec.template.spec.containers.readinessProbe'))).toEqual([
      'exec',
      'failureThreshold',
      'grpc',
      'httpGet',
      'initialDelaySeconds',
      'periodSeconds',
      'successThreshold',
      'tcpSocket',
      'terminationGracePeriodSeconds',
      'timeoutSeconds',
    ]);
  });

  // Each typo passes validate() (it ignores unknown fields) and must be caught by unknownFields.
  const typos: Array<[string, (o: K8sObject) => void, string]> = [
    [
      'readinesProbe on the container',
      (o) => renameKey(o.spec.template.spec.containers[0], 'readinessProbe', 'readinesProbe'),
      'spec.template.spec.containers[0].readinesProbe',
    ],
    [
      'podManagmentPolicy in the StatefulSet spec',
      (o) => renameKey(o.spec, 'podManagementPolicy', 'podManagmentPolicy'),
      'spec.podManagmentPolicy',
    ],
    [
      'periodSecond in a probe',
      (o) => renameKey(o.spec.template.spec.containers[0].livenessProbe, 'periodSeconds', 'periodSecond'),
      'spec.template.spec.containers[0].livenessProbe.periodSecond',
    ],
    [
      'runAsNonroot in the pod securityContext',
      (o) => renameKey(o.spec.template.spec.securityContext, 'runAsNonRoot', 'runAsNonroot'),
      'spec.template.spec.securityContext.runAsNonroot',
    ],
    [
      'terminationGracePeriod in the pod spec',
      (o) => renameKey(o.spec.template.spec, 'terminationGracePeriodSeconds', 'terminationGracePeriod'),
      'spec.template.spec.terminationGracePeriod',
    ],
    [
      'accesModes in a volumeClaimTemplate',
      (o) => renameKey(o.spec.volumeClaimTemplates[0].spec, 'accessModes', 'accesModes'),
      'spec.volumeClaimTemplates[0].spec.accesModes',
    ],
  ];
  test.each(typos)('a typo is caught: %s', (_, mutate, expected) => {
    const copy = structuredClone(sts);
    mutate(copy);
    const Model = MODELS['apps/v1/StatefulSet'] as NonNullable<(typeof MODELS)[string]>;
    expect(() => new Model(copy).validate()).not.toThrow(); // why the check of our own exists
    expect(unknownFields(copy, shapeOf('apps/v1', 'StatefulSet')).map((p) => p.split(' ')[0])).toEqual([expected]);
  });

  test('a typo is caught in a Service spec and in a PodDisruptionBudget spec', () => {
    const svc = structuredClone(one('Service', 'quorumkv-headless'));
    renameKey(svc.spec, 'publishNotReadyAddresses', 'publishNotReadyAddress');
    expect(unknownFields(svc, shapeOf('v1', 'Service'))).toEqual(['spec.publishNotReadyAddress (not a field of ServiceSpec)']);
    const budget = structuredClone(pdb);
    renameKey(budget.spec, 'maxUnavailable', 'maxUnavailble');
    expect(unknownFields(budget, shapeOf('policy/v1', 'PodDisruptionBudget'))).toEqual([
      'spec.maxUnavailble (not a field of PodDisruptionBudgetSpec)',
    ]);
  });
});

function renameKey(o: K8sObject, from: string, to: string): void {
  if (!(from in o)) throw new Error(`no ${from} to rename`);
  o[to] = o[from];
  delete o[from];
}

describe('k8s/ objects agree with each other', () => {
  test('the kustomization namespace is the Namespace object, and no object names another', () => {
    expect(k.namespace).toBe(one('Namespace').metadata.name);
    for (const o of objects) if (o.kind !== 'Namespace') expect([undefined, k.namespace]).toContain(o.metadata?.namespace);
  });

  test('every object carries the app labels', () => {
    for (const o of objects) {
      expect(o.metadata.labels).toMatchObject({ 'app.kubernetes.io/name': 'quorumkv', 'app.kubernetes.io/part-of': 'quorumkv' });
    }
    expect(templateLabels).toMatchObject({ 'app.kubernetes.io/name': 'quorumkv', 'app.kubernetes.io/part-of': 'quorumkv' });
  });

  test('the StatefulSet, both Services, the PDB and the anti-affinity select the pods of the template', () => {
    const selector: Record<string, string> = sts.spec.selector.matchLabels;
    expect(selector).toEqual({ 'app.kubernetes.io/name': 'quorumkv' });
    expect(matches(selector, templateLabels)).toBe(true);
    expect(services).toHaveLength(2);
    for (const svc of services) expect(svc.spec.selector).toEqual(selector);
    expect(pdb.spec.selector.matchLabels).toEqual(selector);
    const terms = pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution;
    expect(terms).toHaveLength(1);
    expect(terms[0]).toMatchObject({ weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname' } });
    expect(matches(terms[0].podAffinityTerm.labelSelector.matchLabels, templateLabels)).toBe(true);
  });

  test('spec.serviceName is a headless Service that publishes pods before they are ready', () => {
    const headless = one('Service', sts.spec.serviceName);
    expect(headless.spec.clusterIP).toBe('None');
    expect(headless.spec.publishNotReadyAddresses).toBe(true);
    const client = one('Service', 'quorumkv');
    expect(client.spec.type ?? 'ClusterIP').toBe('ClusterIP');
    expect(client.spec.clusterIP).toBeUndefined();
  });

  test("every Service port reaches the container's port, by name or number", () => {
    const ports: K8sObject[] = container.ports;
    expect(ports).toEqual([
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
      { name: 'internode', containerPort: 9080, protocol: 'TCP' },
    ]);
    for (const svc of services) {
      for (const p of svc.spec.ports) {
        const target = p.targetPort ?? p.port;
        const hit = ports.find((c) => (typeof target === 'string' ? c.name === target : c.containerPort === target));
        expect({ service: svc.metadata.name, port: p.name, reaches: hit?.containerPort }).toEqual({
          service: svc.metadata.name,
          port: p.name,
          reaches: p.name === 'internode' ? 9080 : 8080,
        });
        // only the headless Service (pods reaching each other) carries the internode port; clients never need it
        if (p.name === 'internode') expect(svc.spec.clusterIP).toBe('None');
      }
    }
  });

  test('the tokens come from the Secret made at install time, which no manifest holds; the ConfigMap is the generated one', () => {
    // README's install step: kubectl create secret generic quorumkv --from-literal=cluster-secret=... --from-literal=admin-token=...
    const refs = container.env
      .filter((e: K8sObject) => e.valueFrom?.secretKeyRef)
      .map((e: K8sObject) => [e.name, e.valueFrom.secretKeyRef]);
    expect(refs).toEqual([
      ['QUORUMKV_CLUSTER_SECRET', { name: 'quorumkv', key: 'cluster-secret' }],
      ['QUORUMKV_ADMIN_TOKEN', { name: 'quorumkv', key: 'admin-token' }],
    ]);
    for (const dir of KUSTOMIZATIONS) expect(renderedDir(dir).filter((o) => o.kind === 'Secret')).toEqual([]);
    expect(container.envFrom).toEqual([{ configMapRef: { name: configMap.metadata.name } }]);
    expect(configMap.metadata.name).toMatch(/^quorumkv-config-[a-z0-9]{10}$/);
  });

  test('every mounted volume exists; the data volume is the volumeClaimTemplate', () => {
    const claims: string[] = sts.spec.volumeClaimTemplates.map((t: K8sObject) => t.metadata.name);
    const volumes: string[] = (pod.volumes ?? []).map((v: K8sObject) => v.name);
    for (const m of container.volumeMounts) expect([...claims, ...volumes]).toContain(m.name);
    expect(claims).toEqual(['data']);
    expect(container.volumeMounts.find((m: K8sObject) => m.name === 'data').mountPath).toBe('/var/lib/quorumkv');
    expect(sts.spec.volumeClaimTemplates[0].spec).toMatchObject({
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: '1Gi' } },
    });
  });

  test('Parallel pod management, rolling updates, a PDB of one, three replicas', () => {
    expect(sts.spec.podManagementPolicy).toBe('Parallel');
    expect(sts.spec.updateStrategy.type).toBe('RollingUpdate');
    // no scale-down deletes a volume (a decommission that did not finish leaves data only there), nor does deleting the StatefulSet
    expect(sts.spec.persistentVolumeClaimRetentionPolicy).toEqual({ whenScaled: 'Retain', whenDeleted: 'Retain' });
    expect(sts.spec.replicas).toBe(3);
    expect(pdb.spec.maxUnavailable).toBe(1);
    expect(pdb.spec.minAvailable).toBeUndefined(); // one or the other, never both
  });

  test('the pod runs as non-root on a read-only root filesystem, with somewhere to write', () => {
    expect(pod.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 10001,
      runAsGroup: 10001,
      fsGroup: 10001,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(container.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    const mountPaths = container.volumeMounts.map((m: K8sObject) => m.mountPath);
    expect(mountPaths).toEqual(expect.arrayContaining(['/var/lib/quorumkv', '/tmp']));
  });

  test('memory is limited, CPU is requested but not limited', () => {
    expect(container.resources).toEqual({ requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '512Mi' } });
  });
});

describe("the pod's ServiceAccount and RBAC", () => {
  // As they land in the cluster: the kustomization's namespace set on every object.
  const applied = loadManifests(k.dir);
  const ns = k.namespace as string;
  const sa = { namespace: ns, name: pod.serviceAccountName };
  const attrs = { verb: 'get', apiGroup: 'apps', resource: 'statefulsets', namespace: ns, name: sts.metadata.name };

  test('the pod runs as a ServiceAccount of the manifests, with its token mounted', () => {
    expect(pod.serviceAccountName).toBe('quorumkv');
    one('ServiceAccount', pod.serviceAccountName);
    // the pod's field wins over the ServiceAccount's; the token is mounted unless one says false
    const account = one('ServiceAccount', pod.serviceAccountName);
    expect(pod.automountServiceAccountToken ?? account.automountServiceAccountToken ?? true).toBe(true);
  });

  test('the RoleBinding binds that ServiceAccount, in its namespace, to the Role', () => {
    const binding = one('RoleBinding', 'quorumkv');
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: one('Role').metadata.name });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: pod.serviceAccountName, namespace: ns }]);
  });

  test('RBAC lets the pods get their own StatefulSet, and nothing else', () => {
    expect(rbacAllows(applied, sa, attrs)).toEqual({ allowed: true, by: 'RoleBinding quorumkv -> Role quorumkv' });
    const denied = [
      { ...attrs, verb: 'list' },
      { ...attrs, verb: 'watch' },
      { ...attrs, verb: 'update' },
      { ...attrs, verb: 'patch' },
      { ...attrs, name: 'other' },
      { ...attrs, namespace: 'default' },
      { ...attrs, apiGroup: '', resource: 'pods' },
      { ...attrs, apiGroup: '', resource: 'secrets', name: 'quorumkv' },
    ];
    for (const a of denied) expect({ a, ...rbacAllows(applied, sa, a) }).toEqual({ a, allowed: false });
    expect(rbacAllows(applied, { namespace: ns, name: 'default' }, attrs).allowed).toBe(false);
  });

  test.each<[string, (objects: K8sObject[]) => void]>([
    [
      'the RoleBinding names another ServiceAccount',
      (o) => {
        find(o, 'RoleBinding').subjects[0].name = 'default';
      },
    ],
    [
      'the RoleBinding subject is in another namespace',
      (o) => {
        find(o, 'RoleBinding').subjects[0].namespace = 'default';
      },
    ],
    [
      'the Role names another StatefulSet',
      (o) => {
        find(o, 'Role').rules[0].resourceNames = ['kv'];
      },
    ],
    [
      'the Role is for the core API group',
      (o) => {
        find(o, 'Role').rules[0].apiGroups = [''];
      },
    ],
    [
      'the RoleBinding refers to a Role that does not exist',
      (o) => {
        find(o, 'RoleBinding').roleRef.name = 'nosuch';
      },
    ],
  ])('a broken RBAC object is caught: %s', (_, mutate) => {
    const copy = structuredClone(applied);
    mutate(copy);
    expect(rbacAllows(copy, sa, attrs).allowed).toBe(false);
  });
});

function find(objects: K8sObject[], kind: string): K8sObject {
  return objects.find((o) => o.kind === kind) as K8sObject;
}

describe('k8s/ agrees with the code, the CLI and the image', () => {
  const cli = path.join(REPO, 'dist', 'src', 'cli', 'main.js');

  beforeAll(() => {
    // `npm test` builds first (pretest); a bare `jest test/k8s` on a fresh clone builds here.
    if (!fs.existsSync(cli)) {
      const b = spawnSync('npm', ['run', 'build', '--silent'], { cwd: REPO, encoding: 'utf8' });
      if (b.status !== 0) throw new Error(`npm run build failed:\n${b.stdout}${b.stderr}`);
    }
  });

  const execCommands: Array<[string, string[]]> = [
    ['container command', sts.spec.template.spec.containers[0].command],
    ['startupProbe', sts.spec.template.spec.containers[0].startupProbe.exec.command],
    ['readinessProbe', sts.spec.template.spec.containers[0].readinessProbe.exec.command],
    ['livenessProbe', sts.spec.template.spec.containers[0].livenessProbe.exec.command],
    ['preStop', sts.spec.template.spec.containers[0].lifecycle.preStop.exec.command],
  ];

  /**
   * What is wrong with running `command` in the image: its program is not the package's binary, or
   * the built CLI has no such subcommand (`<sub> --help` fails or prints the top-level help), or
   * its help does not mention a positional word (`health livenes`) or an option (`--wait-sec`).
   */
  function cliProblems(command: string[]): string[] {
    const [program, ...args] = command;
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
    if (!Object.keys(pkg.bin).includes(program as string)) return [`${program} is not a binary of the package (${Object.keys(pkg.bin)})`];
    const escapeRe = (w: string) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const firstOption = args.findIndex((a) => a.startsWith('-'));
    const words = firstOption < 0 ? args : args.slice(0, firstOption);
    if (program === 'quorumkv-probe') {
      // the probe's own entry point: one usage line naming every probe and option
      const r = spawnSync(process.execPath, [path.join(path.dirname(cli), 'probe.js'), '--help'], { encoding: 'utf8', timeout: 15_000 });
      const usage = `${r.stdout}${r.stderr}`;
      if (!usage.includes('Usage: quorumkv-probe ')) return [`quorumkv-probe --help printed no usage: ${usage}`];
      return args
        .filter((w) => !new RegExp(`(^|[^\\w-])${escapeRe(w)}([^\\w-]|$)`).test(usage))
        .map((w) => `quorumkv-probe's usage does not mention ${w}: ${usage}`);
    }
    const r = spawnSync(process.execPath, [cli, ...words.slice(0, 1), '--help'], { encoding: 'utf8', timeout: 15_000 });
    if (r.status !== 0) return [`${words[0]} --help exited with ${r.status}: ${r.stderr}`];
    // Commander prints the top-level help for an unknown word, with exit 0.
    if (!r.stdout.includes(`Usage: quorumkv ${words[0]} `)) return [`no subcommand ${words[0]}:\n${r.stdout}`];
    return [...words.slice(1), ...args.filter((a) => a.startsWith('--'))]
      .filter((w) => !new RegExp(`(^|[^\\w-])${escapeRe(w)}([^\\w-]|$)`).test(r.stdout))
      .map((w) => `${words[0]} --help does not mention ${w}:\n${r.stdout}`);
  }

  test.each(execCommands)('%s runs a quorumkv subcommand that exists: %j', (_, command) => {
    expect(cliProblems(command)).toEqual([]);
  });

  test.each([
    [['quorumkv', 'nosuch']],
    [['quorumkv', 'health', 'livenes']],
    [['quorumkv', 'drain', '--wait-sec', '5']],
    [['kv', 'serve']],
    [['quorumkv-probe', 'livenes']],
  ])('a command the CLI does not have is caught: %j', (command) => {
    expect(cliProblems(command)).toHaveLength(1);
  });

  test('the probes have the budgets their comments promise', () => {
    const { startupProbe, readinessProbe, livenessProbe } = container;
    expect(startupProbe).toMatchObject({ periodSeconds: 2, timeoutSeconds: 3, failureThreshold: 60 });
    expect(startupProbe.periodSeconds * startupProbe.failureThreshold).toBe(120); // 2 minutes to load
    expect(readinessProbe).toMatchObject({ periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 2, successThreshold: 1 });
    expect(livenessProbe).toMatchObject({ periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 });
    expect(livenessProbe.periodSeconds * livenessProbe.failureThreshold).toBe(30); // 30 s hung before a restart
    // Kubernetes refuses any other successThreshold for liveness and startup probes.
    for (const p of [startupProbe, livenessProbe]) expect(p.successThreshold ?? 1).toBe(1);
    // The CLI gives up after --timeout-ms (2000 by default): inside every probe's timeout.
    for (const p of [startupProbe, readinessProbe, livenessProbe]) expect(p.timeoutSeconds * 1000).toBeGreaterThan(2000);
    // A liveness or startup failure kills after 30 s, not after the pod's hour (which is for a
    // decommission); Kubernetes refuses the field on a readiness probe.
    for (const p of [startupProbe, livenessProbe]) expect(p.terminationGracePeriodSeconds).toBe(30);
    expect(readinessProbe.terminationGracePeriodSeconds).toBeUndefined();
  });

  test('the termination grace period covers a decommission of a full volume, and a drain with room for in-flight requests', () => {
    expect(container.lifecycle.preStop.exec.command).toEqual(['quorumkv', 'prestop']);
    const graceMs = pod.terminationGracePeriodSeconds * 1000;
    expect(graceMs).toBe(3600_000);
    // Decommission: the whole data volume streamed at the rate FINDINGS.md measures (~10 MB/s: a
    // join received 195 MB in 19.2 s), in every kustomization, with room to spare.
    const findings = fs.readFileSync(path.join(REPO, 'FINDINGS.md'), 'utf8');
    expect(findings).toContain('(195 MB) and was normal in 19.2 s');
    const streamBytesPerSec = 10e6;
    const units: Record<string, number> = { Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
    for (const dir of KUSTOMIZATIONS) {
      const s = renderedDir(dir).find((o) => o.kind === 'StatefulSet') as K8sObject;
      const storage: string = s.spec.volumeClaimTemplates[0].spec.resources.requests.storage;
      const m = /^(\d+)(Mi|Gi|Ti)$/.exec(storage);
      if (!m) throw new Error(`unexpected storage request ${storage}`);
      const volumeBytes = Number(m[1]) * (units[m[2] as string] as number);
      const streamMs = (volumeBytes / streamBytesPerSec) * 1000;
      expect(streamMs).toBeLessThan(s.spec.template.spec.terminationGracePeriodSeconds * 1000 * 0.6);
    }
    // Drain (a restart): the drain command's default wait for endpoints, then in-flight requests.
    const help = spawnSync(process.execPath, [cli, 'drain', '--help'], { encoding: 'utf8', timeout: 15_000 }).stdout;
    const waitMs = Number(/--wait-ms <ms>[\s\S]*?\(default: "?(\d+)"?[,)]/.exec(help)?.[1]);
    expect(waitMs).toBe(5000);
    const requestTimeoutMs = loadConfig({}, podEnv()).requestTimeoutMs;
    expect(waitMs + requestTimeoutMs).toBeLessThan(container.livenessProbe.terminationGracePeriodSeconds * 1000);
  });

  test('every QUORUMKV_* variable is a setting of quorumkv serve, and each ConfigMap value parses', () => {
    const byEnv = new Map(SETTINGS.map((s) => [envName(s.flag), s]));
    const names = [...Object.keys(configMap.data), ...container.env.map((e: K8sObject) => e.name)].filter((n) => n.startsWith('QUORUMKV_'));
    expect(names.filter((n) => !byEnv.has(n))).toEqual([]);
    for (const [name, value] of Object.entries(configMap.data as Record<string, unknown>)) {
      expect(typeof value).toBe('string'); // a ConfigMap holds strings; an unquoted 3 fails to apply
      const s = byEnv.get(name);
      expect(() => s?.parse(value as string)).not.toThrow();
    }
    expect(configMap.data).toEqual({
      QUORUMKV_HOST: '0.0.0.0',
      QUORUMKV_PORT: '8080',
      QUORUMKV_DATA_DIR: '/var/lib/quorumkv',
      QUORUMKV_DISCOVERY: 'statefulset',
      QUORUMKV_EXPECTED_REPLICAS: '3',
      QUORUMKV_HEADLESS_SERVICE: 'quorumkv-headless',
      QUORUMKV_REPLICATION_FACTOR: '3',
      QUORUMKV_LOG_LEVEL: 'info',
    });
  });

  test('the downward API variables are the ones the config reads', () => {
    const fieldRefs = Object.fromEntries(
      container.env.filter((e: K8sObject) => e.valueFrom?.fieldRef).map((e: K8sObject) => [e.name, e.valueFrom.fieldRef.fieldPath]),
    );
    expect(fieldRefs).toEqual({ POD_NAME: 'metadata.name', POD_NAMESPACE: 'metadata.namespace', POD_IP: 'status.podIP' });
    // the heap follows the container's own memory limit (src/cli/heap.ts)
    expect(container.env.find((e: K8sObject) => e.name === MEMORY_LIMIT_ENV).valueFrom).toEqual({
      resourceFieldRef: { containerName: container.name, resource: 'limits.memory' },
    });
    expect(heapSizeMib(podEnv()[MEMORY_LIMIT_ENV] as string)).toBe(384); // 75% of 512Mi
    const also = (flag: string) => SETTINGS.find((s) => s.flag === flag)?.alsoEnv ?? [];
    expect(also('node-id')).toContain('POD_NAME');
    expect(also('namespace')).toContain('POD_NAMESPACE');
  });

  test('the pod environment is a valid config that matches the StatefulSet', () => {
    const env = podEnv();
    expect(env).toMatchObject({ POD_NAME: 'quorumkv-0', POD_IP: '10.0.0.5', POD_NAMESPACE: 'quorumkv', QUORUMKV_CLUSTER_SECRET: 'x' });
    expect(env[MEMORY_LIMIT_ENV]).toBe(String(512 * 2 ** 20));
    const c = loadConfig({}, env);
    const dataMount = container.volumeMounts.find((m: K8sObject) => m.name === sts.spec.volumeClaimTemplates[0].metadata.name);
    expect({
      discovery: c.discovery,
      expectedReplicas: c.expectedReplicas,
      port: c.port,
      internodePort: c.internodePort,
      dataDir: c.dataDir,
      headlessService: c.headlessService,
      nodeId: c.nodeId,
      namespace: c.namespace,
      advertiseAddress: c.advertiseAddress,
      clusterSecret: c.clusterSecret,
    }).toEqual({
      discovery: 'statefulset',
      expectedReplicas: sts.spec.replicas,
      port: container.ports[0].containerPort,
      internodePort: container.ports.find((p: K8sObject) => p.name === 'internode').containerPort,
      dataDir: dataMount.mountPath,
      headlessService: sts.spec.serviceName,
      nodeId: 'quorumkv-0',
      namespace: k.namespace,
      advertiseAddress: `10.0.0.5:${container.ports[0].containerPort}`,
      clusterSecret: ['x'], // a list: current[,next]
    });
  });

  test('the image tag is the package version, and the Dockerfile runs as the pod user with quorumkv on PATH', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
    expect(container.image).toBe(`quorumkv:${pkg.version}`);
    expect(container.imagePullPolicy).toBe('IfNotPresent');
    const dockerfile = parseDockerfile(fs.readFileSync(path.join(REPO, 'Dockerfile'), 'utf8'));
    const last = (op: string) => dockerfile.filter((i) => i.op === op).at(-1)?.args;
    expect(last('USER')).toBe(`${pod.securityContext.runAsUser}:${pod.securityContext.runAsGroup}`);
    expect(JSON.parse(last('ENTRYPOINT') ?? 'null')).toEqual([container.command[0]]);
    expect(last('VOLUME')).toBe('/var/lib/quorumkv');
    expect(last('EXPOSE')).toBe(container.ports.map((p: K8sObject) => p.containerPort).join(' '));
  });
});

// ---- kustomizations: every overlay, and a user's variant, forms one cluster ---------------------

/** A user's own overlay on prod: another name and namespace (the review's case). */
const PREFIXED = { resources: ['k8s/overlays/prod'], namePrefix: 'prod-', nameSuffix: '-a', namespace: 'kv-prod' };

const rendered: Array<[string, K8sObject[]]> = [
  ...KUSTOMIZATIONS.map((dir): [string, K8sObject[]] => [dir, renderedDir(dir)]),
  ['prod + namePrefix prod- + nameSuffix -a + namespace kv-prod', renderVariant(PREFIXED)],
  ['dev + namespace kv-dev', renderVariant({ resources: ['k8s/overlays/dev'], namespace: 'kv-dev' })],
];

const kindOf = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);
const stsOf = (objects: K8sObject[]) => kindOf(objects, 'StatefulSet')[0] as K8sObject;

describe('every kustomization, rendered by kubectl kustomize', () => {
  // kubectl reads a YAML map with a key given twice as the last one given: a second
  // configMapGenerator would drop the first without a word
  test('no file under k8s/ gives a key twice', () => {
    const files = (fs.readdirSync(path.join(__dirname, '..', '..', 'k8s'), { recursive: true }) as string[]).filter((f) =>
      /\.ya?ml$/.test(f),
    );
    expect(files.length).toBeGreaterThan(10);
    const problems = files.flatMap((f) =>
      parseAllDocuments(fs.readFileSync(path.join(__dirname, '..', '..', 'k8s', f), 'utf8')).flatMap((d) =>
        d.errors.map((e) => `${f}: ${e.message}`),
      ),
    );
    expect(problems).toEqual([]);
  });

  test.each(rendered)('%s: every object passes the schema checks', (_, objs) => {
    expect(objs.flatMap((o) => schemaProblems(o).map((p) => `${o.kind}/${o.metadata?.name}: ${p}`))).toEqual([]);
  });

  test.each(rendered)('%s: the names that must agree do (one cluster, RBAC, selectors)', (_, objs) => {
    expect(crossReferenceProblems(objs)).toEqual([]);
  });

  test('the renamed variant renames every reference, not only the objects', () => {
    const objs = rendered.find(([n]) => n.startsWith('prod + namePrefix'))?.[1] as K8sObject[];
    const sts = stsOf(objs);
    expect(sts.metadata).toMatchObject({ name: 'prod-quorumkv-a', namespace: 'kv-prod' });
    expect(sts.spec.serviceName).toBe('prod-quorumkv-headless-a');
    expect(kindOf(objs, 'Role')[0]?.rules[0].resourceNames).toEqual(['prod-quorumkv-a']);
    expect(kindOf(objs, 'RoleBinding')[0]?.subjects).toEqual([{ kind: 'ServiceAccount', name: 'prod-quorumkv-a', namespace: 'kv-prod' }]);
    const env = podEnvOf(objs, 0);
    expect(env).toMatchObject({
      QUORUMKV_HEADLESS_SERVICE: 'prod-quorumkv-headless-a',
      QUORUMKV_EXPECTED_REPLICAS: '5',
      POD_NAMESPACE: 'kv-prod',
    });
    // the Secret is made by hand in the namespace, under its own name: no prefix
    expect(
      sts.spec.template.spec.containers[0].env.find((e: K8sObject) => e.name === 'QUORUMKV_CLUSTER_SECRET').valueFrom.secretKeyRef.name,
    ).toBe('quorumkv');
  });

  // The review's findings, put back one at a time into the renamed variant: each is caught.
  test.each<[string, (objs: K8sObject[]) => void, RegExp]>([
    [
      'the headless Service name in the ConfigMap not renamed',
      (o) => {
        (kindOf(o, 'ConfigMap')[0] as K8sObject).data.QUORUMKV_HEADLESS_SERVICE = 'quorumkv-headless';
      },
      /pods look for prod-quorumkv-a-0\.quorumkv-headless\.kv-prod/,
    ],
    [
      'the Role naming the unprefixed StatefulSet',
      (o) => {
        (kindOf(o, 'Role')[0] as K8sObject).rules[0].resourceNames = ['quorumkv'];
      },
      /may not get StatefulSet prod-quorumkv-a/,
    ],
    [
      'the RoleBinding subject left in the old namespace',
      (o) => {
        (kindOf(o, 'RoleBinding')[0] as K8sObject).subjects[0].namespace = 'quorumkv';
      },
      /may not get StatefulSet/,
    ],
    [
      'expected replicas left at 3 while the StatefulSet has 5',
      (o) => {
        (kindOf(o, 'ConfigMap')[0] as K8sObject).data.QUORUMKV_EXPECTED_REPLICAS = '3';
      },
      /QUORUMKV_EXPECTED_REPLICAS is 3, the StatefulSet's replicas 5/,
    ],
  ])('a variant that would split the cluster is caught: %s', (_, mutate, problem) => {
    const objs = structuredClone(rendered.find(([n]) => n.startsWith('prod + namePrefix'))?.[1] as K8sObject[]);
    mutate(objs);
    expect(crossReferenceProblems(objs).join('\n')).toMatch(problem);
  });

  test('a pod without expected replicas, with statefulset discovery, exits at start naming the setting', () => {
    const objs = renderVariant({
      resources: ['k8s/overlays/dev'],
      patches: [{ target: { kind: 'ConfigMap' }, patch: '- op: remove\n  path: /data/QUORUMKV_EXPECTED_REPLICAS\n' }],
    });
    expect(podEnvOf(objs).QUORUMKV_EXPECTED_REPLICAS).toBeUndefined();
    expect(() => loadConfig({}, podEnvOf(objs))).toThrow(
      '--expected-replicas (QUORUMKV_EXPECTED_REPLICAS): required with --discovery statefulset',
    );
  });

  test('a ConfigMap change changes the pod template, so apply rolls the pods', () => {
    const before = stsOf(renderedDir('k8s/overlays/dev'));
    const after = stsOf(
      renderVariant({
        resources: ['k8s/overlays/dev'],
        configMapGenerator: [{ name: 'quorumkv-config', behavior: 'merge', literals: ['QUORUMKV_LOG_LEVEL=debug'] }],
      }),
    );
    const ref = (s: K8sObject) => s.spec.template.spec.containers[0].envFrom[0].configMapRef.name;
    expect(ref(after)).not.toBe(ref(before));
    expect(ref(after)).toMatch(/^quorumkv-config-[a-z0-9]{10}$/);
  });
});

describe('the overlays', () => {
  const objsOf = (dir: string) => rendered.find(([n]) => n === dir)?.[1] as K8sObject[];
  const containerOf = (objs: K8sObject[]) => stsOf(objs).spec.template.spec.containers[0];

  test('dev: 3 replicas, small requests, a memory limit that still leaves the node its minimum heap', () => {
    const objs = objsOf('k8s/overlays/dev');
    expect(stsOf(objs).spec.replicas).toBe(3);
    expect(containerOf(objs).resources).toEqual({ requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } });
    expect(heapSizeMib(podEnvOf(objs)[MEMORY_LIMIT_ENV] as string)).toBe(192);
  });

  test('prod: 5 replicas, never two on one machine, spread over zones, Guaranteed QoS, a PDB and a ServiceMonitor', () => {
    const objs = objsOf('k8s/overlays/prod');
    const sts = stsOf(objs);
    const pod = sts.spec.template.spec;
    const selector = sts.spec.selector.matchLabels;
    expect(sts.spec.replicas).toBe(5);
    expect(pod.affinity.podAntiAffinity).toEqual({
      requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: selector } }],
    });
    expect(pod.topologySpreadConstraints).toEqual([
      {
        maxSkew: 1,
        topologyKey: 'topology.kubernetes.io/zone',
        whenUnsatisfiable: 'DoNotSchedule',
        labelSelector: { matchLabels: selector },
      },
    ]);
    // Guaranteed: every container has CPU and memory limits equal to its requests
    for (const c of pod.containers) {
      expect(c.resources.limits).toEqual(c.resources.requests);
      expect(Object.keys(c.resources.requests).sort()).toEqual(['cpu', 'memory']);
    }
    expect(kindOf(objs, 'PodDisruptionBudget').map((p) => p.spec)).toEqual([{ maxUnavailable: 1, selector: { matchLabels: selector } }]);
    const monitor = kindOf(objs, 'ServiceMonitor');
    expect(monitor.map((m) => m.spec.endpoints)).toEqual([
      [
        {
          port: 'http',
          path: '/metrics',
          interval: '30s',
          scheme: 'https',
          tlsConfig: { ca: { secret: { name: 'quorumkv-tls', key: 'ca.crt' } }, serverName: 'quorumkv.quorumkv.svc' },
          authorization: { type: 'Bearer', credentials: { name: 'quorumkv-metrics', key: 'token' } },
        },
      ],
    ]);
  });

  test('prod runs with TLS on both ports and client tokens, from a cert-manager Certificate and a tokens Secret', () => {
    const objs = objsOf('k8s/overlays/prod');
    const c = containerOf(objs);
    const env = podEnvOf(objs);
    const config = loadConfig({}, { ...env, QUORUMKV_CLUSTER_SECRET: 'x' });
    expect({ tls: config.tls, cert: config.tlsCert, key: config.tlsKey, ca: config.tlsCa, tokens: config.tokensFile }).toEqual({
      tls: 'all',
      cert: '/etc/quorumkv/tls/tls.crt',
      key: '/etc/quorumkv/tls/tls.key',
      ca: '/etc/quorumkv/tls/ca.crt',
      tokens: '/etc/quorumkv/tokens/tokens',
    });
    // every file is under a mount of the Secret that holds it, mounted whole (a subPath mount is never updated)
    const volumes = stsOf(objs).spec.template.spec.volumes as K8sObject[];
    const secretAt = (file: string) => {
      const m = (c.volumeMounts as K8sObject[]).find((v) => file.startsWith(`${v.mountPath}/`));
      expect({ file, subPath: m?.subPath, readOnly: m?.readOnly }).toEqual({ file, subPath: undefined, readOnly: true });
      return volumes.find((v) => v.name === m?.name)?.secret?.secretName;
    };
    const certificates = kindOf(objs, 'Certificate');
    const served = certificates.find((x) => !x.spec.isCA) as K8sObject;
    for (const f of [config.tlsCert, config.tlsKey, config.tlsCa]) expect(secretAt(f as string)).toBe(served.spec.secretName);
    expect(secretAt(config.tokensFile as string)).toBe('quorumkv-tokens');
    // the member certificate comes from the CA Issuer, whose CA is the CA Certificate's Secret; both usages
    const issuers = kindOf(objs, 'Issuer');
    const caIssuer = issuers.find((i) => i.metadata.name === served.spec.issuerRef.name) as K8sObject;
    expect(caIssuer.spec.ca.secretName).toBe(certificates.find((x) => x.spec.isCA)?.spec.secretName);
    expect(served.spec.usages).toEqual(expect.arrayContaining(['server auth', 'client auth']));
    // the probes and the preStop talk https to 127.0.0.1, which the certificate names
    expect(c.env.find((e: K8sObject) => e.name === 'QUORUMKV_URL')?.value).toBe('https://127.0.0.1:8080');
    expect(served.spec.ipAddresses).toContain('127.0.0.1');
    for (const o of [...certificates, ...issuers]) expect(schemaProblems(o)).toEqual([]);
    // a typo is caught
    const bad = structuredClone(served);
    bad.spec.dnsName = bad.spec.dnsNames;
    expect(schemaProblems(bad)).toEqual(['spec.dnsName (not a known field)']);
  });

  test('the ServiceMonitor check refuses what the operator would not understand', () => {
    const monitor = kindOf(objsOf('k8s/overlays/prod'), 'ServiceMonitor')[0] as K8sObject;
    const bad = structuredClone(monitor);
    bad.spec.endpoint = bad.spec.endpoints;
    delete bad.spec.endpoints;
    expect(schemaProblems(bad)).toEqual([
      'spec.endpoint (not a field of ServiceMonitorSpec)',
      'spec.endpoints must list at least one endpoint',
    ]);
  });

  test('pods carry the Prometheus annotations for the port and path that serve the metrics', () => {
    for (const [dir, objs] of rendered) {
      const sts = stsOf(objs);
      const http = sts.spec.template.spec.containers[0].ports.find((p: K8sObject) => p.name === 'http');
      expect({ dir, annotations: sts.spec.template.metadata.annotations }).toEqual({
        dir,
        annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(http.containerPort), 'prometheus.io/path': '/metrics' },
      });
    }
  });

  test('the NetworkPolicy lets only members reach the internode port, and the namespace the API', () => {
    const policy = one('NetworkPolicy');
    expect(policy.spec.policyTypes).toEqual(['Ingress']);
    const rule = (port: string) => policy.spec.ingress.filter((r: K8sObject) => r.ports.some((p: K8sObject) => p.port === port));
    expect(rule('internode')).toEqual([
      { from: [{ podSelector: { matchLabels: sts.spec.selector.matchLabels } }], ports: [{ port: 'internode', protocol: 'TCP' }] },
    ]);
    expect(rule('http')).toEqual([{ from: [{ podSelector: {} }], ports: [{ port: 'http', protocol: 'TCP' }] }]);
    expect(policy.spec.ingress).toHaveLength(2); // no other way in
    // the named ports are the container's, at 9080 and 8080
    expect(container.ports.map((p: K8sObject) => [p.name, p.containerPort])).toEqual([
      ['http', 8080],
      ['internode', 9080],
    ]);
  });
});

describe('the Grafana dashboard of the prod overlay', () => {
  // Its PromQL is checked against a real Prometheus scraping real nodes in test/integration/prometheus.test.ts.
  test('ships as a ConfigMap with the label the Grafana sidecar looks for, holding the file as valid JSON', () => {
    const file = fs.readFileSync(path.join(REPO, 'k8s', 'overlays', 'prod', 'grafana-dashboard.json'), 'utf8');
    const maps = renderedDir('k8s/overlays/prod').filter((o) => o.kind === 'ConfigMap' && o.metadata?.labels?.grafana_dashboard);
    expect(maps.map((m) => [m.metadata?.name, m.metadata?.namespace, m.metadata?.labels?.grafana_dashboard])).toEqual([
      ['quorumkv-grafana-dashboard', 'quorumkv', '1'],
    ]);
    expect((maps[0] as K8sObject).data).toEqual({ 'grafana-dashboard.json': file });
    const dashboard = JSON.parse(file);
    expect(dashboard).toMatchObject({ uid: 'quorumkv', title: 'quorumkv' });
    const targets = dashboard.panels.flatMap((p: { targets?: Array<{ expr: string }> }) => p.targets ?? []);
    expect(targets.length).toBeGreaterThan(10);
    // only the prod overlay carries it; the other kustomizations stay as they were
    for (const dir of ['k8s', 'k8s/base', 'k8s/overlays/dev'])
      expect(renderedDir(dir).filter((o) => o.metadata?.labels?.grafana_dashboard)).toEqual([]);
  });
});
