// The limits checked against each other (core/defaults.ts), with real processes: at a
// --max-value-bytes far below the 512 KiB internal messages are cut at, values near that limit
// still travel in batches of several through every internal path: hints, anti-entropy, a join's
// streamed pages. A peer that accepted only --max-value-bytes plus its overhead would refuse every
// such batch on every retry, and each of the three would stall for ever.

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { cliPath, type LocalNode } from '../../scripts/lib/local-cluster';
import { LIMITS } from '../../src/core/defaults';
import { cleanupClusters, FAST_ARGS, logsOf, startCluster } from '../helpers/cluster';
import { eventually } from '../helpers/eventually';
import { get, http, put } from '../helpers/http';
import { replicaRecord } from '../helpers/peer';

const exec = promisify(execFile);
const scratch: string[] = [];
afterEach(async () => {
  await cleanupClusters();
  for (const d of scratch.splice(0)) rmSync(d, { recursive: true, force: true });
});

const MAX_VALUE_BYTES = 100_000;
const VALUE = 'v'.repeat(90_000);
const KEYS = 20;
/** More hints than one batch holds (8 x 90 KB > 512 KiB), fewer than the keys: anti-entropy brings the rest. */
const HINTS_KEPT = 8;

async function metric(n: LocalNode, name: string): Promise<number> {
  const text = await fetch(`${n.url}/metrics`).then((r) => r.text());
  return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)$`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);
}

/** Keys `n` does not hold, straight from its store. */
async function lacking(n: LocalNode, keys: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const k of keys) if ((await replicaRecord(n.address, k))?.value !== VALUE) out.push(k);
  return out;
}

test('at --max-value-bytes 100000, 90 KB values travel in batches through hints, anti-entropy and a join', async () => {
  expect(HINTS_KEPT * VALUE.length).toBeGreaterThan(LIMITS.maxBatchBytes);
  const c = await startCluster('127.30.1', {
    args: [
      ...FAST_ARGS,
      '--max-value-bytes',
      String(MAX_VALUE_BYTES),
      '--max-hints-per-node',
      String(HINTS_KEPT),
      '--read-repair',
      'false',
    ],
  });
  const [n1, n2, n3] = c.nodes as [LocalNode, LocalNode, LocalNode];
  const keys = Array.from({ length: KEYS }, (_, i) => `big-${i}`);

  // n3 misses every write; n1 coordinates them all and keeps the first 8 as hints for it
  await n3.kill('SIGKILL');
  for (const k of keys) expect((await put(n1.url, k, VALUE)).status).toBe(200);
  expect(await metric(n1, 'quorumkv_hints_pending')).toBe(HINTS_KEPT);

  // hints: delivered in batches of several values once n3 is back
  await n3.start();
  await eventually(async () => expect(await metric(n1, 'quorumkv_hints_pending')).toBe(0), { timeoutMs: 30_000, intervalMs: 200 });
  expect(await metric(n1, 'quorumkv_hints_delivered_total')).toBe(HINTS_KEPT);
  expect(await lacking(n3, keys)).toHaveLength(KEYS - HINTS_KEPT);

  // anti-entropy: a repair pass on n3 brings the 12 values the hints did not carry (over 1 MB)
  const { stdout } = await exec(process.execPath, [cliPath(), 'repair', '--url', n3.url], { timeout: 60_000 });
  const lines = stdout.trim().split('\n');
  expect(lines.at(-2)).toMatch(/^repair: 100%, ranges (\d+)\/\1, /);
  expect(lines.at(-1)).toBe('repair finished');
  expect(await lacking(n3, keys)).toEqual([]);

  // a join: n4 streams its ranges in pages cut at 512 KiB
  const dataRoot = mkdtempSync(path.join(tmpdir(), 'qkv-limits-'));
  scratch.push(dataRoot);
  const n4 = c.addNode('127.30.1.4', dataRoot);
  await n4.start();
  await c.waitFormed(60_000);
  const move = (await http('GET', `${n4.url}/admin/move`)).body;
  expect(move).toMatchObject({ status: 'normal', move: { kind: 'join', phase: 'done' } });
  const owned: string[] = [];
  for (const k of keys) {
    const r = await get(n4.url, k);
    expect({ key: k, status: r.status, same: r.body.value === VALUE }).toEqual({ key: k, status: 200, same: true });
    if ((r.body.replicas as string[]).includes('n4')) owned.push(k);
  }
  expect(owned.length * VALUE.length).toBeGreaterThan(LIMITS.maxBatchBytes);
  const missing = await lacking(n4, owned);
  if (missing.length > 0) console.log(logsOf(c));
  expect(missing).toEqual([]);
  console.log(
    `90 KB values at --max-value-bytes ${MAX_VALUE_BYTES}: ${HINTS_KEPT} by hints, ${KEYS - HINTS_KEPT} by anti-entropy, ` +
      `${move.move.records_streamed} records (${move.move.bytes_streamed} bytes) streamed to a joining node`,
  );
  void n2;
}, 120_000);
