// What the preStop hook learns from the Kubernetes API (src/cli/kube.ts), against a real HTTPS
// server with a self-signed certificate, and what it decides from it. Then the simulator's fake API
// server (scripts/lib/kube-api.ts) with the RBAC objects of k8s/.

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FakeKubeApi, makeSelfSignedCert } from '../../scripts/lib/kube-api';
import { find, type K8sObject, loadManifests } from '../../scripts/lib/manifests';
import { parsePodName, preStopAction, statefulSetReplicas } from '../../src/cli/kube';

describe('preStopAction: decommission only a pod a scale-down removes', () => {
  test.each<[string, number | undefined, 'decommission' | 'drain', RegExp]>([
    ['quorumkv-3', 3, 'decommission', /ordinal 3 >= spec.replicas 3: a scale-down removes this pod/],
    ['quorumkv-4', 3, 'decommission', /ordinal 4 >= spec.replicas 3/],
    ['my-db-10', 10, 'decommission', /ordinal 10 >= spec.replicas 10/],
    ['quorumkv-2', 3, 'drain', /ordinal 2 < spec.replicas 3: the pod is restarting/],
    ['quorumkv-0', 5, 'drain', /ordinal 0 < spec.replicas 5/],
    ['quorumkv-2', undefined, 'drain', /replicas are unknown/],
    ['quorumkv-1', 0, 'drain', /spec.replicas is 0: no member would remain/],
    ['quorumkv-1', -1, 'drain', /not a non-negative integer/],
    ['quorumkv-1', Number.NaN, 'drain', /not a non-negative integer/],
    ['quorumkv-1', 1.5, 'drain', /not a non-negative integer/],
    ['quorumkv', 1, 'drain', /has no -<ordinal>/],
    ['quorumkv-01', 1, 'drain', /has no -<ordinal>/],
  ])('%s with replicas %p: %s', (pod, replicas, action, reason) => {
    const r = preStopAction(pod, replicas);
    expect(r.action).toBe(action);
    expect(r.reason).toMatch(reason);
  });

  test('the StatefulSet is the pod name without its ordinal', () => {
    expect(parsePodName('quorumkv-12')).toEqual({ statefulSet: 'quorumkv', ordinal: 12 });
    expect(parsePodName('a-b-c-0')).toEqual({ statefulSet: 'a-b-c', ordinal: 0 });
    expect(parsePodName('-3')).toBeUndefined();
    expect(parsePodName('quorumkv-x')).toBeUndefined();
  });
});

describe('statefulSetReplicas against a real HTTPS server', () => {
  let dir: string;
  let saDir: string;
  let server: https.Server;
  let port: number;
  /** What the server does with the next request. */
  let behaviour: 'ok' | 'hang' | 'bad-json' | 'no-replicas' = 'ok';
  const seen: Array<{ path: string | undefined; authorization: string | undefined }> = [];
  const hanging: Array<import('node:http').ServerResponse> = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'qkv-kube-unit-'));
    const { keyFile, certFile } = makeSelfSignedCert(dir);
    saDir = path.join(dir, 'sa');
    mkdirSync(saDir);
    writeFileSync(path.join(saDir, 'token'), 'the-token\n');
    writeFileSync(path.join(saDir, 'ca.crt'), readFileSync(certFile));
    writeFileSync(path.join(saDir, 'namespace'), 'ns1');
    server = https.createServer({ key: readFileSync(keyFile), cert: readFileSync(certFile) }, (req, res) => {
      seen.push({ path: req.url, authorization: req.headers.authorization });
      const status = (code: number, message: string) => {
        res.writeHead(code, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message, code }));
      };
      if (req.headers.authorization !== 'Bearer the-token') return status(401, 'Unauthorized');
      if (behaviour === 'hang') return void hanging.push(res);
      const m = /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/statefulsets\/([^/]+)$/.exec(req.url ?? '');
      if (!m) return status(404, 'the server could not find the requested resource');
      if (m[1] !== 'ns1' && m[1] !== 'ns2') return status(403, `statefulsets.apps "${m[2]}" is forbidden: no access to namespace ${m[1]}`);
      if (behaviour === 'bad-json') return void res.end('{"spec": ');
      const replicas = m[2] === 'web' ? 5 : 7;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ apiVersion: 'apps/v1', kind: 'StatefulSet', spec: behaviour === 'no-replicas' ? {} : { replicas } }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;
  });

  afterEach(() => {
    behaviour = 'ok';
    for (const res of hanging.splice(0)) res.destroy();
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  const env = () => ({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(port) });

  test('reads spec.replicas of the StatefulSet named by the pod, in the namespace of the service account, with its token', async () => {
    seen.length = 0;
    expect(await statefulSetReplicas({ podName: 'web-2', serviceAccountDir: saDir, env: env(), timeoutMs: 5000 })).toEqual({ replicas: 5 });
    expect(seen).toEqual([{ path: '/apis/apps/v1/namespaces/ns1/statefulsets/web', authorization: 'Bearer the-token' }]);
  });

  test('the namespace and the API URL can be given', async () => {
    const r = await statefulSetReplicas({
      podName: 'db-0',
      namespace: 'ns2',
      serviceAccountDir: saDir,
      apiUrl: `https://127.0.0.1:${port}`,
      env: {},
      timeoutMs: 5000,
    });
    expect(r).toEqual({ replicas: 7 });
  });

  test('a wrong token is refused: the error says 401', async () => {
    const other = path.join(dir, 'sa-wrong-token');
    mkdirSync(other, { recursive: true });
    for (const f of ['ca.crt', 'namespace']) writeFileSync(path.join(other, f), readFileSync(path.join(saDir, f)));
    writeFileSync(path.join(other, 'token'), 'not-the-token');
    const r = await statefulSetReplicas({ podName: 'web-2', serviceAccountDir: other, env: env(), timeoutMs: 5000 });
    expect(r).toEqual({ error: 'GET /apis/apps/v1/namespaces/ns1/statefulsets/web: HTTP 401: Unauthorized' });
  });

  test('a forbidden namespace is refused: the error says 403 and why', async () => {
    const r = await statefulSetReplicas({ podName: 'web-2', namespace: 'other', serviceAccountDir: saDir, env: env(), timeoutMs: 5000 });
    expect(r).toEqual({
      error:
        'GET /apis/apps/v1/namespaces/other/statefulsets/web: HTTP 403: statefulsets.apps "web" is forbidden: no access to namespace other',
    });
  });

  test('a server that does not answer: an error at the deadline', async () => {
    behaviour = 'hang';
    const start = Date.now();
    const r = await statefulSetReplicas({ podName: 'web-2', serviceAccountDir: saDir, env: env(), timeoutMs: 300 });
    const took = Date.now() - start;
    expect(r).toEqual({ error: `GET https://127.0.0.1:${port}/apis/apps/v1/namespaces/ns1/statefulsets/web: no answer within 300 ms` });
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(2000);
  });

  test('a reply that is not JSON, or has no spec.replicas: an error', async () => {
    behaviour = 'bad-json';
    const bad = await statefulSetReplicas({ podName: 'web-2', serviceAccountDir: saDir, env: env(), timeoutMs: 5000 });
    expect('error' in bad && bad.error).toMatch(/^GET \/apis\/apps\/v1\/namespaces\/ns1\/statefulsets\/web: the reply is not JSON: /);
    behaviour = 'no-replicas';
    const none = await statefulSetReplicas({ podName: 'web-2', serviceAccountDir: saDir, env: env(), timeoutMs: 5000 });
    expect(none).toEqual({
      error: 'GET /apis/apps/v1/namespaces/ns1/statefulsets/web: spec.replicas is not a non-negative integer: undefined',
    });
  });

  test('a server whose certificate the CA does not sign is refused', async () => {
    const otherDir = path.join(dir, 'other-ca');
    mkdirSync(otherDir, { recursive: true });
    const { certFile } = makeSelfSignedCert(otherDir);
    const sa = path.join(dir, 'sa-other-ca');
    mkdirSync(sa, { recursive: true });
    writeFileSync(path.join(sa, 'token'), 'the-token');
    writeFileSync(path.join(sa, 'namespace'), 'ns1');
    writeFileSync(path.join(sa, 'ca.crt'), readFileSync(certFile));
    seen.length = 0;
    const r = await statefulSetReplicas({ podName: 'web-2', serviceAccountDir: sa, env: env(), timeoutMs: 5000 });
    expect('error' in r && r.error).toMatch(/self.signed certificate|unable to verify|certificate signature failure/i);
    expect(seen).toEqual([]); // the token was never sent
  });

  test('missing service-account files: an error naming each', async () => {
    const empty = path.join(dir, 'empty-sa');
    mkdirSync(empty, { recursive: true });
    const r = await statefulSetReplicas({ podName: 'web-2', serviceAccountDir: empty, env: env(), timeoutMs: 5000 });
    expect(r).toEqual({
      error:
        `cannot read ${empty}/token: ENOENT; cannot read ${empty}/ca.crt: ENOENT; cannot read ${empty}/namespace: ENOENT ` +
        '(is the ServiceAccount token mounted?)',
    });
  });

  test('outside a pod (no KUBERNETES_SERVICE_HOST), or for a name without an ordinal: an error, no request', async () => {
    seen.length = 0;
    expect(await statefulSetReplicas({ podName: 'web-2', serviceAccountDir: saDir, env: {}, timeoutMs: 5000 })).toEqual({
      error: 'KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: not running in a pod?',
    });
    expect(await statefulSetReplicas({ podName: 'web', serviceAccountDir: saDir, env: env(), timeoutMs: 5000 })).toEqual({
      error: 'pod name "web" does not end in -<ordinal>: not a StatefulSet pod',
    });
    expect(seen).toEqual([]);
  });

  test('nothing listening: an error, not an exception', async () => {
    const r = await statefulSetReplicas({ podName: 'web-2', serviceAccountDir: saDir, apiUrl: 'https://127.0.0.1:1', timeoutMs: 5000 });
    expect('error' in r && r.error).toMatch(/ECONNREFUSED/);
  });
});

describe("the simulator's fake API server, with the RBAC objects of k8s/", () => {
  const objects = loadManifests(path.join(__dirname, '..', '..', 'k8s'));
  const sts = find(objects, 'StatefulSet');
  let replicas = 3;
  let api: FakeKubeApi;

  beforeAll(async () => {
    api = new FakeKubeApi({
      objects,
      namespace: sts.metadata.namespace,
      statefulSet: sts.metadata.name,
      serviceAccount: sts.spec.template.spec.serviceAccountName,
      state: () => ({ replicas, status: { replicas: 3, readyReplicas: 3 } }),
    });
    await api.start();
  });
  afterAll(() => api.stop());

  const ask = (podName: string, serviceAccountDir = api.serviceAccountDir) =>
    statefulSetReplicas({ podName, serviceAccountDir, apiUrl: api.url, timeoutMs: 5000 });

  test("a pod reads its StatefulSet's current replicas, and follows a scale", async () => {
    expect(await ask('quorumkv-4')).toEqual({ replicas: 3 });
    replicas = 5;
    expect(await ask('quorumkv-4')).toEqual({ replicas: 5 });
    expect(preStopAction('quorumkv-4', 5).action).toBe('drain');
    replicas = 3;
    expect(await ask('quorumkv-4')).toEqual({ replicas: 3 });
    expect(preStopAction('quorumkv-4', 3).action).toBe('decommission');
    expect(api.requests.at(-1)).toEqual({
      method: 'GET',
      path: '/apis/apps/v1/namespaces/quorumkv/statefulsets/quorumkv',
      status: 200,
      user: 'system:serviceaccount:quorumkv:quorumkv',
    });
  });

  test('the reply is a StatefulSet object', () => {
    const r = api.handle('GET', '/apis/apps/v1/namespaces/quorumkv/statefulsets/quorumkv', `Bearer ${tokenOf(api)}`);
    expect(r).toMatchObject({
      status: 200,
      body: {
        apiVersion: 'apps/v1',
        kind: 'StatefulSet',
        metadata: { name: 'quorumkv', namespace: 'quorumkv' },
        spec: { replicas: 3 },
        status: { replicas: 3, readyReplicas: 3 },
      },
    });
  });

  test('401 without the token; 403 for what the Role does not grant; 404 for the rest', () => {
    const auth = `Bearer ${tokenOf(api)}`;
    const sts = '/apis/apps/v1/namespaces/quorumkv/statefulsets';
    expect(api.handle('GET', `${sts}/quorumkv`, undefined).status).toBe(401);
    expect(api.handle('GET', `${sts}/quorumkv`, 'Bearer nope').status).toBe(401);
    const other = api.handle('GET', `${sts}/other`, auth);
    expect(other.status).toBe(403);
    expect(other.body.message).toBe(
      'statefulsets.apps "other" is forbidden: User "system:serviceaccount:quorumkv:quorumkv" cannot get resource "statefulsets" in API group "apps" in the namespace "quorumkv"',
    );
    expect(api.handle('PATCH', `${sts}/quorumkv`, auth).status).toBe(403);
    expect(api.handle('GET', '/apis/apps/v1/namespaces/default/statefulsets/quorumkv', auth).status).toBe(403);
    expect(api.handle('GET', '/api/v1/namespaces/quorumkv/pods', auth).status).toBe(404);
  });

  test('a RoleBinding to another ServiceAccount leaves the pods without access: 403', async () => {
    const broken = structuredClone(objects);
    (find(broken, 'RoleBinding') as K8sObject).subjects[0].name = 'default';
    const other = new FakeKubeApi({
      objects: broken,
      namespace: 'quorumkv',
      statefulSet: 'quorumkv',
      serviceAccount: 'quorumkv',
      state: () => ({ replicas: 3, status: {} }),
    });
    await other.start();
    try {
      const r = await statefulSetReplicas({
        podName: 'quorumkv-1',
        serviceAccountDir: other.serviceAccountDir,
        apiUrl: other.url,
        timeoutMs: 5000,
      });
      expect('error' in r && r.error).toMatch(/^GET \/apis\/apps\/v1\/namespaces\/quorumkv\/statefulsets\/quorumkv: HTTP 403: /);
      expect(preStopAction('quorumkv-1', undefined).action).toBe('drain');
    } finally {
      await other.stop();
    }
  });
});

function tokenOf(api: FakeKubeApi): string {
  return readFileSync(path.join(api.serviceAccountDir, 'token'), 'utf8');
}
