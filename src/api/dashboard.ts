// The dashboard every node serves at GET /dashboard: one HTML page, one script, one stylesheet
// (src/api/dashboard/, copied next to this file by the build), no build step, no CDN, nothing
// fetched from outside the node. The page polls GET /dashboard/state twice a second; that JSON is
// this node's view of the cluster (members, failure detector, ring) plus every other member's own
// figures, which this node asks each of them for (GET /dashboard/node, one deadline per call), so
// the page needs to reach only the node that served it (a port-forward to one pod is enough).
//
// Throughput and p99 plots: each node keeps the last SAMPLES_KEPT seconds as per-second samples,
// cut every second from the same counter and histogram /metrics exports (no extra work per
// request), in a ring buffer of fixed size. Kept on the node rather than accumulated by the page,
// so a page opened now shows the last minutes at once, and every page shows the same figures.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Express, Request, Response } from 'express';
import { histogramQuantile } from '../core/quantile';
import type { Counter, Histogram } from '../metrics';
import type { Node } from '../node/node';
import { sendError } from './errors';
import { moveCounts } from './move-json';

/** Seconds of per-second samples each node keeps (5 minutes). */
export const SAMPLES_KEPT = 300;
/** How often the page asks for /dashboard/state: under the failure detector's suspect phase. */
export const POLL_MS = 500;
/** Deadline of one call to another member's /dashboard/node. */
const PEER_DEADLINE_MS = 1_000;
/** Pages this node answers at once; more get a 503 (each answer asks every member). */
const MAX_CONCURRENT_STATES = 16;

/** One second of client requests coordinated by a node. */
export interface Sample {
  /** Unix time in seconds at the end of the second. */
  t: number;
  reads: number;
  writes: number;
  /** Replies with a 5xx status (unavailable, quorum not met, overloaded). */
  errors: number;
  readP99Ms: number | null;
  writeP99Ms: number | null;
}

/** A ring buffer of the last `capacity` samples, oldest first. */
export class SampleRing {
  private readonly buf: Array<Sample | undefined>;
  private next = 0;
  private size = 0;

  constructor(readonly capacity: number) {
    this.buf = new Array(capacity);
  }

  push(s: Sample): void {
    this.buf[this.next] = s;
    this.next = (this.next + 1) % this.capacity;
    if (this.size < this.capacity) this.size++;
  }

  /** Samples newer than `sinceS` (unix seconds), oldest first. */
  since(sinceS: number): Sample[] {
    const out: Sample[] = [];
    for (let i = 0; i < this.size; i++) {
      const s = this.buf[(this.next - this.size + i + this.capacity) % this.capacity] as Sample;
      if (s.t > sinceS) out.push(s);
    }
    return out;
  }
}

const READ_OPS = new Set(['get', 'head']);
const WRITE_OPS = new Set(['put', 'delete']);

interface Totals {
  reads: number;
  writes: number;
  errors: number;
  readBuckets: { bounds: number[]; counts: number[] };
  writeBuckets: { bounds: number[]; counts: number[] };
}

async function totals(requests: Counter, latency: Histogram): Promise<Totals> {
  const t: Totals = {
    reads: 0,
    writes: 0,
    errors: 0,
    readBuckets: await latency.buckets((l) => READ_OPS.has(l.op ?? '')),
    writeBuckets: await latency.buckets((l) => WRITE_OPS.has(l.op ?? '')),
  };
  for (const v of (await requests.family.get()).values) {
    const op = String(v.labels.op);
    if (READ_OPS.has(op)) t.reads += v.value;
    else if (WRITE_OPS.has(op)) t.writes += v.value;
    if (String(v.labels.code).startsWith('5')) t.errors += v.value;
  }
  return t;
}

/** p99 in ms of what was observed between two cumulative snapshots of the same buckets. */
function p99Between(before: Totals['readBuckets'], after: Totals['readBuckets']): number | null {
  if (after.bounds.length === 0) return null;
  const delta = after.counts.map((c, i) => c - (before.bounds.length === after.bounds.length ? (before.counts[i] as number) : 0));
  const q = histogramQuantile(0.99, after.bounds, delta);
  return q === undefined ? null : Number((q * 1000).toFixed(3));
}

/** Cuts one sample a second from the request counter and latency histogram. */
export class Sampler {
  readonly ring = new SampleRing(SAMPLES_KEPT);
  private last: Totals | undefined;
  private busy = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly requests: Counter,
    private readonly latency: Histogram,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => void this.tick(), 1_000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  async tick(nowMs = Date.now()): Promise<void> {
    if (this.busy) return; // a slow scrape of the registry: skip a second rather than pile up
    this.busy = true;
    try {
      const now = await totals(this.requests, this.latency);
      const before = this.last;
      this.last = now;
      if (before === undefined) return;
      this.ring.push({
        t: Math.round(nowMs / 1000),
        reads: now.reads - before.reads,
        writes: now.writes - before.writes,
        errors: now.errors - before.errors,
        readP99Ms: p99Between(before.readBuckets, now.readBuckets),
        writeP99Ms: p99Between(before.writeBuckets, now.writeBuckets),
      });
    } finally {
      this.busy = false;
    }
  }
}

/** Ranges of the ring as arcs: [lo, hi, index of the primary in `owners`, 1 if the range is moving]. */
function ringView(node: Node): Record<string, unknown> {
  const placement = node.placement();
  const owners = [...new Set([...placement.prev.members, ...placement.next.members])].sort();
  const arcs = placement.ranges().map((r) => {
    const moving = r.replicas.pending.length > 0 || r.replicas.displaced.length > 0;
    return [r.lo, r.hi, owners.indexOf(r.replicas.write[0] ?? ''), moving ? 1 : 0];
  });
  return {
    checksum: placement.checksum(),
    stable: placement.stable,
    moving: Object.fromEntries(placement.moving),
    vnodes: placement.vnodes,
    replication_factor: placement.replicationFactor,
    owners,
    arcs,
  };
}

/** This node's own figures: what /dashboard/node answers and what /dashboard/state holds for it. */
function localView(node: Node, sampler: Sampler, inflight: () => number, sinceS: number): Record<string, unknown> {
  const s = node.status();
  const m = node.movement.progress;
  const r = node.antiEntropy.progress;
  return {
    id: s.id,
    address: s.address,
    status: node.memberStatus(),
    keys: node.storeCount(),
    hints_pending: node.hints.pending(),
    inflight_requests: inflight(),
    uptime_ms: s.uptimeMs,
    move:
      m.kind === undefined
        ? null
        : {
            kind: m.kind,
            target: m.target ?? null,
            phase: m.phase ?? null,
            ...moveCounts(m),
            started_at_ms: m.startedAtMs ?? null,
            finished_at_ms: m.finishedAtMs ?? null,
          },
    repair:
      r.kind === undefined
        ? null
        : {
            kind: r.kind,
            running: r.running,
            ranges_total: r.rangesTotal,
            ranges_done: r.rangesDone,
            keys_compared: r.keysCompared,
            keys_repaired: r.keysRepaired,
            errors: r.errors,
            started_at_ms: r.startedAtMs ?? null,
            finished_at_ms: r.finishedAtMs ?? null,
          },
    // [t, reads, writes, errors, read p99 ms, write p99 ms]: compact, a page polls twice a second
    samples: sampler.ring.since(sinceS).map((x) => [x.t, x.reads, x.writes, x.errors, x.readP99Ms, x.writeP99Ms]),
  };
}

/** `?since=<unix seconds>`: samples newer than that; absent, every sample kept. */
function sinceParam(req: Request): number | undefined {
  const raw = req.query.since;
  if (raw === undefined) return 0;
  if (typeof raw !== 'string' || !/^[0-9]{1,12}$/.test(raw)) return undefined;
  return Number(raw);
}

async function peerView(address: string, sinceS: number): Promise<Record<string, unknown>> {
  try {
    const res = await fetch(`http://${address}/dashboard/node?since=${sinceS}`, { signal: AbortSignal.timeout(PEER_DEADLINE_MS) });
    if (!res.ok) return { ok: false, error: `answered ${res.status}` };
    return { ok: true, ...((await res.json()) as Record<string, unknown>) };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${PEER_DEADLINE_MS} ms` : (e.cause?.code ?? e.message);
    return { ok: false, error: why };
  }
}

const ASSETS: Record<string, { file: string; type: string }> = {
  '/dashboard': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/dashboard/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

/** The page may load its own script and style and call its own node; nothing else. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'";

export interface DashboardOptions {
  node: Node;
  requests: Counter;
  latency: Histogram;
  inflight: () => number;
  /** Where index.html, app.js and style.css are (default: the dashboard/ directory beside this file). */
  assetsDir?: string;
}

/** Mounts GET /dashboard, its two files, /dashboard/state and /dashboard/node; starts the sampler. */
export function mountDashboard(app: Express, opts: DashboardOptions): Sampler {
  const { node } = opts;
  const dir = opts.assetsDir ?? path.join(__dirname, 'dashboard');
  const sampler = new Sampler(opts.requests, opts.latency);
  sampler.start();
  const cache = new Map<string, Buffer>();
  let statesInFlight = 0;

  for (const [route, asset] of Object.entries(ASSETS)) {
    app.get(route, (req, res) => {
      let body = cache.get(asset.file);
      if (body === undefined) {
        try {
          body = readFileSync(path.join(dir, asset.file));
        } catch {
          sendError(req, res, 500, 'internal', `the dashboard's ${asset.file} is missing from ${dir}: this build of quorumkv lacks it`);
          return;
        }
        cache.set(asset.file, body);
      }
      res.set({
        'content-type': asset.type,
        'cache-control': 'no-cache',
        'content-security-policy': CSP,
        'x-content-type-options': 'nosniff',
      });
      res.send(body);
    });
  }

  const badSince = (req: Request, res: Response) =>
    sendError(req, res, 400, 'invalid_parameter', 'since must be a unix time in whole seconds, e.g. ?since=1796200000');

  app.get('/dashboard/node', (req, res) => {
    const since = sinceParam(req);
    if (since === undefined) return badSince(req, res);
    res.set('cache-control', 'no-store').json(localView(node, sampler, opts.inflight, since));
  });

  app.get('/dashboard/state', async (req, res) => {
    const since = sinceParam(req);
    if (since === undefined) return badSince(req, res);
    if (statesInFlight >= MAX_CONCURRENT_STATES) {
      sendError(req, res, 503, 'overloaded', `this node is answering ${statesInFlight} dashboard pages already; retry`);
      return;
    }
    statesInFlight++;
    try {
      const s = node.status();
      const view = node.membership.view();
      const nodes: Record<string, unknown> = {};
      await Promise.all(
        view.map(async (m) => {
          if (m.id === s.id) nodes[m.id] = { ok: true, ...localView(node, sampler, opts.inflight, since) };
          else if (m.status === 'removed') nodes[m.id] = { ok: false, error: 'removed from the cluster' };
          else if (m.liveness === 'down') nodes[m.id] = { ok: false, error: 'down: not asked' };
          else nodes[m.id] = await peerView(m.address, since);
        }),
      );
      res.set('cache-control', 'no-store').json({
        served_by: s.id,
        now_ms: Date.now(),
        poll_ms: POLL_MS,
        ring: ringView(node),
        members: view.map((m) => ({
          id: m.id,
          address: m.address,
          status: m.id === s.id ? s.status : m.status,
          ...(m.progress !== undefined && (m.status === 'joining' || m.status === 'leaving') ? { progress: m.progress } : {}),
          state: m.liveness,
          phi: Number(m.phi.toFixed(3)),
          generation: m.generation,
          heartbeat: m.heartbeat,
          last_heartbeat_ms_ago: m.sinceHeartbeatMs ?? null,
        })),
        nodes,
      });
    } finally {
      statesInFlight--;
    }
  });
  return sampler;
}
