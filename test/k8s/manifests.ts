// Renders k8s/ (or an overlay, or a variant written to a temporary directory) with a real
// `kubectl kustomize`, and checks objects against the Kubernetes API types from kubernetes-models,
// and the names that must agree between them.
//
// kubernetes-models' validate() reports wrong types and missing required fields but not unknown
// ones: a typo'd `readinesProbe` passes it, and a real API server would drop the field (or, with
// kubectl's strict field validation, refuse it). The package ships its schemas compiled to
// validator code, not as JSON, but it also ships TypeScript declarations generated from the same
// OpenAPI schema, one interface per type with every field the API knows. unknownFields() walks an
// object alongside those interfaces, so the allowed keys at every depth come from the package and
// follow it when it is upgraded.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Model } from '@kubernetes-models/base';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { rbacAllows } from '../../scripts/lib/kube-api';
import { type K8sObject, type Kustomization, loadKustomization as load, renderKustomization } from '../../scripts/lib/manifests';
import { loadConfig } from '../../src/config';
import { StatefulSetDiscovery } from '../../src/discovery/statefulset';

export type { K8sObject, Kustomization, Manifest } from '../../scripts/lib/manifests';

export const REPO = path.resolve(__dirname, '..', '..');

/** The objects `kubectl apply -k <dir>` would send, rendered by kubectl kustomize. */
export function loadKustomization(dir = path.join(REPO, 'k8s')): Kustomization {
  return load(dir);
}

/** Every kustomization of the repository a user may apply. */
export const KUSTOMIZATIONS = ['k8s', 'k8s/base', 'k8s/overlays/dev', 'k8s/overlays/prod'];

/**
 * Writes a kustomization built on this repository's manifests to a new temporary directory (as a
 * user's own overlay would be): `resources` are paths relative to the repository, `files` extra
 * files of the directory. Returns the directory; the caller removes it.
 */
export function writeVariant(kustomization: K8sObject, files: Record<string, string> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qkv-kustomize-'));
  // kustomize refuses absolute resource paths: relative to the variant's directory
  const resources = ((kustomization.resources ?? []) as string[]).map((r) => path.relative(dir, path.join(REPO, r)));
  fs.writeFileSync(path.join(dir, 'kustomization.yaml'), JSON.stringify({ ...kustomization, resources }, null, 2));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

/** writeVariant, rendered; the directory is removed. */
export function renderVariant(kustomization: K8sObject, files: Record<string, string> = {}): K8sObject[] {
  const dir = writeVariant(kustomization, files);
  try {
    return renderKustomization(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

type ModelClass = new (data: K8sObject) => Model<unknown>;

/** The kubernetes-models class for each apiVersion/kind the manifests use; a new kind must be added here. */
export const MODELS: Record<string, ModelClass> = {
  'v1/Namespace': Namespace as unknown as ModelClass,
  'v1/Secret': Secret as unknown as ModelClass,
  'v1/ConfigMap': ConfigMap as unknown as ModelClass,
  'v1/Service': Service as unknown as ModelClass,
  'apps/v1/StatefulSet': StatefulSet as unknown as ModelClass,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget as unknown as ModelClass,
  'v1/ServiceAccount': ServiceAccount as unknown as ModelClass,
  'rbac.authorization.k8s.io/v1/Role': Role as unknown as ModelClass,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding as unknown as ModelClass,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy as unknown as ModelClass,
};

/**
 * Kinds of CustomResourceDefinitions the manifests use: kubernetes-models has no schema for them, so
 * each gets an explicit check of the fields that matter (Prometheus Operator's ServiceMonitor:
 * monitoring.coreos.com/v1, spec.selector and spec.endpoints required).
 */
export const CUSTOM_KINDS: Record<string, (o: K8sObject) => string[]> = {
  'monitoring.coreos.com/v1/ServiceMonitor': (o) => {
    const out: string[] = [];
    const known = new Set(['apiVersion', 'kind', 'metadata', 'spec']);
    for (const k of Object.keys(o)) if (!known.has(k)) out.push(`${k} (not a field of ServiceMonitor)`);
    const spec = o.spec ?? {};
    const specFields = new Set([
      'selector',
      'endpoints',
      'namespaceSelector',
      'jobLabel',
      'targetLabels',
      'podTargetLabels',
      'sampleLimit',
    ]);
    for (const k of Object.keys(spec)) if (!specFields.has(k)) out.push(`spec.${k} (not a field of ServiceMonitorSpec)`);
    if (typeof spec.selector?.matchLabels !== 'object') out.push('spec.selector.matchLabels is required');
    if (!Array.isArray(spec.endpoints) || spec.endpoints.length === 0) out.push('spec.endpoints must list at least one endpoint');
    const endpointFields = new Set([
      'port',
      'targetPort',
      'path',
      'scheme',
      'interval',
      'scrapeTimeout',
      'honorLabels',
      'relabelings',
      'metricRelabelings',
      'tlsConfig',
      'authorization',
    ]);
    (spec.endpoints ?? []).forEach((e: K8sObject, i: number) => {
      for (const k of Object.keys(e)) if (!endpointFields.has(k)) out.push(`spec.endpoints[${i}].${k} (not a field of Endpoint)`);
      if (typeof e.port !== 'string') out.push(`spec.endpoints[${i}].port must name a Service port`);
    });
    return out;
  },
  // cert-manager (cert-manager.io/v1): the fields the prod overlay uses, and what each kind requires
  'cert-manager.io/v1/Issuer': (o) => {
    const out = unknownKeys(o, ['apiVersion', 'kind', 'metadata', 'spec'], '');
    const spec = o.spec ?? {};
    out.push(...unknownKeys(spec, ['selfSigned', 'ca', 'acme', 'vault', 'venafi'], 'spec.'));
    const kinds = ['selfSigned', 'ca', 'acme', 'vault', 'venafi'].filter((k) => spec[k] !== undefined);
    if (kinds.length !== 1) out.push(`spec must name exactly one issuer type, found ${kinds.length}`);
    if (spec.ca !== undefined && typeof spec.ca.secretName !== 'string') out.push('spec.ca.secretName is required');
    return out;
  },
  'cert-manager.io/v1/Certificate': (o) => {
    const out = unknownKeys(o, ['apiVersion', 'kind', 'metadata', 'spec'], '');
    const spec = o.spec ?? {};
    out.push(
      ...unknownKeys(
        spec,
        [
          'secretName',
          'issuerRef',
          'commonName',
          'dnsNames',
          'ipAddresses',
          'uris',
          'emailAddresses',
          'duration',
          'renewBefore',
          'usages',
          'privateKey',
          'isCA',
          'subject',
          'secretTemplate',
          'keystores',
          'revisionHistoryLimit',
        ],
        'spec.',
      ),
    );
    if (typeof spec.secretName !== 'string') out.push('spec.secretName is required');
    if (typeof spec.issuerRef?.name !== 'string') out.push('spec.issuerRef.name is required');
    const usages = new Set([
      'signing',
      'digital signature',
      'content commitment',
      'key encipherment',
      'key agreement',
      'data encipherment',
      'cert sign',
      'crl sign',
      'encipher only',
      'decipher only',
      'any',
      'server auth',
      'client auth',
      'code signing',
      'email protection',
      's/mime',
      'ipsec end system',
      'ipsec tunnel',
      'ipsec user',
      'timestamping',
      'ocsp signing',
      'microsoft sgc',
      'netscape sgc',
    ]);
    for (const u of spec.usages ?? []) if (!usages.has(u)) out.push(`spec.usages: ${u} is not a cert-manager key usage`);
    if (spec.privateKey) {
      out.push(...unknownKeys(spec.privateKey, ['algorithm', 'size', 'encoding', 'rotationPolicy'], 'spec.privateKey.'));
      if (spec.privateKey.algorithm !== undefined && !['RSA', 'ECDSA', 'Ed25519'].includes(spec.privateKey.algorithm))
        out.push(`spec.privateKey.algorithm ${spec.privateKey.algorithm} is not RSA, ECDSA or Ed25519`);
    }
    for (const d of ['duration', 'renewBefore'])
      if (spec[d] !== undefined && !/^([0-9]+h)?([0-9]+m)?([0-9]+s)?$/.test(spec[d])) out.push(`spec.${d} is not a Go duration`);
    return out;
  },
};

function unknownKeys(o: K8sObject, known: string[], at: string): string[] {
  return Object.keys(o)
    .filter((k) => !known.includes(k))
    .map((k) => `${at}${k} (not a known field)`);
}

/** Why an object would not be accepted: schema errors, unknown fields, or a kind nobody checks. */
export function schemaProblems(o: K8sObject): string[] {
  const custom = CUSTOM_KINDS[modelKey(o)];
  if (custom) return custom(o);
  const Model = MODELS[modelKey(o)];
  if (!Model) return [`no kubernetes-models class registered for ${modelKey(o)} (add it to MODELS in test/k8s/manifests.ts)`];
  try {
    new Model(o).validate();
  } catch (err) {
    return [String(err)];
  }
  return unknownFields(o, shapeOf(o.apiVersion, o.kind));
}

function matchesLabels(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  return selector !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/**
 * The container's environment as kubelet would build it for pod `ordinal`, with the downward API
 * values a pod would get and `secret` for every Secret key (the Secret is made at install time).
 */
export function podEnv(objects: K8sObject[], ordinal = 0, secret = 'x'): Record<string, string> {
  const sts = objects.find((o) => o.kind === 'StatefulSet') as K8sObject;
  const container = sts.spec.template.spec.containers[0];
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    Object.assign(env, objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === from.configMapRef.name)?.data);
  }
  const downward: Record<string, string> = {
    'metadata.name': `${sts.metadata.name}-${ordinal}`,
    'metadata.namespace': sts.metadata.namespace ?? 'default',
    'status.podIP': '10.0.0.5',
  };
  const units: Record<string, number> = { '': 1, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 };
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef)
      env[e.name] = downward[e.valueFrom.fieldRef.fieldPath] ?? `(unknown fieldPath ${e.valueFrom.fieldRef.fieldPath})`;
    else if (e.valueFrom?.secretKeyRef) env[e.name] = secret;
    else if (e.valueFrom?.resourceFieldRef) {
      const { resource, containerName } = e.valueFrom.resourceFieldRef;
      const c = sts.spec.template.spec.containers.find((x: K8sObject) => x.name === containerName);
      const [kind, what] = resource.split('.');
      const q = /^([0-9]+)(Ki|Mi|Gi|)$/.exec(String(c?.resources?.[kind]?.[what] ?? ''));
      env[e.name] = q ? String(Number(q[1]) * (units[q[2] as string] as number)) : `(no ${resource} on container ${containerName})`;
    }
  }
  return env;
}

/**
 * Every cross-reference of a rendered install that does not agree, as one line each; empty when
 * the pods of the StatefulSet find each other (one cluster), can read their StatefulSet, and every
 * selector reaches the pods.
 */
export function crossReferenceProblems(objects: K8sObject[]): string[] {
  const out: string[] = [];
  const of = (kind: string) => objects.filter((o) => o.kind === kind);
  const stsList = of('StatefulSet');
  if (stsList.length !== 1) return [`expected one StatefulSet, found ${stsList.length}`];
  const sts = stsList[0] as K8sObject;
  const ns: string = sts.metadata.namespace;
  const pod = sts.spec.template.spec;
  const labels: Record<string, string> = sts.spec.template.metadata.labels;
  const name = (o: K8sObject) => `${o.kind}/${o.metadata?.name}`;

  for (const o of objects) {
    if (o.kind === 'Namespace') {
      if (o.metadata.name !== ns) out.push(`Namespace ${o.metadata.name} is not the StatefulSet's namespace ${ns}`);
    } else if (o.metadata?.namespace !== ns) out.push(`${name(o)} is in namespace ${o.metadata?.namespace}, the StatefulSet in ${ns}`);
  }
  // Discovery: the names a pod builds from its environment are the names DNS gives the pods.
  const headless = objects.find((o) => o.kind === 'Service' && o.metadata.name === sts.spec.serviceName);
  if (!headless) out.push(`spec.serviceName ${sts.spec.serviceName} is not a Service of the manifests`);
  else if (headless.spec.clusterIP !== 'None' || headless.spec.publishNotReadyAddresses !== true)
    out.push(`Service ${headless.metadata.name} must be headless and publish pods before they are ready`);
  try {
    const c = loadConfig({}, podEnv(objects, 0));
    if (c.discovery !== 'statefulset') out.push(`the pods use ${c.discovery} discovery, not statefulset`);
    if (c.expectedReplicas !== sts.spec.replicas)
      out.push(`QUORUMKV_EXPECTED_REPLICAS is ${c.expectedReplicas}, the StatefulSet's replicas ${sts.spec.replicas}`);
    const d = new StatefulSetDiscovery({
      podName: c.nodeId,
      replicas: c.expectedReplicas ?? 1,
      service: c.headlessService,
      namespace: c.namespace,
      clusterDomain: 'cluster.local',
      port: c.port,
      resolver: { resolve4: async () => [], resolve6: async () => [], resolveSrv: async () => [] },
    });
    const dnsNames = Array.from(
      { length: sts.spec.replicas },
      (_, i) => `${sts.metadata.name}-${i}.${sts.spec.serviceName}.${ns}.svc.cluster.local`,
    );
    if (JSON.stringify(d.podNames()) !== JSON.stringify(dnsNames))
      out.push(`pods look for ${d.podNames().join(', ')}; DNS has ${dnsNames.join(', ')}`);
  } catch (err) {
    out.push(`the pod environment is not a valid config: ${(err as Error).message}`);
  }
  // The preStop reads the StatefulSet with the pod's ServiceAccount.
  const sa = pod.serviceAccountName ?? 'default';
  if (!objects.some((o) => o.kind === 'ServiceAccount' && o.metadata.name === sa)) out.push(`ServiceAccount ${sa} is not in the manifests`);
  const allowed = rbacAllows(
    objects,
    { namespace: ns, name: sa },
    {
      verb: 'get',
      apiGroup: 'apps',
      resource: 'statefulsets',
      namespace: ns,
      name: sts.metadata.name,
    },
  );
  if (!allowed.allowed) out.push(`ServiceAccount ${ns}/${sa} may not get StatefulSet ${sts.metadata.name}`);
  for (const from of pod.containers[0].envFrom ?? []) {
    if (!objects.some((o) => o.kind === 'ConfigMap' && o.metadata.name === from.configMapRef.name))
      out.push(`ConfigMap ${from.configMapRef.name} (envFrom) is not in the manifests`);
  }
  // Selectors reach the pods of the template.
  if (!matchesLabels(sts.spec.selector.matchLabels, labels)) out.push('the StatefulSet selector does not match its template');
  for (const o of of('Service')) if (!matchesLabels(o.spec.selector, labels)) out.push(`${name(o)} selects no pod of the template`);
  for (const o of of('PodDisruptionBudget')) if (!matchesLabels(o.spec.selector.matchLabels, labels)) out.push(`${name(o)} selects no pod`);
  for (const o of of('NetworkPolicy')) if (!matchesLabels(o.spec.podSelector.matchLabels, labels)) out.push(`${name(o)} selects no pod`);
  for (const o of of('ServiceMonitor')) {
    const svc = of('Service').filter((s) => matchesLabels(o.spec.selector.matchLabels, s.metadata.labels));
    if (svc.length !== 1) out.push(`${name(o)} selects ${svc.length} Services, not one`);
    for (const e of o.spec.endpoints)
      for (const s of svc)
        if (!s.spec.ports.some((p: K8sObject) => p.name === e.port)) out.push(`${name(o)}: ${name(s)} has no port ${e.port}`);
  }
  return out;
}

export function modelKey(o: K8sObject): string {
  return `${o.apiVersion}/${o.kind}`;
}

// --- field shapes from the kubernetes-models declarations -----------------------------------------

type Shape =
  | { type: 'object'; where: string; fields: Map<string, () => Shape> }
  | { type: 'array'; of: () => Shape }
  | { type: 'map'; of: () => Shape }
  | { type: 'leaf' };

const LEAF: Shape = { type: 'leaf' };
const interfaces = new Map<string, Shape>();

/** The declarations of `apiVersion/kind`, e.g. node_modules/kubernetes-models/apps/v1/StatefulSet.d.ts. */
export function shapeOf(apiVersion: string, kind: string): Shape {
  const pkg = path.dirname(require.resolve('kubernetes-models/package.json'));
  return interfaceIn(path.join(pkg, apiVersion, `${kind}.d.ts`));
}

/** The one exported interface of a generated .d.ts; a file with none (Quantity, IntOrString, Time) is a scalar. */
function interfaceIn(file: string): Shape {
  const cached = interfaces.get(file);
  if (cached) return cached;
  if (!fs.existsSync(file)) throw new Error(`kubernetes-models declaration not found: ${file}`);
  const text = fs.readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
  const imports = new Map<string, string>();
  for (const m of text.matchAll(/^import \{([^}]*)\} from "([^"]+)";/gm)) {
    for (const name of (m[1] as string).split(',')) imports.set(name.trim(), m[2] as string);
  }
  const m = /^export interface \w+(?: extends [\w, ]+)? \{/m.exec(text);
  let shape: Shape = LEAF;
  if (m) {
    const open = m.index + m[0].length - 1;
    shape = objectShape(text.slice(open + 1, closing(text, open)), file, imports);
  }
  interfaces.set(file, shape);
  return shape;
}

/** Index of the bracket that closes the one at `open`. */
function closing(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === '{' || c === '<' || c === '(' || c === '[') depth++;
    else if (c === '}' || c === '>' || c === ')' || c === ']') {
      depth--;
      if (depth === 0) return i;
    }
  }
  throw new Error(`unbalanced brackets in a kubernetes-models declaration at ${open}`);
}

/** `"name"?: Type;` members of an interface or inline object body. */
function objectShape(body: string, file: string, imports: Map<string, string>): Shape {
  const fields = new Map<string, () => Shape>();
  let i = 0;
  while (i < body.length) {
    const m = /^\s*"([^"]+)"\??:\s*/.exec(body.slice(i));
    if (!m) {
      if (body.slice(i).trim() !== '') throw new Error(`${file}: cannot read member at ${JSON.stringify(body.slice(i, i + 60))}`);
      break;
    }
    let j = i + m[0].length;
    const start = j;
    let depth = 0;
    for (; j < body.length; j++) {
      const c = body[j];
      if (c === '{' || c === '<' || c === '(' || c === '[') depth++;
      else if (c === '}' || c === '>' || c === ')' || c === ']') depth--;
      else if (c === ';' && depth === 0) break;
    }
    const typeText = body.slice(start, j).trim();
    let memo: Shape | undefined;
    // Lazy: only the parts of the schema an object uses are read, and recursive types cannot loop.
    fields.set(m[1] as string, () => {
      memo ??= typeShape(typeText, file, imports);
      return memo;
    });
    i = j + 1;
  }
  return { type: 'object', where: path.basename(file, '.d.ts'), fields };
}

function typeShape(t: string, file: string, imports: Map<string, string>): Shape {
  const arr = /^Array<([\s\S]*)>$/.exec(t) ?? /^([\w.]+)\[\]$/.exec(t);
  if (arr) return { type: 'array', of: () => typeShape((arr[1] as string).trim(), file, imports) };
  const map = /^\{\s*\[key: string\]:\s*([\s\S]*?);?\s*\}$/.exec(t);
  if (map) return { type: 'map', of: () => typeShape((map[1] as string).trim(), file, imports) };
  if (t.startsWith('{')) return objectShape(t.slice(1, closing(t, 0)), file, imports);
  const from = imports.get(t);
  if (from === undefined) return LEAF; // string, number, boolean, a union of literals
  return interfaceIn(declarationPath(from, file));
}

function declarationPath(spec: string, fromFile: string): string {
  if (spec.startsWith('.')) return `${path.resolve(path.dirname(fromFile), spec)}.d.ts`;
  const parts = spec.split('/');
  const pkgName = spec.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] as string);
  const sub = parts.slice(pkgName.split('/').length).join('/');
  return `${path.join(path.dirname(require.resolve(`${pkgName}/package.json`)), sub)}.d.ts`;
}

/** Paths of every field the Kubernetes API does not know, e.g. `spec.template.spec.containers[0].readinesProbe`. */
export function unknownFields(value: unknown, shape: Shape, at = ''): string[] {
  if (value === null || value === undefined) return [];
  switch (shape.type) {
    case 'leaf':
      return [];
    case 'array':
      return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, shape.of(), `${at}[${i}]`)) : [];
    case 'map':
      return typeof value === 'object' ? Object.entries(value).flatMap(([k, v]) => unknownFields(v, shape.of(), `${at}.${k}`)) : [];
    case 'object': {
      if (typeof value !== 'object' || Array.isArray(value)) return [];
      const out: string[] = [];
      for (const [k, v] of Object.entries(value)) {
        const p = at === '' ? k : `${at}.${k}`;
        const field = shape.fields.get(k);
        if (!field) out.push(`${p} (not a field of ${shape.where})`);
        else out.push(...unknownFields(v, field(), p));
      }
      return out;
    }
  }
}

/** Field names at the top of a shape (for tests of the reader itself). */
export function fieldNames(shape: Shape): string[] {
  return shape.type === 'object' ? [...shape.fields.keys()].sort() : [];
}

/** The shape at a dotted path of field names (arrays and maps stepped through). */
export function shapeAt(shape: Shape, dotted: string): Shape {
  let s = shape;
  for (const name of dotted.split('.')) {
    while (s.type === 'array' || s.type === 'map') s = s.of();
    const f = s.type === 'object' ? s.fields.get(name) : undefined;
    if (!f) throw new Error(`no field ${name} in ${dotted}`);
    s = f();
  }
  while (s.type === 'array' || s.type === 'map') s = s.of();
  return s;
}
