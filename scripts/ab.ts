// `npm run bench:ab -- --base <git revision>`: one client's latency of this tree against another
// build of quorumkv, measured in the same minutes; with `--connections 64`, their rates under load.
//
// On a shared VM a lone write's p50 moves by two to four times within an hour, more than most
// changes to the request path are worth; a before/after of two separate runs measures the hour.
// So both builds run at once, each as a fresh 3-node cluster (N=3, W=2, R=2), beside the floor
// (scripts/lib/quorum-floor.ts), all warmed up at 64 connections; then short one-connection wrk
// phases alternate between them (the order flips every pair), writes, then reads, `--pairs` times.
// The machine's drift falls on both sides of each pair alike. Printed: each pair's p50s, and per
// mode the medians, the pairs this tree won and the median of the pair differences.
//
// With `--connections N` (more than 1) the phases are N connections spread over each cluster's
// members instead (the floor sits out: it serves one write at a time), and the figures are each
// phase's requests per second and its members' CPU time (user + system) per request.
//
// `--tree-env NAME=value[,NAME=value]` sets environment variables for this tree's nodes only: with
// `--base HEAD`, an A/B of a runtime setting on the same build.
//
// The base revision is checked out into a temporary git worktree (node_modules linked from this
// tree) and built there; the worktree is removed at the end. Every phase stops by itself.
//
//   node dist/scripts/ab.js --base <git revision> [--pairs 12] [--seconds 2] [--connections 1] [--tree-env NAME=value,...]

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { argReader } from './lib/args';
import { LocalCluster, repoRoot } from './lib/local-cluster';
import { sumCounters } from './lib/proc-stats';
import { FloorCluster } from './lib/quorum-floor';
import { median } from './lib/stats';
import { findWrk, runWrk, type WrkMode } from './lib/wrk';

const USAGE =
  'usage: node dist/scripts/ab.js --base <git revision> [--pairs 12] [--seconds 2] [--connections 1] [--tree-env NAME=value,...]';
const args = argReader(process.argv.slice(2));
const unknown = args.unknown(['base', 'pairs', 'seconds', 'connections', 'tree-env']);
const base = args.get('base');
if (unknown.length > 0 || base === undefined) {
  console.error(
    unknown.includes('--help')
      ? USAGE
      : `ab: ${base === undefined ? '--base is required' : `unknown option ${unknown.join(', ')}`}\n${USAGE}`,
  );
  process.exit(unknown.includes('--help') ? 0 : 2);
}
const PAIRS = Number(args.get('pairs') ?? '12');
const CONNECTIONS = Number(args.get('connections') ?? '1');
const SECONDS = Number(args.get('seconds') ?? (CONNECTIONS > 1 ? '5' : '2'));
const TREE_ENV = Object.fromEntries(
  (args.get('tree-env') ?? '')
    .split(',')
    .filter((kv) => kv.includes('='))
    .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
);
const KEYS = 10_000;
const VALUE_BYTES = 100;

/** `rev` checked out and built in a worktree of its own; returns its directory. */
function buildRevision(root: string, rev: string, into: string): string {
  const dir = path.join(into, 'base');
  execFileSync('git', ['-C', root, 'worktree', 'add', '--detach', dir, rev], { stdio: 'ignore' });
  symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: dir, stdio: 'inherit' });
  const cli = path.join(dir, 'dist', 'src', 'cli', 'main.js');
  if (!existsSync(cli)) throw new Error(`the build of ${rev} has no ${cli}`);
  return dir;
}

async function main(): Promise<void> {
  const wrk = findWrk();
  if (wrk === undefined) {
    console.error('ab: wrk is not installed (Debian package wrk)');
    process.exit(2);
  }
  const root = repoRoot();
  const work = mkdtempSync(path.join(os.tmpdir(), 'qkv-ab-'));
  let baseDir: string | undefined;
  const stops: Array<() => Promise<void>> = [];
  try {
    baseDir = buildRevision(root, base as string, work);
    const start = async (name: string, basePort: number, cli?: string, env?: Record<string, string>) => {
      const cluster = LocalCluster.create({
        host: '127.0.0.1',
        basePort,
        nodes: 3,
        dataRoot: path.join(work, name),
        args: ['--log-level', 'warn'],
        ...(cli ? { cli } : {}),
        ...(env ? { env } : {}),
      });
      stops.push(() => cluster.stopAll('SIGTERM'));
      await cluster.start();
      return { targets: cluster.nodes.map((n) => n.address), pids: cluster.nodes.map((n) => n.pid as number) };
    };
    const systems: Array<{ name: string; targets: string[]; pids: number[] }> = [
      { name: `base (${base})`, ...(await start('base', 18181, path.join(baseDir, 'dist', 'src', 'cli', 'main.js'))) },
      { name: 'this tree', ...(await start('tree', 18191, undefined, TREE_ENV)) },
    ];
    if (CONNECTIONS > 1) {
      await underLoad(wrk, systems);
      return;
    }
    mkdirSync(path.join(work, 'floor'));
    const floor = await FloorCluster.start(path.join(work, 'floor'), '127.0.0.1', 19281);
    stops.push(() => floor.stop());

    const load = (mode: WrkMode, targets: string[], connections: number, seconds: number) =>
      runWrk(wrk, { mode, targets, connections, seconds, keys: KEYS, valueBytes: VALUE_BYTES });
    for (const s of systems) {
      await load('qkv-put', s.targets, 64, 4);
      await load('qkv-get', s.targets, 64, 3);
    }
    await load('qkv-put', floor.targets.slice(0, 1), 1, 2);

    const rows: Record<'put' | 'get', Array<{ base: number; tree: number; floor: number }>> = { put: [], get: [] };
    for (let pair = 1; pair <= PAIRS; pair++) {
      for (const op of ['put', 'get'] as const) {
        const mode: WrkMode = op === 'put' ? 'qkv-put' : 'qkv-get';
        const p50 = async (targets: string[]) => (await load(mode, targets.slice(0, 1), 1, SECONDS)).p50Ms * 1000;
        const [first, second] = pair % 2 === 1 ? [0, 1] : [1, 0];
        const got: number[] = [];
        got[first] = await p50((systems[first] as (typeof systems)[0]).targets);
        got[second] = await p50((systems[second] as (typeof systems)[0]).targets);
        const row = { base: got[0] as number, tree: got[1] as number, floor: await p50(floor.targets) };
        rows[op].push(row);
        console.log(
          `pair ${pair} ${op === 'put' ? 'write' : 'read '} p50 us: base ${row.base.toFixed(0)}  this tree ${row.tree.toFixed(0)}  floor ${row.floor.toFixed(0)}`,
        );
      }
    }
    console.log(`\none connection, ${PAIRS} pairs of ${SECONDS} s phases, base ${base} against this tree:`);
    for (const op of ['put', 'get'] as const) {
      const r = rows[op];
      const won = r.filter((x) => x.tree < x.base).length;
      console.log(
        `${op === 'put' ? 'writes' : 'reads '}: p50 median ${median(r.map((x) => x.base)).toFixed(0)} -> ${median(r.map((x) => x.tree)).toFixed(0)} us ` +
          `(floor ${median(r.map((x) => x.floor)).toFixed(0)}); this tree faster in ${won} of ${r.length} pairs, ` +
          `median pair difference ${median(r.map((x) => x.tree - x.base)).toFixed(0)} us`,
      );
    }
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    if (baseDir !== undefined) execFileSync('git', ['-C', root, 'worktree', 'remove', '--force', baseDir], { stdio: 'ignore' });
    rmSync(work, { recursive: true, force: true });
  }
}

/** Pairs of N-connection phases: each build's rate and CPU per request, alternating. */
async function underLoad(wrk: string, systems: Array<{ targets: string[]; pids: number[] }>): Promise<void> {
  const rows: Record<'put' | 'get', Array<{ base: number; tree: number; baseCpu: number; treeCpu: number }>> = { put: [], get: [] };
  const phase = async (mode: WrkMode, s: { targets: string[]; pids: number[] }, seconds: number) => {
    const before = sumCounters(s.pids);
    const r = await runWrk(wrk, { mode, targets: s.targets, connections: CONNECTIONS, seconds, keys: KEYS, valueBytes: VALUE_BYTES });
    const requests = r.opsPerSec * seconds;
    return { rate: r.opsPerSec, cpuUs: ((sumCounters(s.pids).cpuS - before.cpuS) * 1e6) / requests };
  };
  for (const s of systems) {
    await phase('qkv-put', s, 5);
    await phase('qkv-get', s, 3);
  }
  for (let pair = 1; pair <= PAIRS; pair++) {
    for (const op of ['put', 'get'] as const) {
      const mode: WrkMode = op === 'put' ? 'qkv-put' : 'qkv-get';
      const [first, second] = pair % 2 === 1 ? [0, 1] : [1, 0];
      const got: Array<{ rate: number; cpuUs: number }> = [];
      got[first] = await phase(mode, systems[first] as (typeof systems)[0], SECONDS);
      got[second] = await phase(mode, systems[second] as (typeof systems)[0], SECONDS);
      const [b, t] = got as [{ rate: number; cpuUs: number }, { rate: number; cpuUs: number }];
      rows[op].push({ base: b.rate, tree: t.rate, baseCpu: b.cpuUs, treeCpu: t.cpuUs });
      console.log(
        `pair ${pair} ${op === 'put' ? 'writes' : 'reads '}/s: base ${b.rate.toFixed(0)} (${b.cpuUs.toFixed(0)} us CPU each)  ` +
          `this tree ${t.rate.toFixed(0)} (${t.cpuUs.toFixed(0)} us)`,
      );
    }
  }
  console.log(`\n${CONNECTIONS} connections, ${PAIRS} pairs of ${SECONDS} s phases, base ${base} against this tree:`);
  for (const op of ['put', 'get'] as const) {
    const r = rows[op];
    const won = r.filter((x) => x.tree > x.base).length;
    console.log(
      `${op === 'put' ? 'writes' : 'reads '}: ${median(r.map((x) => x.base)).toFixed(0)} -> ${median(r.map((x) => x.tree)).toFixed(0)}/s, ` +
        `CPU per request ${median(r.map((x) => x.baseCpu)).toFixed(0)} -> ${median(r.map((x) => x.treeCpu)).toFixed(0)} us; ` +
        `this tree faster in ${won} of ${r.length} pairs, median pair ratio ${median(r.map((x) => x.tree / x.base)).toFixed(3)}`,
    );
  }
}

main().catch((err: unknown) => {
  console.error(`ab: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
