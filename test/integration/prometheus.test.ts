// /metrics against the real Prometheus tools (Debian's prometheus package): promtool's linter
// passes on every node's output; a Prometheus server scrapes a 3-node cluster and answers a
// request-rate-by-node query with one series per node; every PromQL expression of the shipped
// Grafana dashboard (k8s/overlays/prod/grafana-dashboard.json) parses and names only metrics the
// nodes really export.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type LocalNode, repoRoot } from '../../scripts/lib/local-cluster';
import { cleanupClusters, logsOf, startCluster } from '../helpers/cluster';
import { eventually } from '../helpers/eventually';
import { http, put, type Reply } from '../helpers/http';

const PROMETHEUS_HOST = '127.61.2.100';
const PROMETHEUS_PORT = 19190; // not 9090: where the Debian package's own service listens on a machine with systemd
const PROMETHEUS = `http://${PROMETHEUS_HOST}:${PROMETHEUS_PORT}`;

let prometheus: ChildProcess | undefined;
const scratch: string[] = [];
afterEach(async () => {
  if (prometheus && prometheus.exitCode === null) {
    const exited = new Promise((r) => prometheus?.once('exit', r));
    prometheus.kill('SIGKILL');
    await exited;
  }
  prometheus = undefined;
  await cleanupClusters();
  for (const d of scratch.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Runs a tool with `input` on stdin; resolves with its exit code and output (bounded in time). */
function run(cmd: string, args: string[], input: string, timeoutMs = 15_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs });
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.stderr.on('data', (d) => {
      out += d;
    });
    p.on('error', (err) => reject(new Error(`${cmd}: ${err.message} (Debian: apt-get install -y prometheus)`)));
    p.on('close', (code) => resolve({ code, out }));
    p.stdin.end(input);
  });
}

/**
 * The metric names a /metrics text declares (# TYPE, with a histogram's _bucket, _sum and _count)
 * or holds samples of: a labelled family nothing has counted yet is declared, with no sample.
 */
function exportedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const declared = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)/.exec(line);
    if (declared) {
      const [, name, type] = declared as unknown as [string, string, string];
      names.add(name);
      if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (sample) names.add(sample[1] as string);
  }
  return names;
}

/** The dashboard's PromQL, with Grafana's variables replaced by what a query needs to run. */
function dashboardExpressions(): Array<{ panel: string; expr: string }> {
  const file = path.join(repoRoot(), 'k8s', 'overlays', 'prod', 'grafana-dashboard.json');
  const dashboard = JSON.parse(readFileSync(file, 'utf8')) as { panels: Array<{ title: string; targets?: Array<{ expr: string }> }> };
  return dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
}

const PROMQL_WORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
]);

/** Metric names in a PromQL expression: identifiers that are not functions, keywords or label names. */
function metricsIn(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // strings
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '') // label lists
    .replace(/\[[^\]]*\]/g, ''); // ranges
  const names = new Set<string>();
  for (const m of bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const word = m[0];
    const next = bare
      .slice((m.index ?? 0) + word.length)
      .trimStart()
      .charAt(0);
    if (next !== '(' && !PROMQL_WORDS.has(word.toLowerCase())) names.add(word);
  }
  return [...names];
}

function query(expr: string): Promise<Reply> {
  return http('GET', `${PROMETHEUS}/api/v1/query?query=${encodeURIComponent(expr)}`, { timeoutMs: 5_000 });
}

test('promtool passes every node, Prometheus sees request rates of three nodes, and the Grafana dashboard names only exported metrics', async () => {
  const c = await startCluster('127.61.2');
  const nodes = c.nodes as LocalNode[];

  // traffic through every node, kept up while Prometheus scrapes: paced, so that it lasts until the
  // rates are read however fast one client's writes are (bounded: at most 6,000 writes, ~30 s or
  // more); only load: what the rate counts is every reply, whatever its status
  let writing = true;
  const traffic = (async () => {
    for (let i = 0; writing && i < 6000; i++) {
      await put((nodes[i % 3] as LocalNode).url, `prom-${i % 200}`, { i }).catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();

  try {
    // ---- promtool's linter on each node's /metrics ------------------------------------------------
    await eventually(async () => {
      const text = (await http('GET', `${(nodes[2] as LocalNode).url}/metrics`)).text;
      expect(text).toMatch(/quorumkv_requests_total\{op="put",code="200"\}/);
    });
    const texts: string[] = [];
    for (const n of nodes) {
      const res = await http('GET', `${n.url}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      const lint = await run('promtool', ['check', 'metrics'], res.text);
      expect({ node: n.id, code: lint.code, problems: lint.out.trim() }).toEqual({ node: n.id, code: 0, problems: '' });
      texts.push(res.text);
    }
    const exported = exportedNames(texts.join('\n'));
    // today's families, and prom-client's default process and Node.js metrics
    for (const name of [
      'quorumkv_requests_total',
      'quorumkv_request_duration_seconds_bucket',
      'quorumkv_keys',
      'process_cpu_seconds_total',
      'nodejs_eventloop_lag_p99_seconds',
      'nodejs_gc_duration_seconds_sum',
    ]) {
      expect([name, exported.has(name)]).toEqual([name, true]);
    }

    // ---- a real Prometheus scrapes the three nodes -----------------------------------------------
    const dir = mkdtempSync(path.join(tmpdir(), 'qkv-prometheus-'));
    scratch.push(dir);
    const config = [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      'scrape_configs:',
      '  - job_name: quorumkv',
      '    static_configs:',
      `      - targets: [${nodes.map((n) => `"${n.address}"`).join(', ')}]`,
    ].join('\n');
    writeFileSync(path.join(dir, 'prometheus.yml'), `${config}\n`);
    const check = await run('promtool', ['check', 'config', path.join(dir, 'prometheus.yml')], '');
    expect({ code: check.code, out: check.out }).toMatchObject({ code: 0 });
    const log: string[] = [];
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${path.join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=${PROMETHEUS_HOST}:${PROMETHEUS_PORT}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    prometheus.stderr?.on('data', (d) => log.push(String(d)));
    prometheus.on('error', (err) => log.push(`prometheus: ${err.message} (Debian: apt-get install -y prometheus)`));

    const rate = 'sum by (instance) (rate(quorumkv_requests_total{job="quorumkv"}[10s]))';
    const series = await eventually(
      async () => {
        const r = await query(rate);
        expect(r.body?.status).toBe('success');
        const result: Array<{ metric: Record<string, string>; value: [number, string] }> = r.body.data?.result ?? [];
        expect(result.map((s) => s.metric.instance).sort()).toEqual(nodes.map((n) => n.address).sort());
        for (const s of result) expect(Number(s.value[1])).toBeGreaterThan(0);
        return result;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nprometheus log:\n${log.join('').slice(-3000)}`);
    });

    // ---- the Grafana dashboard's expressions -----------------------------------------------------
    const exprs = dashboardExpressions();
    expect(exprs.length).toBeGreaterThan(10);
    const unknown: string[] = [];
    const refused: string[] = [];
    for (const { panel, expr } of exprs) {
      const names = metricsIn(expr);
      if (names.length === 0) unknown.push(`${panel}: no metric found in ${expr}`);
      for (const name of names) if (!exported.has(name)) unknown.push(`${panel}: ${name}`);
      const runnable = expr.replaceAll('$__rate_interval', '10s').replaceAll('$job', '.*');
      const r = await query(runnable);
      if (r.body?.status !== 'success') refused.push(`${panel}: ${r.body?.error ?? r.status} in ${runnable}`);
    }
    expect(unknown).toEqual([]);
    expect(refused).toEqual([]);
    console.log(
      `prometheus: ${series.map((s) => `${s.metric.instance} ${Number(s.value[1]).toFixed(1)}/s`).join(', ')}; ` +
        `${exprs.length} dashboard expressions checked, ${exported.size} metric names exported`,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${logsOf(c)}`);
  } finally {
    writing = false;
    await traffic;
  }
}, 90_000);
