// `npm start`: a local cluster on 127.0.0.1:8081-8083 (3 nodes by default), data under ./data/,
// readable logs. `npm start -- --replication-factor 2` gives a `quorumkv serve` flag to every node;
// an unknown option is refused (scripts/lib/launcher-args.ts).
//
// Stopping: Ctrl-C, SIGTERM or SIGHUP, to npm or to this launcher, stops every node with one
// SIGTERM each and waits for them (killing any still running after STOP_DEADLINE_MS). The nodes run
// in process groups of their own, so the terminal's Ctrl-C reaches only npm and the launcher: a
// node never gets two signals (its second means "exit now", skipping the clean shutdown). The start
// script is `exec node ...`, so npm's forwarded SIGTERM reaches the launcher rather than a shell
// that would die and leave it running. Should npm itself be killed outright, the launcher notices
// that its parent is gone and stops the nodes.
//
// A node that exits while the cluster runs is reported with its exit code and the command that
// starts it again. While it runs, the launcher keeps a file naming its nodes (src/cli/local-cluster-file.ts),
// which the CLI reads when it is given no --url and nothing answers at its default 127.0.0.1:8080.
//
// The admin routes (/admin/*) of a local cluster trust callers on loopback, and the banner says
// so; with QUORUMKV_ADMIN_TOKEN set in the launcher's environment they take that token instead
// (the CLI sends it from the same variable), and loopback is not trusted.
//
//   node dist/scripts/cluster.js [--nodes 3] [--base-port 8081] [--data ./data] [serve flags]

import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type LocalClusterState, localClusterFile } from '../src/cli/local-cluster-file';
import { ConfigError, loadConfig } from '../src/config';
import { type LauncherArgs, parseLauncherArgs, usage } from './lib/launcher-args';
import { LOCAL_ADMIN_ENV, LocalCluster, type LocalNode, repoRoot } from './lib/local-cluster';

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

/** How long the nodes get to stop cleanly (a node drains for at most 10 s) before they are killed. */
const STOP_DEADLINE_MS = 15_000;

/** How often the launcher checks that its parent (npm, the shell) is still there. */
const PARENT_CHECK_MS = 1000;

function writeState(file: string, cluster: LocalCluster, dataRoot: string): void {
  const state: LocalClusterState = {
    launcher_pid: process.pid,
    started_at: new Date().toISOString(),
    data: dataRoot,
    nodes: cluster.nodes.map((n) => ({ id: n.id, url: n.url, pid: n.pid ?? null })),
  };
  try {
    writeFileSync(file, `${JSON.stringify(state, null, 2)}\n`);
  } catch (err) {
    process.stderr.write(`(could not write ${file}: ${(err as Error).message}; the CLI will not find this cluster by itself)\n`);
  }
}

/** Removes the state file if it is still this launcher's (another launcher may have started since). */
function removeState(file: string): void {
  try {
    const state = JSON.parse(readFileSync(file, 'utf8')) as Partial<LocalClusterState>;
    if (state.launcher_pid === process.pid) unlinkSync(file);
  } catch {}
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${usage()}\n`);
    return;
  }
  let args: LauncherArgs;
  try {
    args = parseLauncherArgs(argv);
  } catch (err) {
    process.stderr.write(`npm start: ${(err as Error).message}\n\n${usage()}\n`);
    process.exit(2);
  }
  const { nodes: count, basePort } = args;
  const dataRoot = path.resolve(args.data ?? path.join(repoRoot(), 'data'));

  // the nodes inherit this environment: with a token in it, they require it
  const withToken = (process.env.QUORUMKV_ADMIN_TOKEN ?? '') !== '';
  const env: Record<string, string> = withToken ? { QUORUMKV_ADMIN_FROM_LOOPBACK: 'false' } : {};
  const stateFile = localClusterFile();
  let stopping: Promise<void> | undefined;
  const cluster = LocalCluster.create({
    host: '127.0.0.1',
    basePort,
    nodes: count,
    dataRoot,
    args: args.serveArgs,
    env,
    ownProcessGroups: true,
    onLine: (n: LocalNode, line) => process.stdout.write(`${prettyLine(Number(n.id.slice(1)) - 1, line)}\n`),
    onExit: (n, code, signal) => {
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      if (stopping) {
        if (signal || code !== 0) process.stdout.write(`${n.id} ${how} while stopping\n`);
        return;
      }
      process.stdout.write(
        `\n${n.id} (pid ${n.pid}) ${how}; the others go on. Start it again, in another terminal, with:\n  ${n.commandLine()}\n\n`,
      );
      if (cluster.nodes.every((x) => !x.running)) {
        process.stdout.write('every node has exited: the launcher stops\n');
        removeState(stateFile);
        process.exit(1);
      }
    },
  });

  // Settings are checked before any node starts: one message, as `quorumkv serve` would give it.
  const first = cluster.nodes[0] as LocalNode;
  try {
    loadConfig(
      { ...args.serveFlags, nodeId: first.id, host: first.spec.host, port: String(first.spec.port), dataDir: first.spec.dataDir },
      { ...process.env, ...LOCAL_ADMIN_ENV, ...env },
    );
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`npm start: ${err.message}\n`);
    process.exit(2);
  }

  const stop = (why: string, exitCode: number): void => {
    if (stopping) {
      process.stdout.write(`(${why}: already stopping; a node still running at ${STOP_DEADLINE_MS / 1000} s is killed)\n`);
      return;
    }
    process.stdout.write(`\n${why}: stopping the nodes\n`);
    stopping = cluster.stopWithin(STOP_DEADLINE_MS).then((killed) => {
      removeState(stateFile);
      if (killed.length > 0) process.stdout.write(`killed after ${STOP_DEADLINE_MS / 1000} s: ${killed.join(', ')}\n`);
      process.stdout.write('all nodes stopped\n');
      process.exit(killed.length > 0 ? 1 : exitCode);
    });
  };
  // Ctrl-C arrives twice (from the terminal, and forwarded by npm): the first stops, the others say so.
  process.on('SIGINT', () => stop('Ctrl-C', 0));
  process.on('SIGTERM', () => stop('SIGTERM', 0));
  process.on('SIGHUP', () => stop('SIGHUP (the terminal closed)', 0));
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) stop(`the launcher's parent (pid ${parent}) is gone`, 1);
  }, PARENT_CHECK_MS).unref();

  try {
    await cluster.start();
  } catch (err) {
    if (stopping) return; // stopped during start-up: the stop reports
    process.stderr.write(`could not start the cluster: ${(err as Error).message}\n`);
    await cluster.stopWithin(STOP_DEADLINE_MS);
    process.exit(1);
  }
  if (stopping) return;
  writeState(stateFile, cluster, dataRoot);
  const second = cluster.nodes[1] ?? first;
  process.stdout.write(
    [
      '',
      `quorumkv: ${count} node${count === 1 ? '' : 's'} up, data in ${dataRoot}${args.serveArgs.length ? `, serve flags: ${args.serveArgs.join(' ')}` : ''}`,
      ...cluster.nodes.map((n) => `  ${n.id}  ${n.url}   (pid ${n.pid}; stop it alone: kill ${n.pid})`),
      '',
      `  export QUORUMKV_URL=${first.url}     # for the CLI: npx quorumkv status`,
      `  dashboard: ${first.url}/dashboard`,
      '',
      withToken
        ? 'admin routes (/admin/*): need Authorization: Bearer $QUORUMKV_ADMIN_TOKEN (the CLI sends it from that variable)'
        : 'admin routes (/admin/*): open to callers on this host (QUORUMKV_ADMIN_FROM_LOOPBACK=true, for local clusters only;\n' +
          '  set QUORUMKV_ADMIN_TOKEN before npm start to require a token instead, as a Kubernetes deployment does)',
      '',
      'try:',
      `  curl -X PUT -H 'Content-Type: application/json' -d '{"value":"v1"}' ${first.url}/kv/user:42`,
      `  curl ${second.url}/kv/user:42`,
      `  curl ${first.url}/cluster`,
      '',
      `Ctrl-C stops the cluster (launcher pid ${process.pid}).`,
      '',
    ].join('\n'),
  );
}

if (require.main === module) void main();
