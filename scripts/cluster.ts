// `npm start`: a local 3-node cluster on 127.0.0.1:8081-8083, data under ./data/, readable logs.
// Ctrl-C stops every node cleanly (a second Ctrl-C kills them).
//
// The admin routes (/admin/*) of a local cluster trust callers on loopback, and the banner says
// so; with QUORUMKV_ADMIN_TOKEN set in the launcher's environment they take that token instead
// (the CLI sends it from the same variable), and loopback is not trusted.
//
//   node dist/scripts/cluster.js [--nodes 3] [--base-port 8081] [--data ./data] [-- extra serve flags]

import path from 'node:path';
import { LocalCluster, type LocalNode, repoRoot } from './lib/local-cluster';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' };
const COLORS = ['\x1b[36m', '\x1b[35m', '\x1b[33m', '\x1b[32m', '\x1b[34m'];
const RESET = '\x1b[0m';
const tty = process.stdout.isTTY;

/** One pino JSON line as `12:00:01.123 n1 INFO  message key=value ...`. */
export function prettyLine(nodeIndex: number, line: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const { level, time, node, msg, config, ...rest } = o;
  const t = typeof time === 'string' ? time.slice(11, 23) : '';
  const fields = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  const who = String(node ?? '?');
  const color = tty ? (COLORS[nodeIndex % COLORS.length] as string) : '';
  return `${t} ${color}${who.padEnd(3)}${tty ? RESET : ''} ${LEVELS[level as number] ?? level} ${msg}${config ? ' (config logged)' : ''}${fields ? `  ${fields}` : ''}`;
}

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? (process.argv[i + 1] as string) : fallback;
}

async function main(): Promise<void> {
  const count = Number(option('nodes', '3'));
  const basePort = Number(option('base-port', '8081'));
  const dataRoot = path.resolve(option('data', path.join(repoRoot(), 'data')));
  const dashdash = process.argv.indexOf('--');
  const extra = dashdash > 0 ? process.argv.slice(dashdash + 1) : [];

  // the nodes inherit this environment: with a token in it, they require it
  const withToken = (process.env.QUORUMKV_ADMIN_TOKEN ?? '') !== '';
  const cluster = LocalCluster.create({
    host: '127.0.0.1',
    basePort,
    nodes: count,
    dataRoot,
    args: extra,
    ...(withToken ? { env: { QUORUMKV_ADMIN_FROM_LOOPBACK: 'false' } } : {}),
    onLine: (n: LocalNode, line) => process.stdout.write(`${prettyLine(Number(n.id.slice(1)) - 1, line)}\n`),
  });

  let stopping = false;
  process.on('SIGINT', () => {
    if (stopping) {
      process.stdout.write('\nkilling the nodes\n');
      void cluster.stopAll('SIGKILL').then(() => process.exit(1));
      return;
    }
    stopping = true;
    process.stdout.write('\nstopping the nodes (Ctrl-C again to kill them)\n');
    void cluster.stopAll('SIGTERM').then(() => process.exit(0));
  });
  process.on('SIGTERM', () => void cluster.stopAll('SIGTERM').then(() => process.exit(0)));

  try {
    await cluster.start();
  } catch (err) {
    process.stderr.write(`could not start the cluster: ${(err as Error).message}\n`);
    await cluster.stopAll('SIGKILL');
    process.exit(1);
  }
  const first = cluster.nodes[0] as LocalNode;
  process.stdout.write(
    [
      '',
      `quorumkv: ${count} nodes up, data in ${dataRoot}`,
      ...cluster.nodes.map((n) => `  ${n.id}  ${n.url}   (pid ${n.pid})`),
      '',
      withToken
        ? 'admin routes (/admin/*): need Authorization: Bearer $QUORUMKV_ADMIN_TOKEN (the CLI sends it from that variable)'
        : 'admin routes (/admin/*): open to callers on this host (QUORUMKV_ADMIN_FROM_LOOPBACK=true, for local clusters only;\n' +
          '  set QUORUMKV_ADMIN_TOKEN before npm start to require a token instead, as a Kubernetes deployment does)',
      '',
      'try:',
      `  curl -X PUT -H 'Content-Type: application/json' -d '{"value":"v1"}' ${first.url}/kv/user:42`,
      `  curl ${cluster.nodes[1]?.url ?? first.url}/kv/user:42`,
      `  curl ${first.url}/cluster`,
      '',
      'Ctrl-C stops the cluster.',
      '',
    ].join('\n'),
  );
}

if (require.main === module) void main();
