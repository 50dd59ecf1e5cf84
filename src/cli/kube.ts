// What a pod's preStop hook needs from the Kubernetes API, and nothing more: the StatefulSet's
// desired replicas, read with the pod's own ServiceAccount the way client-go's in-cluster config
// does (API at https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, bearer token and CA from
// the mounted service-account directory). node:https only: the image carries no Kubernetes client.
//
// preStopAction decides from that whether a stopping pod is leaving the cluster (its ordinal is at
// or above spec.replicas: a scale-down removes it, so it must stream its data to the remaining
// members first) or only restarting (rolling update, eviction, kubectl delete pod: it comes back on
// the same volume, so a drain is enough). On any doubt it drains: a wrong decommission moves all of
// a node's data away and back, a wrong drain of a leaving pod is finished by `quorumkv removenode`.

import { readFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';

/** Where kubelet mounts the ServiceAccount token, CA bundle and namespace in every container. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** A reply body read from the API server is never larger than this (a StatefulSet is a few KiB). */
const MAX_REPLY_BYTES = 1 << 20;

/** `quorumkv-3` → { statefulSet: 'quorumkv', ordinal: 3 }; undefined for a name without `-<ordinal>`. */
export function parsePodName(podName: string): { statefulSet: string; ordinal: number } | undefined {
  const m = /^(.+)-(0|[1-9][0-9]{0,8})$/.exec(podName);
  if (!m) return undefined;
  return { statefulSet: m[1] as string, ordinal: Number(m[2]) };
}

export interface StatefulSetReplicasOptions {
  /** This pod's name (POD_NAME): the StatefulSet is the name without its `-<ordinal>`. */
  podName: string;
  /** Default: the `namespace` file of the service-account directory. */
  namespace?: string;
  /** Default: SERVICE_ACCOUNT_DIR. */
  serviceAccountDir?: string;
  /** Default: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT. */
  apiUrl?: string;
  /** The whole call (files, connection, reply) gives up after this long. */
  timeoutMs: number;
  /** Default: process.env (for tests). */
  env?: Record<string, string | undefined>;
}

/** spec.replicas of this pod's StatefulSet, or why it could not be read (never throws). */
export async function statefulSetReplicas(opts: StatefulSetReplicasOptions): Promise<{ replicas: number } | { error: string }> {
  if (!(opts.timeoutMs > 0)) return { error: `timeoutMs must be positive; got ${opts.timeoutMs}` };
  const pod = parsePodName(opts.podName);
  if (!pod) return { error: `pod name ${JSON.stringify(opts.podName)} does not end in -<ordinal>: not a StatefulSet pod` };
  const env = opts.env ?? process.env;
  let apiUrl = opts.apiUrl;
  if (apiUrl === undefined) {
    const host = env.KUBERNETES_SERVICE_HOST;
    const port = env.KUBERNETES_SERVICE_PORT;
    if (!host || !port) return { error: 'KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: not running in a pod?' };
    apiUrl = `https://${host.includes(':') ? `[${host}]` : host}:${port}`; // an IPv6 service IP needs brackets
  }
  const dir = opts.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  const deadline = Date.now() + opts.timeoutMs;

  const files = await Promise.all(
    ['token', 'ca.crt', ...(opts.namespace === undefined ? ['namespace'] : [])].map(async (name) => {
      const file = path.join(dir, name);
      try {
        return { name, text: await readFile(file, 'utf8') };
      } catch (err) {
        return { name, error: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
      }
    }),
  );
  const missing = files.filter((f) => f.error !== undefined).map((f) => f.error);
  if (missing.length > 0) return { error: `${missing.join('; ')} (is the ServiceAccount token mounted?)` };
  const text = (name: string) => files.find((f) => f.name === name)?.text ?? '';
  const token = text('token').trim();
  const namespace = opts.namespace ?? text('namespace').trim();
  if (token === '') return { error: `${path.join(dir, 'token')} is empty` };
  if (namespace === '') return { error: `${path.join(dir, 'namespace')} is empty` };

  let url: URL;
  try {
    url = new URL(`/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/statefulsets/${encodeURIComponent(pod.statefulSet)}`, apiUrl);
  } catch {
    return { error: `bad API server URL ${JSON.stringify(apiUrl)}` };
  }
  const remainingMs = deadline - Date.now();
  if (remainingMs <= 0) return { error: `no answer within ${opts.timeoutMs} ms (reading the service-account files)` };
  const reply = await getJson(url, token, text('ca.crt'), remainingMs, opts.timeoutMs);
  if ('error' in reply) return reply;
  const where = `GET ${url.pathname}`;
  if (reply.status !== 200) {
    // The API server explains itself in a Status object: {"kind":"Status","message":"..."}.
    let message = reply.body.slice(0, 300);
    try {
      const status = JSON.parse(reply.body) as { message?: unknown };
      if (typeof status.message === 'string') message = status.message;
    } catch {}
    return { error: `${where}: HTTP ${reply.status}: ${message}` };
  }
  let body: unknown;
  try {
    body = JSON.parse(reply.body);
  } catch (err) {
    return { error: `${where}: the reply is not JSON: ${(err as Error).message}` };
  }
  const replicas = (body as { spec?: { replicas?: unknown } } | null)?.spec?.replicas;
  if (!Number.isSafeInteger(replicas) || (replicas as number) < 0) {
    return { error: `${where}: spec.replicas is not a non-negative integer: ${JSON.stringify(replicas)}` };
  }
  return { replicas: replicas as number };
}

/** One HTTPS GET bounded by `timeoutMs` from connect to the last byte; never rejects. */
function getJson(
  url: URL,
  token: string,
  ca: string,
  timeoutMs: number,
  budgetMs: number,
): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: { status: number; body: string } | { error: string }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const req = https.request(
      url,
      {
        method: 'GET',
        ca,
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
        agent: false, // one request, no pooled socket to keep the process alive
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_REPLY_BYTES) {
            req.destroy();
            done({ error: `GET ${url.pathname}: reply larger than ${MAX_REPLY_BYTES} bytes` });
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => done({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (err) => done({ error: `GET ${url.href}: ${err.message}` }));
      },
    );
    const timer = setTimeout(() => {
      done({ error: `GET ${url.href}: no answer within ${budgetMs} ms` });
      req.destroy();
    }, timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => done({ error: `GET ${url.href}: ${err.code ? `${err.code}: ` : ''}${err.message}` }));
    req.end();
  });
}

export type PreStopAction = { action: 'decommission' | 'drain'; reason: string };

/**
 * What a stopping pod should do, from its name and its StatefulSet's spec.replicas (undefined when
 * it could not be read). Only a pod the StatefulSet no longer wants (ordinal >= replicas) is
 * decommissioned; everything else, unknowns included, drains and comes back on its volume.
 */
export function preStopAction(podName: string, replicas: number | undefined): PreStopAction {
  const pod = parsePodName(podName);
  if (!pod) return { action: 'drain', reason: `pod name ${JSON.stringify(podName)} has no -<ordinal>: cannot tell if it is being removed` };
  if (replicas === undefined) {
    return { action: 'drain', reason: 'the StatefulSet replicas are unknown: draining (decommission only when sure the pod is removed)' };
  }
  if (!Number.isSafeInteger(replicas) || replicas < 0) {
    return { action: 'drain', reason: `spec.replicas ${JSON.stringify(replicas)} is not a non-negative integer: draining` };
  }
  if (replicas === 0) {
    // Every pod goes (the StatefulSet is being paused or torn down): there is no member left to
    // take the data, so a decommission could only fail or lose it.
    return { action: 'drain', reason: 'spec.replicas is 0: no member would remain to take the data; draining' };
  }
  if (pod.ordinal >= replicas) {
    return {
      action: 'decommission',
      reason: `ordinal ${pod.ordinal} >= spec.replicas ${replicas}: a scale-down removes this pod; streaming its data to the remaining members`,
    };
  }
  return {
    action: 'drain',
    reason: `ordinal ${pod.ordinal} < spec.replicas ${replicas}: the pod is restarting (rolling update, eviction or deletion) and comes back on its volume`,
  };
}
