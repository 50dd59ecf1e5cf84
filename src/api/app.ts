// The HTTP API: public /kv routes, health and cluster views, admin routes and /metrics (express).
// Validation happens here, before anything reaches the node: bad input gets a JSON error and
// changes nothing. (Peers talk to each other on the internode port: src/net/.)

import type { RequestListener } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { isToken, MAX_TOKEN } from '../core/hash';
import { liveness, readinessReply, startupReply } from '../core/health';
import type { Logger } from '../core/log';
import type { Metrics } from '../metrics';
import { MoveRefused } from '../node/movement';
import type { Node } from '../node/node';
import { adminGuard } from './admin-auth';
import { type ClientGuard, clientGuard } from './client-auth';
import { mountDashboard } from './dashboard';
import { HttpError, jsonReplies, notAnObject, sendError } from './errors';
import { BODY_OVERHEAD_BYTES, createKvHandler, isKvPath } from './kv';
import { moveCounts } from './move-json';
import type { TokenRegistry } from './tokens';

export interface AppOptions {
  node: Node;
  /** Worst event-loop delay over the last few seconds, in ms (measured by the process). */
  eventLoopDelayMs: () => number;
  log: Logger;
  metrics: Metrics;
  maxValueBytes: number;
  maxInflightRequests: number;
  /** The bearer tokens this node accepts, with their roles (--admin-token's and the tokens file's). */
  tokens: TokenRegistry;
  /** Client authentication (--tokens-file): every route but the health routes needs a token. */
  clientAuth: boolean;
  /** Callers on loopback may use /admin/* without a token (--admin-from-loopback). */
  adminFromLoopback: boolean;
}

/**
 * How long /health/ready waits for a DNS count of the pods before using the last one: the probe
 * (timeoutSeconds 3, CLI deadline 2 s) must get an answer even when cluster DNS is slow.
 */
const READINESS_DNS_BUDGET_MS = 1000;

/**
 * How long an operation has run (or ran), by the node's clock: with the counts, what a client
 * needs for a rate and a time left without trusting its own clock to agree with the node's.
 */
function elapsedMs(node: Node, startedAtMs: number | undefined, finishedAtMs: number | undefined): number | null {
  return startedAtMs === undefined ? null : Math.max(0, (finishedAtMs ?? node.nowMs()) - startedAtMs);
}

function repairStatus(node: Node): Record<string, unknown> {
  const p = node.antiEntropy.progress;
  return {
    running: p.running,
    kind: p.kind ?? null,
    started_at: p.startedAtMs === undefined ? null : new Date(p.startedAtMs).toISOString(),
    finished_at: p.finishedAtMs === undefined ? null : new Date(p.finishedAtMs).toISOString(),
    elapsed_ms: elapsedMs(node, p.startedAtMs, p.running ? undefined : p.finishedAtMs),
    ranges_total: p.rangesTotal,
    ranges_done: p.rangesDone,
    ranges_differing: p.rangesDiffering,
    keys_compared: p.keysCompared,
    keys_repaired: p.keysRepaired,
    bytes_sent: p.bytesSent,
    bytes_received: p.bytesReceived,
    errors: p.errors,
    hints_pending: node.hints.pending(),
  };
}

function moveStatus(node: Node): Record<string, unknown> {
  const p = node.movement.progress;
  const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
  return {
    status: node.memberStatus(),
    move:
      p.kind === undefined && p.phase === undefined
        ? null
        : {
            kind: p.kind ?? null,
            target: p.target ?? null,
            phase: p.phase ?? null,
            replacing: p.replacing,
            started_at: iso(p.startedAtMs),
            finished_at: iso(p.finishedAtMs),
            elapsed_ms: elapsedMs(node, p.startedAtMs, p.finishedAtMs),
            ...moveCounts(p),
          },
  };
}

/** A move runs in the background; its outcome is read from /admin/move (a refusal is a 409 now). */
function startMove(begin: () => Promise<void>): void {
  let running: Promise<void>;
  try {
    running = begin();
  } catch (err) {
    if (err instanceof MoveRefused) throw new HttpError(409, 'conflict', err.message);
    throw err;
  }
  running.catch(() => {}); // failures are in /admin/move and the log
}

/** The node's HTTP request handler. */
export function createHandler(opts: AppOptions): RequestListener {
  const { node, log, metrics } = opts;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  jsonReplies(app.response);

  const requests = metrics.counter('quorumkv_requests_total', 'Client requests by operation and status code', ['op', 'code']);
  const latency = metrics.histogram(
    'quorumkv_request_duration_seconds',
    'Client request latency by operation',
    [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    ['op'],
  );
  const rejected = metrics.counter(
    'quorumkv_requests_rejected_total',
    'Requests refused before reaching the node, by reason (a bound that was hit)',
    ['reason'],
  );
  const kv = createKvHandler({
    node,
    log,
    maxValueBytes: opts.maxValueBytes,
    maxInflightRequests: opts.maxInflightRequests,
    requests,
    latency,
    rejected,
  });
  metrics.gauge('quorumkv_inflight_requests', 'Client requests being coordinated now', () => kv.inflight());
  metrics.gauge('quorumkv_keys', 'Keys stored on this replica (tombstones included)', () => node.storeCount());
  metrics.gauge('quorumkv_members', "Members in this node's ring", () => node.memberList().length);
  mountDashboard(app, { node, requests, latency, inflight: () => kv.inflight() });

  const json = express.json({ limit: opts.maxValueBytes + BODY_OVERHEAD_BYTES, type: 'application/json' });

  // ---- health and cluster views -----------------------------------------------------------------
  app.get('/health', (_req, res) => {
    const s = node.status();
    const delay = opts.eventLoopDelayMs();
    const verdict = liveness({ eventLoopDelayMs: delay });
    res.status(verdict.ok ? 200 : 503).json({
      status: verdict.ok ? 'ok' : 'stalled',
      reason: verdict.reason,
      id: s.id,
      address: s.address,
      generation: s.generation,
      uptime_ms: s.uptimeMs,
      pid: process.pid,
      members: s.members,
      ring_checksum: s.ring,
      event_loop_delay_ms: Math.round(delay),
    });
  });
  app.get('/health/startup', (_req, res) => {
    const reply = startupReply(node.startupInput());
    res.status(reply.ok ? 200 : 503).json(reply);
  });
  app.get('/health/ready', async (_req, res) => {
    const reply = readinessReply(await node.readinessInput(READINESS_DNS_BUDGET_MS), node.config.replicationFactor);
    res.status(reply.ok ? 200 : 503).json(reply);
  });
  // ---- admin: every route under /admin passes the one guard first (core/admin-access.ts) --------
  app.use(
    '/admin',
    adminGuard({
      tokens: opts.tokens,
      fromLoopback: opts.adminFromLoopback,
      refused: metrics.counter('quorumkv_admin_refused_total', 'Requests to /admin/* refused by the admin guard, by status (401, 403)', [
        'status',
      ]),
    }),
  );
  app.post('/admin/drain', (_req, res) => {
    node.drain();
    res.json({ draining: true, inflight_requests: kv.inflight() });
  });
  app.post('/admin/repair', json, (req, res) => {
    const rangeText = (req.body as { range?: unknown } | undefined)?.range;
    let range: { lo: number; hi: number } | undefined;
    if (rangeText !== undefined) {
      const m = typeof rangeText === 'string' ? /^([0-9]{1,10}):([0-9]{1,10})$/.exec(rangeText) : null;
      const lo = Number(m?.[1]);
      const hi = Number(m?.[2]);
      if (!m || !isToken(lo) || !isToken(hi))
        throw new HttpError(400, 'invalid_body', `range must be "<lo>:<hi>", tokens from 0 to ${MAX_TOKEN} (see /ring)`);
      range = { lo, hi };
    }
    const alreadyRunning = node.antiEntropy.progress.running;
    void node.antiEntropy.run('repair', range);
    res.status(202).json({ started: !alreadyRunning, ...repairStatus(node) });
  });
  app.get('/admin/repair', (_req, res) => {
    res.json(repairStatus(node));
  });
  app.post('/admin/decommission', (_req, res) => {
    const already = node.movement.busy() && node.movement.progress.kind === 'leave';
    startMove(() => node.movement.decommission());
    res.status(202).json({ started: !already, ...moveStatus(node) });
  });
  app.post('/admin/removenode', json, (req, res) => {
    const body = (req.body ?? {}) as { id?: unknown; force?: unknown };
    if (typeof body.id !== 'string' || body.id === '') throw new HttpError(400, 'invalid_body', 'removenode needs {"id": "<member id>"}');
    const id = body.id;
    startMove(() => node.movement.removeNode(id, body.force === true));
    res.status(202).json({ started: true, ...moveStatus(node) });
  });
  app.get('/admin/move', (_req, res) => {
    res.json(moveStatus(node));
  });
  app.get('/peers', (_req, res) => {
    res.json(node.peers());
  });
  app.get('/cluster', (_req, res) => {
    const s = node.status();
    const d = node.discoveryStatus();
    res.json({
      id: s.id,
      status: s.status,
      ring_checksum: s.ring,
      ring_stable: node.placement().stable,
      members: node.membership.view().map((m) => ({
        id: m.id,
        address: m.address,
        status: m.id === s.id ? s.status : m.status,
        ...(m.progress !== undefined && (m.status === 'joining' || m.status === 'leaving') ? { progress: m.progress } : {}),
        state: m.liveness,
        ...(m.downReason === undefined ? {} : { down_reason: m.downReason }),
        phi: Number(m.phi.toFixed(3)),
        generation: m.generation,
        heartbeat: m.heartbeat,
        last_heartbeat_ms_ago: m.sinceHeartbeatMs ?? null,
      })),
      discovery: {
        provider: d.provider,
        complete: d.complete,
        expected_members: d.expected ?? null,
        known_members: d.known,
        candidates: d.candidates,
        problems: d.problems,
      },
    });
  });
  app.get('/ring', (_req, res) => {
    const placement = node.placement();
    const ring = placement.next;
    const n = node.config.replicationFactor;
    const primary = ring.primaryOwnership();
    const replica = ring.replicaOwnership(n);
    res.json({
      checksum: placement.checksum(),
      stable: placement.stable,
      moving: Object.fromEntries(placement.moving),
      vnodes: ring.vnodes,
      replication_factor: n,
      members: ring.members.map((id) => ({
        id,
        address: node.membership.addressOf(id) ?? null,
        state: node.membership.liveness(id),
        vnodes: ring.vnodes,
        primary_share: Number((primary.get(id) ?? 0).toFixed(6)),
        replica_share: Number((replica.get(id) ?? 0).toFixed(6)),
      })),
    });
  });
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.contentType).send(await metrics.render());
  });

  // ---- fallbacks ----------------------------------------------------------------------------------
  app.use((req, res) => {
    sendError(req, res, 404, 'no_such_route', `no route for ${req.method} ${req.path}`);
  });

  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof HttpError) return sendError(req, res, err.status, err.code, err.message, err.details);
    const e = err as { type?: string; status?: number; message?: string };
    if (e.type === 'request.aborted') {
      log.debug({ method: req.method, path: req.path }, 'client went away');
      res.destroy();
      return;
    }
    if (e.type === 'entity.too.large') {
      rejected.inc({ reason: 'body_too_large' });
      return sendError(req, res, 413, 'value_too_large', `request body exceeds ${opts.maxValueBytes + BODY_OVERHEAD_BYTES} bytes`, {
        max_value_bytes: opts.maxValueBytes,
      });
    }
    if (e.type === 'entity.parse.failed') {
      // body-parser refuses JSON that is not an object or array ("v1", 42) as if it did not parse
      const problem = typeof (e as { body?: unknown }).body === 'string' ? notAnObject((e as { body: string }).body) : undefined;
      return sendError(req, res, 400, 'invalid_body', problem ?? `the body is not valid JSON: ${e.message}`);
    }
    if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported')
      return sendError(req, res, 415, 'unsupported_media_type', String(e.message));
    // body-parser's other refusals (a body that does not decompress, a length that does not match)
    if (typeof e.status === 'number' && e.status >= 400 && e.status < 500)
      return sendError(req, res, 400, 'invalid_body', `the body could not be read: ${e.message}`);
    log.error({ err, method: req.method, path: req.path }, 'request failed');
    sendError(req, res, 500, 'internal', 'internal error; see the node log');
  });

  const guard: ClientGuard | undefined = opts.clientAuth
    ? clientGuard(
        opts.tokens,
        metrics.counter('quorumkv_client_refused_total', 'Client requests refused for their token, by status (401, 403)', ['status']),
      )
    : undefined;
  return (req, res) => {
    if (guard !== undefined && !guard(req, res)) return;
    if (isKvPath(req.url as string)) kv(req, res);
    else app(req, res);
  };
}
