// PUT|GET|DELETE /kv/<key> on node's http module directly: the path every client request takes, so
// its overhead is the database's. express's router and body-parser cost more CPU per request than
// a quorum read's internode calls (docs/BENCHMARKS.md); this is the same API, byte for byte
// (test/integration/kv-api.test.ts holds the replies to a corpus of good and bad requests): the
// same routes (a key may end in one "/"; the /kv prefix matches in any case), the same order of
// checks, the same replies and errors, the same bounds and metrics.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { formatVersion } from '../core/hlc';
import { keyProblem, MAX_KEY_BYTES, valueProblem, valueSizeBytes } from '../core/limits';
import type { Logger } from '../core/log';
import { type ConsistencyParams, type Operation, requiredReplicas } from '../core/quorum';
import { isExpired, type JsonValue } from '../core/record';
import type { Counter, Histogram } from '../metrics';
import { BadMessageError, NotServingError, QuorumError, UnavailableError } from '../node/errors';
import type { ReplicaFailure } from '../node/fanout';
import type { Node, ReadResult, WriteResult } from '../node/node';
import { HttpError, notAnObject, sendError, sendJson } from './errors';

/** Room for the `{"value": ...}` wrapper and whitespace around a value at the size limit. */
export const BODY_OVERHEAD_BYTES = 64 * 1024;

/** The longest TTL a write may ask for: 10 years, in seconds. */
const MAX_TTL_S = 10 * 365 * 24 * 3600;

const ALLOWED_PARAMS: Record<string, readonly string[]> = {
  GET: ['consistency', 'r'],
  HEAD: ['consistency', 'r'],
  PUT: ['consistency', 'w', 'ttl'],
  DELETE: ['consistency', 'w'],
};

export interface KvOptions {
  node: Node;
  log: Logger;
  maxValueBytes: number;
  maxInflightRequests: number;
  requests: Counter;
  latency: Histogram;
  rejected: Counter;
}

/** Does this request target belong to the /kv routes? */
export function isKvPath(url: string): boolean {
  return (
    url.length >= 3 &&
    (url.charCodeAt(1) | 32) === 107 && // k or K
    (url.charCodeAt(2) | 32) === 118 && // v or V
    url.charCodeAt(0) === 47 && // /
    (url.length === 3 || url.charCodeAt(3) === 47 || url.charCodeAt(3) === 63) // end, / or ?
  );
}

export interface KvHandler {
  (req: IncomingMessage, res: ServerResponse): void;
  /** Client requests being coordinated now. */
  inflight(): number;
}

export function createKvHandler(opts: KvOptions): KvHandler {
  const { node, requests, latency, rejected } = opts;
  const bodyLimit = opts.maxValueBytes + BODY_OVERHEAD_BYTES;
  const countTooLarge = () => rejected.inc({ reason: 'body_too_large' });
  let inflight = 0;
  // the metric series of each (method, status), bound on first use
  const bound = new Map<string, { request: { inc(): void }; latency: { observe(v: number): void } }>();
  const metricsFor = (method: string, status: number) => {
    const k = `${method} ${status}`;
    let m = bound.get(k);
    if (m === undefined) {
      const op = method.toLowerCase();
      m = { request: requests.child({ op, code: String(status) }), latency: latency.child({ op }) };
      bound.set(k, m);
    }
    return m;
  };

  const fail = (req: IncomingMessage, res: ServerResponse, err: unknown): void => {
    if (res.headersSent || err instanceof ClientGone) {
      if (err instanceof ClientGone) opts.log.debug({ method: req.method, path: req.url, err: err.message }, 'client went away');
      res.destroy();
      return;
    }
    if (err instanceof HttpError) {
      sendError(req, res, err.status, err.code, err.message, err.details);
      return;
    }
    if (err instanceof QuorumError) {
      const d = err.details;
      const write = err.op === 'write';
      sendError(req, res, 503, 'quorum_not_met', err.message, {
        key: d.key,
        quorum_required: d.required,
        [write ? 'successful_writes' : 'replicas_responded']: d.succeeded.length,
        total_replicas: d.replicas.length,
        replicas: d.replicas,
        ...(write ? { acknowledged_by: d.succeeded, may_have_been_applied: true } : {}),
        failures: failuresWithAddresses(node, d.failures),
      });
      return;
    }
    if (err instanceof UnavailableError) {
      const d = err.details;
      sendError(req, res, 503, 'unavailable', err.message, {
        key: d.key,
        quorum_required: d.required,
        alive_replicas: d.alive.length,
        total_replicas: d.replicas.length,
        replicas: d.replicas,
        ...(err.op === 'write' ? { may_have_been_applied: false } : {}),
        failures: failuresWithAddresses(node, d.failures),
      });
      return;
    }
    if (err instanceof BadMessageError) {
      sendError(req, res, 400, 'bad_request', err.message);
      return;
    }
    if (err instanceof NotServingError) {
      sendError(req, res, 503, 'not_serving', err.message, { status: node.memberStatus() });
      return;
    }
    opts.log.error({ err, method: req.method, path: req.url }, 'request failed');
    sendError(req, res, 500, 'internal', 'internal error; see the node log');
  };

  const handler = ((req: IncomingMessage, res: ServerResponse) => {
    if (inflight >= opts.maxInflightRequests) {
      rejected.inc({ reason: 'overloaded' });
      sendError(
        req,
        res,
        503,
        'overloaded',
        `this node is coordinating ${inflight} requests, its limit (--max-inflight-requests); retry or use another node`,
      );
      req.resume();
      return;
    }
    inflight++;
    const start = process.hrtime.bigint();
    res.once('close', () => {
      inflight--;
      if (!res.writableFinished) return; // the client went away before the reply
      const m = metricsFor(req.method as string, res.statusCode);
      m.request.inc();
      m.latency.observe(Number(process.hrtime.bigint() - start) / 1e9);
    });
    route(req, res).catch((err: unknown) => {
      fail(req, res, err);
      req.resume(); // a body nobody reads is drained, so the connection stays usable
    });
  }) as KvHandler;
  handler.inflight = () => inflight;

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url as string;
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = q < 0 ? '' : url.slice(q + 1);
    // the key: everything after "/kv/", one trailing "/" allowed (express's non-strict routing)
    let raw = path.slice(4);
    if (raw.endsWith('/')) raw = raw.slice(0, -1);
    if (path.length <= 4 || raw === '') throw new HttpError(400, 'invalid_key', 'key must not be empty: use /kv/<key>');
    if (raw.includes('/')) {
      req.resume();
      sendError(
        req,
        res,
        404,
        'no_such_route',
        `no route for ${req.method} ${path}: the route is /kv/<key>, and a key holds no "/" unless percent-encoded (%2F)`,
      );
      return;
    }
    let key: string;
    try {
      key = raw.includes('%') ? decodeURIComponent(raw) : raw;
    } catch {
      throw new HttpError(400, 'invalid_key', 'the key in the path is not valid percent-encoding');
    }
    const method = req.method as string;
    // node's HTTP parser calls this handler from the request's head and parses on to the end of
    // what the socket delivered before any microtask runs: a request that came in one read (the
    // usual one: head and a small body) is whole one microtask from now, its body in the request's
    // buffer, where it is taken at once rather than through the stream's events (several turns of
    // the tick queue, ~20 us of a lone write on the benchmark machine).
    await Promise.resolve();
    // A GET or DELETE acts only once its request is whole (req.complete, which does not trust the
    // headers as parsed into req.headers): a body it does not use is read, and bounded, first, so a
    // request whose body breaks off or does not parse changes nothing.
    if (method !== 'PUT') {
      if (!req.complete) await drainBody(req, bodyLimit, countTooLarge);
      else if (Number(req.headers['content-length']) > bodyLimit || req.readableLength > bodyLimit)
        throw bodyTooLarge(bodyLimit, countTooLarge);
    }
    if (method === 'GET' || method === 'HEAD') {
      checkKey(key);
      const r = required(method, query, 'read');
      return readReply(req, res, await node.get(key, r));
    }
    if (method === 'PUT') {
      const body = await readJsonBody(req, bodyLimit, countTooLarge);
      checkKey(key);
      const params = parseParams(method, query);
      const w = required(method, query, 'write', params);
      const value = valueFromBody(body.value, body.text, opts.maxValueBytes);
      const ttlMs = ttlFrom(params.ttl);
      sendJson(req, res, 200, writeReply(await node.put(key, value, w, ttlMs), { value }));
      return;
    }
    if (method === 'DELETE') {
      checkKey(key);
      const w = required(method, query, 'write');
      sendJson(req, res, 200, writeReply(await node.delete(key, w), { deleted: true }));
      return;
    }
    req.resume();
    sendError(
      req,
      res,
      405,
      'method_not_allowed',
      `${method} is not supported on /kv/<key>; use GET, PUT or DELETE`,
      {},
      { Allow: 'GET, PUT, DELETE' },
    );
  }

  function required(method: string, query: string, op: Operation, params = parseParams(method, query)): number {
    const n = node.config.replicationFactor;
    const dflt = op === 'read' ? node.config.readQuorum : node.config.writeQuorum;
    const r = requiredReplicas(op, params, n, dflt);
    if ('error' in r) throw new HttpError(400, 'invalid_parameter', r.error);
    return r.required;
  }

  function readReply(req: IncomingMessage, res: ServerResponse, result: ReadResult): void {
    const { key } = result;
    const base = {
      coordinator: result.coordinator,
      replicas: result.replicas,
      quorum_required: result.required,
      replicas_responded: result.responded.length,
      total_replicas: result.replicas.length,
      ...(result.repaired.length > 0 ? { read_repaired: result.repaired } : {}),
    };
    const rec = result.record;
    const now = node.nowMs();
    if (!rec || rec.deleted || isExpired(rec, now)) {
      sendError(req, res, 404, 'not_found', `key ${JSON.stringify(key)} not found`, {
        key,
        ...base,
        ...(rec?.deleted ? { deleted: true, version: formatVersion(rec.version) } : {}),
        ...(rec && isExpired(rec, now)
          ? { expired: true, version: formatVersion(rec.version), expired_at: new Date(rec.expiresAt as number).toISOString() }
          : {}),
      });
      return;
    }
    sendJson(req, res, 200, {
      key,
      value: rec.value,
      version: formatVersion(rec.version),
      ...(rec.expiresAt !== undefined ? { expires_at: new Date(rec.expiresAt).toISOString() } : {}),
      ...base,
    });
  }

  return handler;
}

function checkKey(key: string): void {
  const problem = keyProblem(key);
  if (problem) throw new HttpError(400, 'invalid_key', problem, { max_key_bytes: MAX_KEY_BYTES });
}

/** The query string's parameters, each at most once and each one the method takes. */
function parseParams(method: string, query: string): ConsistencyParams & { ttl?: string } {
  const out: Record<string, string> = {};
  if (query === '') return out;
  const allowed = ALLOWED_PARAMS[method] ?? [];
  for (const [name, value] of Object.entries(parseQuery(query))) {
    if (!allowed.includes(name)) {
      const shown = method === 'HEAD' ? 'GET' : method;
      throw new HttpError(
        400,
        'invalid_parameter',
        `unknown query parameter ${JSON.stringify(name)}; ${shown} takes ${allowed.join(', ')}`,
      );
    }
    if (typeof value !== 'string') throw new HttpError(400, 'invalid_parameter', `query parameter ${name} given more than once`);
    out[name] = value;
  }
  return out;
}

/** `?ttl=<seconds>`: the value expires that long after the write; undefined when not asked. */
function ttlFrom(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = /^[0-9]{1,10}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(n >= 1 && n <= MAX_TTL_S))
    throw new HttpError(
      400,
      'invalid_parameter',
      `ttl must be a whole number of seconds from 1 to ${MAX_TTL_S}; got ${JSON.stringify(raw)}`,
    );
  return n * 1000;
}

/** The reply to a PUT (`value`) or DELETE (`deleted: true`): the seed's shape, snake_case. */
function writeReply(result: WriteResult, what: { value: JsonValue } | { deleted: true }): Record<string, unknown> {
  const hinted = Object.entries(result.hintedOn);
  return {
    key: result.key,
    ...what,
    version: formatVersion(result.record.version),
    ...(result.record.expiresAt !== undefined ? { expires_at: new Date(result.record.expiresAt).toISOString() } : {}),
    ...(hinted.length > 0 ? { hinted: hinted.map(([replica, on]) => ({ replica, on })) } : {}),
    coordinator: result.coordinator,
    replicas: result.replicas,
    quorum_required: result.required,
    successful_writes: result.acked.length,
    total_replicas: result.replicas.length,
  };
}

function valueFromBody(body: unknown, text: string, maxValueBytes: number): JsonValue {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw notAnObjectError(text);
  const fields = Object.keys(body);
  if (!fields.includes('value')) throw new HttpError(400, 'invalid_body', 'body has no "value" field: send {"value": <any JSON>}');
  const unknown = fields.filter((f) => f !== 'value');
  if (unknown.length > 0) {
    const names = unknown.map((f) => JSON.stringify(f)).join(', ');
    throw new HttpError(400, 'invalid_body', `unknown field(s) ${names}; the body is {"value": <any JSON>}`);
  }
  const value = (body as { value: JsonValue }).value;
  const problem = valueProblem(value, text);
  if (problem) throw new HttpError(400, 'invalid_body', `${problem}; nothing was written`);
  const size = valueSizeBytes(value);
  if (size > maxValueBytes) {
    throw new HttpError(413, 'value_too_large', `value is ${size} bytes of JSON; the limit is ${maxValueBytes} (--max-value-bytes)`, {
      max_value_bytes: maxValueBytes,
    });
  }
  return value;
}

export function failuresWithAddresses(
  node: Node,
  failures: ReplicaFailure[],
): Array<{ replica: string; address?: string; reason: string }> {
  const addresses = new Map(node.memberList().map((m) => [m.id, m.address]));
  return failures.map((f) => ({
    replica: f.replica,
    ...(addresses.has(f.replica) ? { address: addresses.get(f.replica) } : {}),
    reason: f.reason,
  }));
}

// ---- the body -------------------------------------------------------------------------------------

/** A body nobody uses was over `limit` bytes: counted, and the 413 to answer. */
function bodyTooLarge(limit: number, onTooLarge: () => void): HttpError {
  onTooLarge();
  return new HttpError(413, 'value_too_large', `request body exceeds ${limit} bytes`);
}

/** Reads a body nobody uses to its end (at most `limit` bytes); resolves once the request is whole. */
function drainBody(req: IncomingMessage, limit: number, onTooLarge: () => void): Promise<void> {
  if (Number(req.headers['content-length']) > limit) return Promise.reject(bodyTooLarge(limit, onTooLarge));
  return new Promise((resolve, reject) => {
    let size = 0;
    let finished = false;
    const finish = (err?: Error) => {
      if (finished) return;
      finished = true;
      if (err) reject(err);
      else resolve();
    };
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) finish(bodyTooLarge(limit, onTooLarge));
    });
    req.on('end', () => finish());
    req.on('aborted', () => finish(new ClientGone('the client closed the connection during the request body')));
    req.on('error', (err: Error) => finish(new ClientGone(err.message)));
  });
}

/** A PUT body that is JSON but not an object says so; one that is not JSON at all says that. */
function notAnObjectError(text: string): HttpError {
  const problem = notAnObject(text);
  return new HttpError(
    400,
    'invalid_body',
    problem === undefined
      ? `the body is not valid JSON; send {"value": <any JSON>}`
      : `${problem}: send {"value": <any JSON>}${text.length <= 100 ? `, here {"value": ${text.trim()}}` : ''}`,
  );
}

/** The request has no body, or an empty one. */
const EMPTY_BODY = 'the request body is empty: send {"value": <any JSON>} with Content-Type: application/json';

/** The client went away before its request was read: nothing to answer, nobody to tell. */
class ClientGone extends Error {
  override name = 'ClientGone';
}

/** The media type and parameters of a Content-Type header, or undefined when it has none or is malformed. */
function contentType(header: string | undefined): { type: string; charset: string | undefined } | undefined {
  if (header === undefined) return undefined;
  const parts = header.split(';');
  const type = (parts[0] as string).trim().toLowerCase();
  if (!/^[!#$%&'*+.^_`|~0-9a-z-]+\/[!#$%&'*+.^_`|~0-9a-z-]+$/.test(type)) return undefined;
  let charset: string | undefined;
  for (const p of parts.slice(1)) {
    const eq = p.indexOf('=');
    if (eq < 0) {
      if (p.trim() === '') continue; // "application/json;": an empty parameter, as browsers and body-parser allow
      return undefined;
    }
    const name = p.slice(0, eq).trim().toLowerCase();
    let v = p.slice(eq + 1).trim();
    if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) v = v.slice(1, -1);
    if (name === 'charset') charset = v.toLowerCase();
  }
  return { type, charset };
}

/**
 * Reads a PUT's JSON body as express.json() would (Content-Type application/json, a UTF-8 charset,
 * identity, gzip, deflate or br encoding, at most `limit` bytes once decoded, an object or array
 * at the top) and parses it.
 */
function readJsonBody(req: IncomingMessage, limit: number, onTooLarge: () => void): Promise<{ value: unknown; text: string }> {
  const headers = req.headers;
  const hasBody = headers['transfer-encoding'] !== undefined || headers['content-length'] !== undefined;
  const given = headers['content-type'];
  const ct = contentType(given);
  if (ct?.type !== 'application/json') {
    // no body at all is the first problem to name, whatever the Content-Type says
    if (!hasBody || headers['content-length'] === '0') throw new HttpError(400, 'invalid_body', EMPTY_BODY);
    throw new HttpError(
      415,
      'unsupported_media_type',
      `send the body as Content-Type: application/json; got ${JSON.stringify(given ?? '(none)')}`,
    );
  }
  if (!hasBody) throw new HttpError(400, 'invalid_body', EMPTY_BODY);
  const charset = ct.charset ?? 'utf-8';
  if (!charset.startsWith('utf-')) throw new HttpError(415, 'unsupported_media_type', `unsupported charset "${charset.toUpperCase()}"`);
  const encoding = (headers['content-encoding'] ?? 'identity').toLowerCase();
  const tooLarge = () => {
    onTooLarge();
    return new HttpError(413, 'value_too_large', `request body exceeds ${limit} bytes`, { max_value_bytes: limit - BODY_OVERHEAD_BYTES });
  };
  let source: NodeJS.ReadableStream = req;
  if (encoding === 'identity') {
    const length = Number(headers['content-length']);
    if (length > limit) throw tooLarge();
    if (req.complete) {
      // the whole body is in the request's buffer (see route): taken in one read
      if (req.readableLength > limit) throw tooLarge();
      return Promise.resolve(parseJsonBody((req.read() as Buffer | null) ?? Buffer.alloc(0)));
    }
  } else {
    const inflate =
      encoding === 'gzip'
        ? createGunzip()
        : encoding === 'deflate'
          ? createInflate()
          : encoding === 'br'
            ? createBrotliDecompress()
            : undefined;
    if (inflate === undefined) throw new HttpError(415, 'unsupported_media_type', `unsupported content encoding "${encoding}"`);
    source = req.pipe(inflate);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let finished = false;
    const finish = (err: unknown, body?: { value: unknown; text: string }) => {
      if (finished) return;
      finished = true;
      if (err !== undefined) {
        if (source !== req) (source as unknown as { destroy(): void }).destroy();
        req.resume();
        reject(err);
      } else resolve(body as { value: unknown; text: string });
    };
    source.on('data', (chunk: Buffer) => {
      if (finished) return;
      size += chunk.length;
      if (size > limit) return finish(tooLarge());
      chunks.push(chunk);
    });
    req.on('aborted', () => finish(new ClientGone('the client closed the connection during the upload')));
    source.on('error', (err: Error) =>
      finish(
        source === req
          ? new ClientGone(err.message)
          : new HttpError(400, 'invalid_body', `the body does not decode as ${encoding}: ${err.message}`),
      ),
    );
    source.on('end', () => {
      if (finished) return;
      let body: { value: unknown; text: string };
      try {
        body = parseJsonBody(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
      } catch (err) {
        return finish(err);
      }
      finish(undefined, body);
    });
  });
}

/** A PUT's whole body, decoded: the JSON object or array it holds, and its text; an HttpError when it holds none. */
function parseJsonBody(bytes: Buffer): { value: unknown; text: string } {
  let text = bytes.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.length === 0) throw new HttpError(400, 'invalid_body', EMPTY_BODY);
  const first = /^[ \t\n\r]*(.)/s.exec(text)?.[1];
  if (first !== '{' && first !== '[') throw notAnObjectError(text);
  try {
    return { value: JSON.parse(text), text };
  } catch (err) {
    throw new HttpError(400, 'invalid_body', `the body is not valid JSON: ${(err as Error).message}`);
  }
}
