// Reading k8s/ the way `kubectl apply -k` would see it: the resources listed in kustomization.yaml,
// every YAML document in them (with the file and document it came from, for error messages).

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

// biome-ignore lint/suspicious/noExplicitAny: manifests are YAML of any shape until checked
export type K8sObject = Record<string, any>;

export interface Manifest {
  file: string;
  /** Index of the YAML document in the file. */
  doc: number;
  object: K8sObject;
}

export interface Kustomization {
  dir: string;
  namespace: string | undefined;
  resources: string[];
  manifests: Manifest[];
}

function parseOne(file: string): K8sObject {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'));
  const d = docs[0];
  if (docs.length !== 1 || !d || d.errors.length > 0) throw new Error(`${file}: expected one YAML document`);
  return d.toJS() as K8sObject;
}

/** The objects `kubectl apply -k <dir>` would send (before kustomize sets the namespace). */
export function loadKustomization(dir: string): Kustomization {
  const k = parseOne(path.join(dir, 'kustomization.yaml'));
  const resources = (k.resources ?? []) as string[];
  const manifests: Manifest[] = [];
  for (const file of resources) {
    const docs = parseAllDocuments(readFileSync(path.join(dir, file), 'utf8'));
    docs.forEach((d, i) => {
      if (d.errors.length > 0) throw new Error(`${file} document ${i}: ${d.errors.map((e) => e.message).join('; ')}`);
      const object = d.toJS() as K8sObject | null;
      if (object !== null) manifests.push({ file, doc: i, object });
    });
  }
  return { dir, namespace: k.namespace as string | undefined, resources, manifests };
}

/** The objects as they land in the cluster: the kustomization's namespace applied to each. */
export function loadManifests(dir: string): K8sObject[] {
  const k = loadKustomization(dir);
  return k.manifests.map(({ object }) => {
    if (k.namespace && object.kind !== 'Namespace') object.metadata = { ...object.metadata, namespace: k.namespace };
    return object;
  });
}

export function find(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && (name === undefined || x.metadata?.name === name));
  if (!o) throw new Error(`no ${kind}${name ? ` named ${name}` : ''} in the manifests`);
  return o;
}
