// Reads k8s/ as kustomize would see it (the files kustomization.yaml lists, every YAML document in
// them), and checks objects against the Kubernetes API types from kubernetes-models.
//
// kubernetes-models' validate() reports wrong types and missing required fields but not unknown
// ones: a typo'd `readinesProbe` passes it, and a real API server would drop the field (or, with
// kubectl's strict field validation, refuse it). The package ships its schemas compiled to
// validator code, not as JSON, but it also ships TypeScript declarations generated from the same
// OpenAPI schema, one interface per type with every field the API knows. unknownFields() walks an
// object alongside those interfaces, so the allowed keys at every depth come from the package and
// follow it when it is upgraded.

import fs from 'node:fs';
import path from 'node:path';
import type { Model } from '@kubernetes-models/base';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { type K8sObject, type Kustomization, loadKustomization as load } from '../../scripts/lib/manifests';

export type { K8sObject, Kustomization, Manifest } from '../../scripts/lib/manifests';

export const REPO = path.resolve(__dirname, '..', '..');

/** The objects `kubectl apply -k <dir>` would send (before kustomize sets the namespace). */
export function loadKustomization(dir = path.join(REPO, 'k8s')): Kustomization {
  return load(dir);
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
};

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
