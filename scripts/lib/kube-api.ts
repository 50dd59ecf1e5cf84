// A Kubernetes API server in miniature, for the StatefulSet simulator: the one call quorumkv's
// preStop makes (GET a StatefulSet, for spec.replicas), answered the way the real API server does,
// with its authentication and RBAC, because a real one cannot run on these machines.
//
// - HTTPS on 127.0.0.1 (a free port) with a self-signed certificate made by openssl, whose CA a pod
//   gets as ca.crt: the client must verify it, as client-go's in-cluster config does.
// - A service-account directory (token, ca.crt, namespace) like the one kubelet mounts at
//   /var/run/secrets/kubernetes.io/serviceaccount; the token authenticates as
//   system:serviceaccount:<namespace>:<serviceAccount>.
// - Authentication, then authorization, then the lookup, in the API server's order: no or a wrong
//   bearer token is 401; a request the manifests' Roles/ClusterRoles and their bindings do not allow
//   for that ServiceAccount is 403 (checked against the loaded manifests, so a broken Role or a
//   RoleBinding to the wrong subject fails here as it would in a cluster); then 404 for anything
//   but the one StatefulSet. Only GET of a StatefulSet is served; other verbs are authorized and
//   then refused with 405.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { K8sObject } from './manifests';

/** A key and a self-signed certificate for `ip` (also its own CA), written into `dir`. */
export function makeSelfSignedCert(dir: string, ip = '127.0.0.1'): { keyFile: string; certFile: string } {
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  const r = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=${ip}`,
      '-addext',
      `subjectAltName=IP:${ip}`,
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { encoding: 'utf8', timeout: 30_000 },
  );
  if (r.error) throw new Error(`openssl: ${r.error.message} (is openssl installed?)`);
  if (r.status !== 0) throw new Error(`openssl req exited with ${r.status}: ${r.stderr}`);
  return { keyFile, certFile };
}

export interface ResourceAttributes {
  verb: string;
  apiGroup: string;
  resource: string;
  namespace: string;
  name: string;
}

export interface ServiceAccountRef {
  namespace: string;
  name: string;
}

function ruleAllows(rule: K8sObject, a: ResourceAttributes): boolean {
  const has = (list: unknown, v: string) => Array.isArray(list) && (list.includes(v) || list.includes('*'));
  if (!has(rule.verbs, a.verb) || !has(rule.apiGroups, a.apiGroup) || !has(rule.resources, a.resource)) return false;
  const names = rule.resourceNames as unknown[] | undefined;
  return names === undefined || names.length === 0 || names.includes(a.name);
}

function bindsServiceAccount(binding: K8sObject, sa: ServiceAccountRef): boolean {
  return ((binding.subjects ?? []) as K8sObject[]).some(
    (s) => s.kind === 'ServiceAccount' && s.name === sa.name && (s.namespace ?? binding.metadata?.namespace) === sa.namespace,
  );
}

/**
 * RBAC as the API server evaluates it, over the objects of the manifests: allowed when a
 * RoleBinding in the request's namespace (to a Role there or a ClusterRole) or a ClusterRoleBinding
 * binds the ServiceAccount to a rule that covers the verb, API group, resource and name. RBAC only
 * adds permissions, so the first match decides.
 */
export function rbacAllows(objects: K8sObject[], sa: ServiceAccountRef, a: ResourceAttributes): { allowed: boolean; by?: string } {
  const role = (kind: string, name: string, namespace?: string) =>
    objects.find(
      (o) =>
        o.apiVersion === 'rbac.authorization.k8s.io/v1' &&
        o.kind === kind &&
        o.metadata?.name === name &&
        (kind === 'ClusterRole' || o.metadata?.namespace === namespace),
    );
  for (const b of objects) {
    if (b.apiVersion !== 'rbac.authorization.k8s.io/v1' || !bindsServiceAccount(b, sa)) continue;
    const ref = b.roleRef as { apiGroup?: string; kind?: string; name?: string } | undefined;
    if (ref?.apiGroup !== 'rbac.authorization.k8s.io' || !ref.name) continue;
    let r: K8sObject | undefined;
    if (b.kind === 'RoleBinding' && b.metadata?.namespace === a.namespace) {
      r =
        ref.kind === 'Role' ? role('Role', ref.name, a.namespace) : ref.kind === 'ClusterRole' ? role('ClusterRole', ref.name) : undefined;
    } else if (b.kind === 'ClusterRoleBinding' && ref.kind === 'ClusterRole') {
      r = role('ClusterRole', ref.name);
    }
    if (r && ((r.rules ?? []) as K8sObject[]).some((rule) => ruleAllows(rule, a))) {
      return { allowed: true, by: `${b.kind} ${b.metadata?.name} -> ${ref.kind} ${ref.name}` };
    }
  }
  return { allowed: false };
}

export interface FakeKubeApiOptions {
  /** The loaded manifests (with their namespace set): RBAC objects are read from them. */
  objects: K8sObject[];
  namespace: string;
  statefulSet: string;
  /** The ServiceAccount the pods run as; the token of the service-account directory is its. */
  serviceAccount: string;
  /** The StatefulSet as the controller sees it now. */
  state: () => { replicas: number; status: Record<string, number> };
  /** Default: a new temporary directory, removed by stop(). */
  dir?: string;
  log?: (line: string) => void;
}

export interface ApiRequestRecord {
  method: string;
  path: string;
  status: number;
  user: string | undefined;
}

const SA_API = /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/statefulsets\/([^/]+)$/;

export class FakeKubeApi {
  /** Every request answered, in order (for tests and the timeline). */
  readonly requests: ApiRequestRecord[] = [];
  private server: https.Server | undefined;
  private readonly dir: string;
  private readonly ownDir: boolean;
  private readonly token = randomBytes(24).toString('base64url');
  /**
   * When set, every authenticated request is refused with 403 and this message, whatever the RBAC
   * says (a Role edited away, an admission webhook, an API server that refuses the pod).
   */
  forbid: string | undefined;

  constructor(private readonly opts: FakeKubeApiOptions) {
    this.ownDir = opts.dir === undefined;
    this.dir = opts.dir ?? mkdtempSync(path.join(tmpdir(), 'qkv-kube-api-'));
  }

  /** What kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount. */
  get serviceAccountDir(): string {
    return path.join(this.dir, 'serviceaccount');
  }

  get port(): number {
    const a = this.server?.address() as AddressInfo | null | undefined;
    if (!a) throw new Error('the fake API server is not running');
    return a.port;
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const { keyFile, certFile } = makeSelfSignedCert(this.dir);
    mkdirSync(this.serviceAccountDir, { recursive: true });
    writeFileSync(path.join(this.serviceAccountDir, 'token'), this.token);
    writeFileSync(path.join(this.serviceAccountDir, 'ca.crt'), readFileSync(certFile));
    writeFileSync(path.join(this.serviceAccountDir, 'namespace'), this.opts.namespace);
    const server = https.createServer({ key: readFileSync(keyFile), cert: readFileSync(certFile) }, (req, res) => {
      const { status, body, user } = this.handle(req.method ?? 'GET', req.url ?? '/', req.headers.authorization);
      this.requests.push({ method: req.method ?? 'GET', path: req.url ?? '/', status, user });
      if (this.requests.length > 10_000) this.requests.shift();
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
      // a drained request must not keep a socket (and the server) open
      req.resume();
    });
    server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.opts.log?.(`kube-apiserver (fake): ${this.url}, service-account dir ${this.serviceAccountDir}`);
  }

  private status(code: number, reason: string, message: string): { status: number; body: K8sObject } {
    return { status: code, body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code } };
  }

  /** The API server's answer to one request. */
  handle(method: string, rawPath: string, authorization: string | undefined): { status: number; body: K8sObject; user?: string } {
    const m = /^Bearer (.+)$/.exec(authorization ?? '');
    if (!m || m[1] !== this.token) return this.status(401, 'Unauthorized', 'Unauthorized');
    const sa = { namespace: this.opts.namespace, name: this.opts.serviceAccount };
    const user = `system:serviceaccount:${sa.namespace}:${sa.name}`;
    if (this.forbid !== undefined) return { ...this.status(403, 'Forbidden', this.forbid), user };
    const p = SA_API.exec(new URL(rawPath, 'https://x').pathname);
    if (!p) return { ...this.status(404, 'NotFound', 'the server could not find the requested resource'), user };
    const namespace = decodeURIComponent(p[1] as string);
    const name = decodeURIComponent(p[2] as string);
    const verbs: Record<string, string> = { GET: 'get', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
    const verb = verbs[method] ?? method.toLowerCase();
    const authz = rbacAllows(this.opts.objects, sa, { verb, apiGroup: 'apps', resource: 'statefulsets', namespace, name });
    if (!authz.allowed) {
      return {
        ...this.status(
          403,
          'Forbidden',
          `statefulsets.apps ${JSON.stringify(name)} is forbidden: User ${JSON.stringify(user)} cannot ${verb} resource "statefulsets" in API group "apps" in the namespace ${JSON.stringify(namespace)}`,
        ),
        user,
      };
    }
    if (namespace !== this.opts.namespace || name !== this.opts.statefulSet) {
      return { ...this.status(404, 'NotFound', `statefulsets.apps ${JSON.stringify(name)} not found`), user };
    }
    if (method !== 'GET') return { ...this.status(405, 'MethodNotAllowed', `the fake API server serves only GET, not ${method}`), user };
    const { replicas, status } = this.opts.state();
    return {
      status: 200,
      body: {
        apiVersion: 'apps/v1',
        kind: 'StatefulSet',
        metadata: { name, namespace },
        spec: { replicas },
        status: { ...status },
      },
      user,
    };
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
    if (this.ownDir) rmSync(this.dir, { recursive: true, force: true });
  }
}
