// `npm run profile`: where a node's CPU goes under load. Starts a fresh 3-node cluster whose nodes
// run with V8's sampling profiler (--cpu-prof), drives it with wrk (64 connections spread over the
// nodes, 100-byte values over 10,000 keys) for one phase, writes or reads, stops the nodes cleanly
// so the profiles are written, and prints the functions with the most self time on the first
// node (a coordinator and a replica, like every node here), summed by function and location.
//
//   node dist/scripts/profile.js [--phase write|read] [--seconds 10] [--top 10]

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { argReader } from './lib/args';
import { LocalCluster, repoRoot } from './lib/local-cluster';
import { findWrk, runWrk } from './lib/wrk';

const args = argReader(process.argv);
const option = (name: string, fallback: string): string => args.get(name) ?? fallback;

const PHASE = option('phase', 'write');
const SECONDS = Number(option('seconds', '10'));
const TOP = Number(option('top', '10'));

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
  timeDeltas: number[];
}

/** Self time per function (name and location), as a share of all samples. */
export function selfTimes(profile: CpuProfile): Array<{ name: string; share: number; ms: number }> {
  const frameOf = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const byName = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const f = frameOf.get(id);
    const dt = profile.timeDeltas[i] ?? 0;
    if (!f || f.functionName === '(idle)') return; // shares of the time the node was busy
    total += dt;
    const root = repoRoot();
    const where = f.url === '' ? '' : ` ${f.url.replace(`file://${root}/`, '').replace(/^node:/, 'node:')}:${f.lineNumber + 1}`;
    const name = `${f.functionName || '(anonymous)'}${where}`;
    byName.set(name, (byName.get(name) ?? 0) + dt);
  });
  return [...byName].map(([name, us]) => ({ name, share: us / total, ms: us / 1000 })).sort((a, b) => b.share - a.share);
}

async function main(): Promise<void> {
  const wrk = findWrk();
  if (!wrk) {
    console.error('npm run profile needs wrk (Debian: apt-get install wrk)');
    process.exit(2);
  }
  const dataRoot = mkdtempSync(path.join(os.tmpdir(), 'qkv-profile-'));
  const profDir = path.join(dataRoot, 'profiles');
  const cluster = LocalCluster.create({
    host: '127.0.0.1',
    basePort: 18181,
    nodes: 3,
    dataRoot,
    args: ['--log-level', 'warn'],
    nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`],
  });
  try {
    await cluster.start();
    const targets = cluster.nodes.map((n) => n.address);
    const load = (mode: 'qkv-put' | 'qkv-get', seconds: number) =>
      runWrk(wrk, { mode, targets, connections: 64, seconds, keys: 10_000, valueBytes: 100 });
    if (PHASE === 'read') await load('qkv-put', 15); // most keys written
    const r = await load(PHASE === 'read' ? 'qkv-get' : 'qkv-put', SECONDS);
    console.log(`${PHASE}s: ${r.opsPerSec.toFixed(0)}/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms`);
    const first = cluster.nodes[0]?.pid;
    await cluster.stopAll('SIGTERM');
    const file = readdirSync(profDir).find((f) => f.includes(`.${first}.`));
    if (!file) throw new Error(`no profile of pid ${first} in ${profDir}`);
    const times = selfTimes(JSON.parse(readFileSync(path.join(profDir, file), 'utf8')) as CpuProfile);
    console.log(`\ntop ${TOP} self time, node n1, share of its busy time (the whole run, start-up included):`);
    console.log('| share | function |\n|---:|---|');
    for (const t of times.slice(0, TOP)) console.log(`| ${(t.share * 100).toFixed(1)}% | \`${t.name}\` |`);
  } finally {
    await cluster.stopAll('SIGKILL');
    rmSync(dataRoot, { recursive: true, force: true });
  }
}

if (require.main === module) {
  void main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
