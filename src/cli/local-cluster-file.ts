// Where a local cluster (`npm start`) can be found: the launcher writes a small file naming its
// nodes while it runs, and the CLI reads it when it is given no node to talk to and nothing
// answers at its default address (the local cluster serves 8081-8083, a lone node 8080).

import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface LocalClusterState {
  /** The launcher's process id: the file is stale once it is gone. */
  launcher_pid: number;
  started_at: string;
  data: string;
  nodes: Array<{ id: string; url: string; pid: number | null }>;
}

/** The file: $QUORUMKV_LOCAL_CLUSTER_FILE, else one per user in the temporary directory. */
export function localClusterFile(env: NodeJS.ProcessEnv = process.env): string {
  const given = env.QUORUMKV_LOCAL_CLUSTER_FILE;
  if (given) return given;
  const user = typeof process.getuid === 'function' ? String(process.getuid()) : (env.USER ?? 'user');
  return path.join(tmpdir(), `quorumkv-local-cluster-${user}.json`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The running local cluster the file names; undefined when there is no file, it is unreadable, or its launcher is gone. */
export function readLocalCluster(file: string): LocalClusterState | undefined {
  let state: LocalClusterState;
  try {
    state = JSON.parse(readFileSync(file, 'utf8')) as LocalClusterState;
  } catch {
    return undefined;
  }
  if (!Number.isInteger(state?.launcher_pid) || !Array.isArray(state.nodes) || !alive(state.launcher_pid)) return undefined;
  return state;
}

/** Whether something accepts a TCP connection at the URL's host and port within `timeoutMs`. */
export function answers(url: string, timeoutMs: number): Promise<boolean> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return Promise.resolve(false);
  }
  const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  return new Promise((resolve) => {
    const socket = connect({ host: u.hostname, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** The launcher's default ports, tried when no state file names a running local cluster. */
export const LAUNCHER_DEFAULT_URLS = ['http://127.0.0.1:8081', 'http://127.0.0.1:8082', 'http://127.0.0.1:8083'];

/**
 * A node of the local cluster for a command given no node to talk to, when nothing answers at
 * `defaultUrl`: the first node of the running launcher's file that answers, else the first of the
 * launcher's default ports that does. Undefined when the default answers, or nothing else does.
 */
export async function localFallback(
  defaultUrl: string,
  stateFile: string,
  timeoutMs = 500,
): Promise<{ url: string; id: string | undefined; from: 'file' | 'ports' } | undefined> {
  if (await answers(defaultUrl, timeoutMs)) return undefined;
  const state = readLocalCluster(stateFile);
  const candidates = state
    ? state.nodes.map((n) => ({ url: n.url, id: n.id as string | undefined, from: 'file' as const }))
    : LAUNCHER_DEFAULT_URLS.map((url) => ({ url, id: undefined, from: 'ports' as const }));
  for (const c of candidates) if (await answers(c.url, timeoutMs)) return c;
  return undefined;
}
