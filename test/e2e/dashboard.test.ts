/// <reference lib="dom" />
// The dashboard in a real Chromium (Debian's chromium, driven by playwright-core): the page a node
// serves at /dashboard loads without a console error on a 3-node cluster, draws the ring and the
// members, shows a killed node suspect and then down, and follows a fourth node's join from in
// progress to done. Screenshots of each step are kept in .tmp/e2e/ (gitignored).

import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { type LocalCluster, type LocalNode, repoRoot } from '../../scripts/lib/local-cluster';
import { cleanupClusters, FAST_ARGS, logsOf, startCluster } from '../helpers/cluster';
import { mapLimit } from '../helpers/eventually';
import { http, put } from '../helpers/http';

const CHROMIUM = process.env.QUORUMKV_CHROMIUM ?? '/usr/bin/chromium';
/** The flags TOOLCHAIN.md found to work headless on these machines. */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];
const SHOTS = path.join(repoRoot(), '.tmp', 'e2e');
/**
 * The failure detector of these nodes: heartbeats every 100 ms (FAST_ARGS) and a conviction at
 * phi 12, so a dead member is suspect from phi 6 on (about 1.4 s after its last heartbeat) and
 * down from phi 12 (about 2.8 s): a suspect phase longer than two polls of the page (500 ms).
 */
const PHI_CONVICT = 12;
const DETECTOR_MS = 10_000; // the detector's ~3 s, with room for a busy machine

let browser: Browser | undefined;
const problems: string[] = [];

afterEach(async () => {
  await browser?.close();
  browser = undefined;
  await cleanupClusters();
});

async function openDashboard(node: LocalNode): Promise<Page> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set QUORUMKV_CHROMIUM)`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  const res = await page.goto(`${node.url}/dashboard`, { timeout: 15_000 });
  expect(res?.status()).toBe(200);
  return page;
}

async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `dashboard-${name}.png`), fullPage: true });
}

/** What the page shows for a member: its row's liveness and status. */
function memberRow(page: Page, id: string): Promise<{ state: string; status: string } | null> {
  return page.evaluate((member) => {
    const row = document.querySelector(`#members tr[data-member="${member}"]`) as HTMLElement | null;
    return row ? { state: row.dataset.state ?? '', status: row.dataset.status ?? '' } : null;
  }, id);
}

/** The page's log of changes it saw for a member, oldest first: "state:suspect", "status:joining", ... */
function changesOf(page: Page, id: string): Promise<string[]> {
  return page.evaluate(
    (member) =>
      [...document.querySelectorAll(`#events li[data-member="${member}"]`)]
        .map((li) => `${(li as HTMLElement).dataset.field}:${(li as HTMLElement).dataset.to}`)
        .reverse(),
    id,
  );
}

async function writeKeys(c: LocalCluster, count: number, prefix: string): Promise<void> {
  await mapLimit(
    Array.from({ length: count }, (_, i) => i),
    16,
    async (i) => {
      const r = await put((c.nodes[i % 3] as LocalNode).url, `${prefix}-${i}`, { i });
      expect(r.status).toBe(200);
    },
  );
}

test('the dashboard shows the cluster, a killed node going suspect then down, and a join from in progress to done', async () => {
  const c = await startCluster('127.61.1', { args: [...FAST_ARGS, '--phi-convict-threshold', String(PHI_CONVICT)] });
  const [n1, n2] = c.nodes as [LocalNode, LocalNode, LocalNode];
  await writeKeys(c, 200, 'e2e');
  const page = await openDashboard(n1);
  try {
    // ---- the cluster as it is: three members alive, the ring, the keys, the plots ----------------
    await page.waitForFunction(
      () => document.querySelectorAll('#members tr[data-state="alive"][data-status="normal"]').length === 3,
      null,
      {
        timeout: 15_000,
      },
    );
    const owners = await page.$$eval('#ring path[data-owner]', (ps) => ps.map((p) => p.getAttribute('data-owner')));
    expect(new Set(owners)).toEqual(new Set(['n1', 'n2', 'n3']));
    // each member owns its vnodes' ranges: 64 tokens each by default
    for (const id of ['n1', 'n2', 'n3']) expect(owners.filter((o) => o === id).length).toBeGreaterThanOrEqual(32);
    // the writes show in the plots of the nodes that coordinated them, and the keys in the table
    await page.waitForFunction(() => document.querySelectorAll('.node svg[data-plot="throughput"] polyline.writes').length === 3, null, {
      timeout: 15_000,
    });
    const keys = await page.$$eval('#members tbody tr', (rows) => rows.map((r) => Number(r.children[7]?.textContent?.replace(/,/g, ''))));
    expect(keys.every((k) => k > 0 && k <= 200)).toBe(true);
    await shot(page, '1-formed');
    // what the page polls refuses a bad parameter with a JSON error
    const bad = await http('GET', `${n1.url}/dashboard/state?since=yesterday`);
    expect([bad.status, bad.body?.error?.code]).toEqual([400, 'invalid_parameter']);

    // ---- kill -9 a node: the page shows it suspect, then down --------------------------------------
    await n2.kill('SIGKILL');
    await page.waitForSelector('#events li[data-member="n2"][data-field="state"][data-to="suspect"]', { timeout: DETECTOR_MS });
    await shot(page, '2-suspect');
    await page.waitForSelector('#events li[data-member="n2"][data-field="state"][data-to="down"]', { timeout: DETECTOR_MS });
    expect(await changesOf(page, 'n2')).toEqual(['state:suspect', 'state:down']);
    expect(await memberRow(page, 'n2')).toEqual({ state: 'down', status: 'normal' });
    expect(await page.textContent('[data-node="n2"]')).toContain('figures unavailable');
    await shot(page, '3-down');

    // ---- back, then a fourth node joins: shown in progress, then done ------------------------------
    await n2.start();
    await page.waitForSelector('#events li[data-member="n2"][data-field="state"][data-to="alive"]', { timeout: DETECTOR_MS });
    await c.waitFormed(30_000);
    // it streams in the keys written above; the join stays in progress at least one request
    // deadline (its settle phase), longer than two polls of the page
    const n4 = c.addNode('127.61.1.4', path.dirname(n2.spec.dataDir));
    await n4.start();
    const inProgress = await page.waitForSelector('[data-move="n4"][data-kind="join"][data-done="false"]', { timeout: 30_000 });
    const shown = await inProgress.evaluate((e) => ({
      phase: (e as HTMLElement).dataset.phase,
      progress: Number(e.querySelector('progress')?.getAttribute('value')),
    }));
    expect(shown.progress).toBeLessThan(1);
    await shot(page, '4-joining');
    await page.waitForSelector('[data-move="n4"][data-kind="join"][data-phase="done"]', { timeout: 60_000 });
    expect(Number(await page.getAttribute('[data-move="n4"] progress', 'value'))).toBe(1);
    expect(await page.textContent('[data-move="n4"]')).toMatch(/ [1-9][0-9,]* records/); // the keys it took over
    await page.waitForFunction(
      () => document.querySelectorAll('#members tr[data-state="alive"][data-status="normal"]').length === 4,
      null,
      {
        timeout: 30_000,
      },
    );
    const n4Changes = await changesOf(page, 'n4');
    expect(n4Changes[0]).toBe('status:joining'); // first seen joining ...
    expect(n4Changes).toContain('status:normal'); // ... then normal
    expect(await page.$$eval('#ring path[data-owner="n4"]', (ps) => ps.length)).toBeGreaterThanOrEqual(32);
    await shot(page, '5-joined');
    console.log(
      `dashboard: n2 ${JSON.stringify(await changesOf(page, 'n2'))}; n4 ${JSON.stringify(n4Changes)}, first seen ${JSON.stringify(shown)}; screenshots in ${SHOTS}`,
    );
  } catch (err) {
    await shot(page, 'failure').catch(() => {});
    throw new Error(`${(err as Error).message}\n${logsOf(c)}`);
  }
  expect(problems).toEqual([]);
}, 120_000);
