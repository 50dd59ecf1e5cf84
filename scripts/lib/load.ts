// A bounded read/write load on a real cluster, and the checks a user would make of it: how many
// requests failed and why, second by second; whether a quorum read ever said "not found" for a key
// whose write had already been acknowledged, or returned an older version than an acknowledged
// one; and, afterwards, whether every acknowledged write can still be read (lost writes).
//
// Each op picks a random endpoint from `endpoints()` (the client Service's ready pods, as they are
// at that moment) and a random key, then PUTs {"value": ...} or GETs it at the default consistency
// (quorum). Keys are never deleted, so once a PUT of a key is acknowledged, a later 404 for it is
// always wrong. Versions (`<wallMs>.<counter>@<node>`) order by wallMs, then counter, then node id.
// Bounded in ops and in time: it stops by itself at the first of maxOps or maxDurationMs.

import { Agent, request } from 'undici';
import { compareVersions, parseVersion, type Version } from '../../src/core/hlc';

export interface LoadOptions {
  /** The URLs to send to, asked before every op (e.g. StatefulSetSim.readyEndpoints). */
  endpoints: () => string[];
  /** Ops in flight at once. */
  concurrency: number;
  /** Keys are `<keyPrefix><0..keySpace-1>`. */
  keySpace: number;
  /** Share of ops that are writes, 0..1. */
  writeRatio: number;
  maxOps: number;
  maxDurationMs: number;
  /** Size of each written value (a string), default 100. */
  valueBytes?: number;
  /** Per request, default 5000 (the node's own request timeout is 2 s). */
  requestTimeoutMs?: number;
  /** Default 'load-'. Use a new prefix per run on a cluster that keeps its data. */
  keyPrefix?: string;
  /** Seeds the choice of ops, keys and endpoints (default 1). */
  seed?: number;
}

export interface OpRecord {
  kind: 'put' | 'get';
  key: string;
  endpoint: string;
  /** Milliseconds since the load started (monotonic clock). */
  startMs: number;
  endMs: number;
  /** HTTP status; 0 when there was no reply. */
  status: number;
  /** Why it failed, when it did: `503 quorum_not_met`, `network ECONNREFUSED`, `timeout`, `no endpoint`. */
  failure?: string;
  /** The node's message for a failed request (its first 300 characters). */
  detail?: string;
  /** A PUT's acknowledged version, or the version a GET returned. */
  version?: string;
  /** The value written (PUT) or read (GET). */
  value?: unknown;
}

export interface ReadAnomaly {
  key: string;
  endpoint: string;
  getStartMs: number;
  /** The newest version acknowledged before the GET started, and when its PUT ended. */
  ackedVersion: string;
  ackedEndMs: number;
  /** What the GET returned: a version, or undefined for 404. */
  readVersion?: string;
}

export interface LoadReport {
  durationMs: number;
  ops: number;
  /** Why it ended; `running` in a report taken while it runs. */
  stoppedBecause: 'maxOps' | 'maxDuration' | 'stopped' | 'running';
  put: { ok: number; failed: number };
  /** `notFound`: 404 replies; legitimate for a key not yet written, and listed in falseNotFound when not. */
  get: { ok: number; notFound: number; failed: number };
  /** `put 503 quorum_not_met` → count. */
  failuresByReason: Record<string, number>;
  /** The first message the node gave for each failure reason, to tell what went wrong. */
  failureSamples: Record<string, string>;
  /** One bucket per second of the run (by op end), so failures can be lined up with a timeline. */
  perSecond: Array<{ second: number; putOk: number; putFailed: number; getOk: number; getFailed: number }>;
  latencyMs: { put: { p50: number; p99: number; max: number }; get: { p50: number; p99: number; max: number } };
  /** Keys with at least one acknowledged write. */
  ackedKeys: number;
  /** GETs that returned 404 although a PUT of the key had been acknowledged before the GET started. */
  falseNotFound: ReadAnomaly[];
  /** GETs that returned an older version than one acknowledged before the GET started. */
  staleReads: ReadAnomaly[];
}

export interface VerifyReport {
  checked: number;
  /** Keys whose newest acknowledged version cannot be read back (404 or an older version). */
  lost: Array<{ key: string; expected: string; got: string }>;
  /** Keys that could not be read at all (no quorum, network): neither lost nor confirmed. */
  unverified: Array<{ key: string; reason: string }>;
}

export interface LoadHandle {
  /** Resolves when the load stops by itself (maxOps or maxDurationMs). */
  readonly done: Promise<LoadReport>;
  /** Stops issuing ops, waits for those in flight, and reports. */
  stop(): Promise<LoadReport>;
  /** The ops so far. */
  records(): readonly OpRecord[];
  /** Milliseconds since the load started: mark a step's start and end for report(). */
  elapsedMs(): number;
  /** A report of the ops so far (or of those that started within `window`), while the load runs. */
  report(window?: { fromMs: number; toMs: number }): LoadReport;
  /** Reads back every acknowledged key through `endpoint` (after the load) and lists lost writes. */
  verify(
    endpoint: string,
    opts?: { consistency?: 'one' | 'quorum' | 'all'; concurrency?: number; timeoutMs?: number },
  ): Promise<VerifyReport>;
}

/** mulberry32: small, fast, good enough to pick keys and endpoints reproducibly. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Why a request got no reply: the error code undici or the OS gave, or `timeout`. */
function networkFailure(err: unknown, signal: AbortSignal): string {
  if (signal.aborted) return 'timeout';
  for (let e: unknown = err, depth = 0; e && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return `network ${code}`;
    e = (e as { cause?: unknown }).cause;
  }
  return `network ${err instanceof Error ? err.message : String(err)}`;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

interface Reply {
  status: number;
  failure?: string;
  detail?: string;
  // biome-ignore lint/suspicious/noExplicitAny: the node's JSON
  body?: any;
}

async function call(agent: Agent, method: 'GET' | 'PUT', url: string, timeoutMs: number, body?: string): Promise<Reply> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const res = await request(url, {
      dispatcher: agent,
      method,
      signal,
      ...(body === undefined ? {} : { body, headers: { 'content-type': 'application/json' } }),
    });
    const text = await res.body.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {}
    const ok = res.statusCode === 200 || (method === 'GET' && res.statusCode === 404);
    const error = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
    if (ok) return { status: res.statusCode, body: parsed };
    return {
      status: res.statusCode,
      body: parsed,
      failure: `${res.statusCode}${error?.code ? ` ${error.code}` : ''}`,
      detail: (error?.message ?? text).slice(0, 300),
    };
  } catch (err) {
    return { status: 0, failure: networkFailure(err, signal), detail: (err instanceof Error ? err.message : String(err)).slice(0, 300) };
  }
}

export function startLoad(opts: LoadOptions): LoadHandle {
  if (!(opts.concurrency >= 1 && opts.keySpace >= 1 && opts.maxOps >= 0 && opts.maxDurationMs >= 0)) {
    throw new Error('startLoad: concurrency and keySpace must be >= 1, maxOps and maxDurationMs >= 0');
  }
  if (!(opts.writeRatio >= 0 && opts.writeRatio <= 1)) throw new Error('startLoad: writeRatio must be within 0..1');
  const valueBytes = opts.valueBytes ?? 100;
  const timeoutMs = opts.requestTimeoutMs ?? 5000;
  const prefix = opts.keyPrefix ?? 'load-';
  const random = rng(opts.seed ?? 1);
  const agent = new Agent({ connections: opts.concurrency, keepAliveTimeout: 10_000, keepAliveMaxTimeout: 30_000 });
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const records: OpRecord[] = [];
  let issued = 0;
  let stopping = false;
  let stoppedBecause: LoadReport['stoppedBecause'] = 'running';
  let finished = false;

  const one = async (): Promise<void> => {
    const id = issued++;
    const kind: 'put' | 'get' = random() < opts.writeRatio ? 'put' : 'get';
    const key = `${prefix}${Math.floor(random() * opts.keySpace)}`;
    const endpoints = opts.endpoints();
    const startMs = now();
    if (endpoints.length === 0) {
      records.push({ kind, key, endpoint: '', startMs, endMs: startMs, status: 0, failure: 'no endpoint' });
      await new Promise((r) => setTimeout(r, 50)); // nothing to send to: do not spin
      return;
    }
    const endpoint = endpoints[Math.floor(random() * endpoints.length)] as string;
    const url = `${endpoint.replace(/\/+$/, '')}/kv/${encodeURIComponent(key)}`;
    if (kind === 'put') {
      const head = `${id}:`;
      const value = head + 'x'.repeat(Math.max(0, valueBytes - head.length));
      const r = await call(agent, 'PUT', url, timeoutMs, JSON.stringify({ value }));
      const rec: OpRecord = { kind, key, endpoint, startMs, endMs: now(), status: r.status, value };
      if (r.failure) {
        rec.failure = r.failure;
        if (r.detail) rec.detail = r.detail;
      } else if (typeof r.body?.version === 'string') rec.version = r.body.version;
      else rec.failure = '200 without a version';
      records.push(rec);
    } else {
      const r = await call(agent, 'GET', url, timeoutMs);
      const rec: OpRecord = { kind, key, endpoint, startMs, endMs: now(), status: r.status };
      if (r.failure) {
        rec.failure = r.failure;
        if (r.detail) rec.detail = r.detail;
      } else if (r.status === 200) {
        rec.version = r.body?.version;
        rec.value = r.body?.value;
      }
      records.push(rec);
    }
  };

  const worker = async (): Promise<void> => {
    for (;;) {
      if (stopping) return;
      if (issued >= opts.maxOps) {
        stoppedBecause = 'maxOps';
        return;
      }
      if (now() >= opts.maxDurationMs) {
        stoppedBecause = 'maxDuration';
        return;
      }
      await one();
    }
  };

  const workers = Promise.all(Array.from({ length: opts.concurrency }, () => worker())).then(() => {
    finished = true;
    if (stoppedBecause === 'running') stoppedBecause = 'stopped';
  });
  let report: Promise<LoadReport> | undefined;
  const finish = (): Promise<LoadReport> => {
    report ??= workers.then(async () => {
      const durationMs = now();
      await agent.close();
      return buildReport(records, durationMs, stoppedBecause);
    });
    return report;
  };
  const done = workers.then(() => finish());

  return {
    done,
    stop() {
      stopping = true;
      return finish();
    },
    records: () => records,
    elapsedMs: now,
    report: (window) => buildReport(records, now(), finished ? stoppedBecause : 'running', window),
    async verify(endpoint, vopts = {}) {
      const consistency = vopts.consistency ?? 'quorum';
      const newest = newestAcked(records);
      const verifier = new Agent({ connections: vopts.concurrency ?? 16, keepAliveTimeout: 10_000 });
      const out: VerifyReport = { checked: 0, lost: [], unverified: [] };
      const keys = [...newest.keys()].sort();
      let next = 0;
      try {
        await Promise.all(
          Array.from({ length: Math.min(vopts.concurrency ?? 16, keys.length) }, async () => {
            while (next < keys.length) {
              const key = keys[next++] as string;
              const expected = newest.get(key) as { version: Version; text: string };
              const url = `${endpoint.replace(/\/+$/, '')}/kv/${encodeURIComponent(key)}?consistency=${consistency}`;
              const r = await call(verifier, 'GET', url, vopts.timeoutMs ?? timeoutMs);
              out.checked++;
              if (r.failure) {
                out.unverified.push({ key, reason: r.failure });
              } else if (r.status === 404) {
                out.lost.push({ key, expected: expected.text, got: 'not found' });
              } else {
                const got = typeof r.body?.version === 'string' ? parseVersion(r.body.version) : undefined;
                if (!got || compareVersions(got, expected.version) < 0) {
                  out.lost.push({ key, expected: expected.text, got: String(r.body?.version) });
                }
              }
            }
          }),
        );
      } finally {
        await verifier.close();
      }
      out.lost.sort((a, b) => a.key.localeCompare(b.key));
      out.unverified.sort((a, b) => a.key.localeCompare(b.key));
      return out;
    },
  };
}

/** The newest acknowledged version of every key written. */
function newestAcked(records: readonly OpRecord[]): Map<string, { version: Version; text: string }> {
  const out = new Map<string, { version: Version; text: string }>();
  for (const r of records) {
    if (r.kind !== 'put' || r.failure || !r.version) continue;
    const v = parseVersion(r.version);
    if (!v) continue;
    const cur = out.get(r.key);
    if (!cur || compareVersions(v, cur.version) > 0) out.set(r.key, { version: v, text: r.version });
  }
  return out;
}

/**
 * The report of a load, with its read checks. With `window` (ms since the load started), only the
 * ops that started in it are counted and checked, but the checks still know every write
 * acknowledged before: a GET in step 2 that misses a write acknowledged in step 1 is caught.
 */
export function buildReport(
  records: readonly OpRecord[],
  durationMs: number,
  stoppedBecause: LoadReport['stoppedBecause'],
  window?: { fromMs: number; toMs: number },
): LoadReport {
  const fromMs = window?.fromMs ?? 0;
  const toMs = window?.toMs ?? Number.POSITIVE_INFINITY;
  const inWindow = (r: OpRecord) => r.startMs >= fromMs && r.startMs < toMs;
  const report: LoadReport = {
    durationMs: window ? Math.min(toMs, durationMs) - fromMs : durationMs,
    ops: 0,
    stoppedBecause,
    put: { ok: 0, failed: 0 },
    get: { ok: 0, notFound: 0, failed: 0 },
    failuresByReason: {},
    failureSamples: {},
    perSecond: [],
    latencyMs: { put: { p50: 0, p99: 0, max: 0 }, get: { p50: 0, p99: 0, max: 0 } },
    ackedKeys: 0,
    falseNotFound: [],
    staleReads: [],
  };
  // one bucket per second of the window, by the second (since the load started) an op ended in
  const firstSecond = Math.floor(fromMs / 1000);
  const lastSecond = Math.max(firstSecond, Math.ceil(Math.min(toMs, durationMs) / 1000) - 1);
  for (let s = firstSecond; s <= lastSecond; s++) report.perSecond.push({ second: s, putOk: 0, putFailed: 0, getOk: 0, getFailed: 0 });
  const bucketOf = (r: OpRecord) =>
    report.perSecond[
      Math.min(lastSecond, Math.max(firstSecond, Math.floor(r.endMs / 1000))) - firstSecond
    ] as LoadReport['perSecond'][number];
  const latency: Record<'put' | 'get', number[]> = { put: [], get: [] };
  // Every acknowledged write per key (in or before the window), by the time its PUT ended.
  const acked = new Map<string, Array<{ endMs: number; version: Version; text: string }>>();
  const keysAckedInWindow = new Set<string>();
  for (const r of records) {
    if (r.kind === 'put' && !r.failure && r.version) {
      const v = parseVersion(r.version);
      if (v) {
        const list = acked.get(r.key) ?? [];
        list.push({ endMs: r.endMs, version: v, text: r.version });
        acked.set(r.key, list);
        if (inWindow(r)) keysAckedInWindow.add(r.key);
      }
    }
    if (!inWindow(r)) continue;
    report.ops++;
    const bucket = bucketOf(r);
    if (r.failure) {
      report[r.kind].failed++;
      const reason = `${r.kind} ${r.failure}`;
      report.failuresByReason[reason] = (report.failuresByReason[reason] ?? 0) + 1;
      if (r.detail && report.failureSamples[reason] === undefined) report.failureSamples[reason] = `${r.endpoint}: ${r.detail}`;
      if (r.kind === 'put') bucket.putFailed++;
      else bucket.getFailed++;
      continue;
    }
    latency[r.kind].push(r.endMs - r.startMs);
    if (r.kind === 'put') {
      report.put.ok++;
      bucket.putOk++;
    } else {
      bucket.getOk++;
      if (r.status === 404) report.get.notFound++;
      else report.get.ok++;
    }
  }
  report.ackedKeys = keysAckedInWindow.size;
  for (const list of acked.values()) list.sort((a, b) => a.endMs - b.endMs);
  for (const r of records) {
    if (r.kind !== 'get' || r.failure || !inWindow(r)) continue;
    const list = acked.get(r.key);
    if (!list) continue;
    // the newest version among the writes acknowledged before this GET started
    let newest: { endMs: number; version: Version; text: string } | undefined;
    for (const w of list) {
      if (w.endMs >= r.startMs) break;
      if (!newest || compareVersions(w.version, newest.version) > 0) newest = w;
    }
    if (!newest) continue;
    const anomaly: ReadAnomaly = {
      key: r.key,
      endpoint: r.endpoint,
      getStartMs: r.startMs,
      ackedVersion: newest.text,
      ackedEndMs: newest.endMs,
    };
    if (r.status === 404) {
      report.falseNotFound.push(anomaly);
      continue;
    }
    const got = typeof r.version === 'string' ? parseVersion(r.version) : undefined;
    if (!got || compareVersions(got, newest.version) < 0) report.staleReads.push({ ...anomaly, readVersion: String(r.version) });
  }
  for (const kind of ['put', 'get'] as const) {
    const sorted = latency[kind].sort((a, b) => a - b);
    report.latencyMs[kind] = { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? 0 };
  }
  return report;
}

/** A few lines for a person: counts, failures by reason, the seconds with failures, the anomalies. */
export function formatLoadReport(r: LoadReport): string {
  const lines = [
    `${r.ops} ops in ${(r.durationMs / 1000).toFixed(1)} s${r.stoppedBecause === 'running' ? '' : ` (stopped: ${r.stoppedBecause})`}; ` +
      `put ${r.put.ok} ok / ${r.put.failed} failed; get ${r.get.ok} ok, ${r.get.notFound} not found / ${r.get.failed} failed; ` +
      `${r.ackedKeys} keys acknowledged`,
    `latency ms: put p50 ${r.latencyMs.put.p50.toFixed(1)} p99 ${r.latencyMs.put.p99.toFixed(1)} max ${r.latencyMs.put.max.toFixed(1)}; ` +
      `get p50 ${r.latencyMs.get.p50.toFixed(1)} p99 ${r.latencyMs.get.p99.toFixed(1)} max ${r.latencyMs.get.max.toFixed(1)}`,
    `false not-found: ${r.falseNotFound.length}; stale reads: ${r.staleReads.length}`,
  ];
  const reasons = Object.entries(r.failuresByReason).sort((a, b) => b[1] - a[1]);
  if (reasons.length > 0) lines.push(`failures: ${reasons.map(([k, n]) => `${k}: ${n}`).join(', ')}`);
  for (const [reason] of reasons) if (r.failureSamples[reason]) lines.push(`  e.g. ${reason}: ${r.failureSamples[reason]}`);
  const bad = r.perSecond.filter((b) => b.putFailed + b.getFailed > 0);
  if (bad.length > 0) {
    lines.push(`seconds with failures: ${bad.map((b) => `+${b.second}s put ${b.putFailed} get ${b.getFailed}`).join('; ')}`);
  }
  for (const a of r.falseNotFound.slice(0, 5)) {
    lines.push(
      `  false 404: ${a.key} via ${a.endpoint} at +${a.getStartMs.toFixed(0)} ms; ${a.ackedVersion} acked at +${a.ackedEndMs.toFixed(0)} ms`,
    );
  }
  for (const a of r.staleReads.slice(0, 5)) {
    lines.push(`  stale read: ${a.key} via ${a.endpoint} at +${a.getStartMs.toFixed(0)} ms: ${a.readVersion} < ${a.ackedVersion}`);
  }
  return lines.join('\n');
}
