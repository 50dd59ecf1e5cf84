// The manifests as `kubectl apply -k <dir>` would send them: rendered by a real `kubectl kustomize`
// (generators with their hashed names, name prefixes and suffixes, namespaces, patches,
// replacements and name references all applied), every object with the place it came from.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

// biome-ignore lint/suspicious/noExplicitAny: manifests are YAML of any shape until checked
export type K8sObject = Record<string, any>;

export interface Manifest {
  /** Where the object came from: `kubectl kustomize <dir>`. */
  file: string;
  /** Index of the object in the rendered output. */
  doc: number;
  object: K8sObject;
}

export interface Kustomization {
  dir: string;
  /** The namespace the StatefulSet lands in (kustomize's, after every layer). */
  namespace: string | undefined;
  /** The `resources` of the kustomization in `dir` itself. */
  resources: string[];
  manifests: Manifest[];
}

/** The kubectl to run: $KUBECTL, else kubectl on PATH (kubectl 1.32 embeds kustomize 5.5). */
const KUBECTL = process.env.KUBECTL ?? 'kubectl';
/** Rendering takes ~100 ms; more than this means kubectl is stuck. */
const RENDER_TIMEOUT_MS = 30_000;

/** Every object of a multi-document YAML text; `origin` names it in errors. */
export function parseObjects(text: string, origin: string): K8sObject[] {
  const objects: K8sObject[] = [];
  parseAllDocuments(text).forEach((d, i) => {
    if (d.errors.length > 0) throw new Error(`${origin} document ${i}: ${d.errors.map((e) => e.message).join('; ')}`);
    const object = d.toJS() as K8sObject | null;
    if (object !== null) objects.push(object);
  });
  return objects;
}

/** `kubectl kustomize <dir>`, parsed. Throws with kubectl's own message when it refuses the directory. */
export function renderKustomization(dir: string): K8sObject[] {
  const r = spawnSync(KUBECTL, ['kustomize', dir], { encoding: 'utf8', timeout: RENDER_TIMEOUT_MS, maxBuffer: 64 * 2 ** 20 });
  if (r.error) {
    const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(
      missing
        ? `${KUBECTL} not found: the manifests are rendered with \`kubectl kustomize\` (apt-get install kubectl, or set KUBECTL)`
        : `${KUBECTL} kustomize ${dir}: ${r.error.message}`,
    );
  }
  if (r.status !== 0) throw new Error(`${KUBECTL} kustomize ${dir} exited with ${r.status}:\n${r.stderr}`);
  return parseObjects(r.stdout, `${KUBECTL} kustomize ${dir}`);
}

/** The rendered objects of `dir`, with the kustomization's own resource list. */
export function loadKustomization(dir: string): Kustomization {
  const k = parseObjects(readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8'), path.join(dir, 'kustomization.yaml'))[0];
  const objects = renderKustomization(dir);
  const file = `kubectl kustomize ${path.relative(process.cwd(), dir) || '.'}`;
  return {
    dir,
    namespace: objects.find((o) => o.kind === 'StatefulSet')?.metadata?.namespace,
    resources: (k?.resources ?? []) as string[],
    manifests: objects.map((object, doc) => ({ file, doc, object })),
  };
}

/** The objects as they land in the cluster: what `kubectl apply -k <dir>` sends. */
export function loadManifests(dir: string): K8sObject[] {
  return renderKustomization(dir);
}

export function find(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && (name === undefined || x.metadata?.name === name));
  if (!o) throw new Error(`no ${kind}${name ? ` named ${name}` : ''} in the manifests`);
  return o;
}
