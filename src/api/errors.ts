// Every error the API returns has one shape: { "error": { "code", "message", ...details } }, and
// every JSON reply is written one way, from express's routes (jsonReplies below) or from the /kv
// routes, which do not go through express (./kv.ts): compact JSON and a newline, so that a shell
// prompt after `curl` starts on its own line.

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

export type ErrorCode =
  | 'bad_request'
  | 'invalid_key'
  | 'invalid_parameter'
  | 'invalid_body'
  | 'not_found'
  | 'no_such_route'
  | 'method_not_allowed'
  | 'value_too_large'
  | 'unsupported_media_type'
  | 'unauthorized'
  | 'forbidden'
  | 'quorum_not_met'
  | 'unavailable'
  | 'overloaded'
  | 'not_serving'
  | 'conflict'
  | 'internal';

/** Writes `body` as JSON and a newline, with the headers express's res.json sets; a HEAD gets the headers only. */
export function sendJson(req: IncomingMessage, res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void {
  const text = `${JSON.stringify(body)}\n`;
  if (headers) for (const name in headers) res.setHeader(name, headers[name] as string);
  // a flat array: node writes it as it is, without the per-header bookkeeping of setHeader (~2 µs a
  // reply of ~20-27 on a bare server); headers set before (by a guard, while closing) are merged,
  // in the same order
  res.writeHead(status, ['Content-Type', 'application/json; charset=utf-8', 'Content-Length', String(Buffer.byteLength(text))]);
  if (req.method === 'HEAD') res.end();
  else res.end(text);
}

export function sendError(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  code: ErrorCode,
  message: string,
  details: Record<string, unknown> = {},
  headers?: Record<string, string>,
): void {
  sendJson(req, res, status, { error: { code, message, ...details } }, headers);
}

/** A guard's refusal (401 or 403), with its `WWW-Authenticate` challenge when it has one (RFC 6750). */
export function sendRefusal(
  req: IncomingMessage,
  res: ServerResponse,
  verdict: { status: 401 | 403; code: 'unauthorized' | 'forbidden'; reason: string },
  challenge: string | undefined,
): void {
  sendError(req, res, verdict.status, verdict.code, verdict.reason, {}, challenge ? { 'WWW-Authenticate': challenge } : undefined);
}

/**
 * Makes express's res.json write what sendJson writes (the newline): every JSON reply of the API,
 * from either side, ends the same way.
 */
export function jsonReplies(response: { json(body: unknown): unknown }): void {
  response.json = function json(this: ServerResponse & { req: IncomingMessage }, body: unknown) {
    sendJson(this.req, this, this.statusCode, body);
    return this;
  };
}

/**
 * What is wrong with a body that was asked to be a JSON object, when it is valid JSON of another
 * kind (`"v1"`, `42`, `null`, `[1]`); undefined when it is not JSON at all. Only called on a refusal.
 */
export function notAnObject(text: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  const kind =
    parsed === null ? 'null' : Array.isArray(parsed) ? 'an array' : typeof parsed === 'string' ? 'a string' : `a ${typeof parsed}`;
  return `the body is valid JSON, but ${kind}, not an object`;
}

/** An error raised inside a route, turned into a JSON reply by the error handler. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** What a client whose request Node's HTTP parser refused is told, by the parser's error code. */
function parserRefusal(code: string | undefined): { status: number; reason: string; errorCode: ErrorCode; message: string } {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return {
        status: 431,
        reason: 'Request Header Fields Too Large',
        errorCode: 'bad_request',
        message: 'the request headers are too large',
      };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, reason: 'Request Timeout', errorCode: 'bad_request', message: 'the request did not arrive in time' };
    default:
      return { status: 400, reason: 'Bad Request', errorCode: 'bad_request', message: `malformed HTTP request (${code ?? 'parse error'})` };
  }
}

function rawJsonReply(status: number, reason: string, body: unknown): string {
  const text = `${JSON.stringify(body)}\n`;
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`;
}

/** What the server knows of each connection: its requests being answered, and the last one it read. */
interface Connection {
  pending: number;
  last: { req: IncomingMessage; res: ServerResponse } | undefined;
}

const connections = new WeakMap<Duplex, Connection>();

/** Call for every request (before any route): the parser-error handler needs to know what is in flight. */
export function trackRequest(req: IncomingMessage, res: ServerResponse): void {
  let c = connections.get(req.socket);
  if (c === undefined) {
    c = { pending: 0, last: undefined };
    connections.set(req.socket, c);
  }
  const conn = c;
  conn.pending++;
  inHand++;
  conn.last = { req, res };
  res.once('close', () => {
    conn.pending--;
    inHand--;
  });
}

let inHand = 0;

/** Client requests received and not yet answered (or abandoned), on every connection. */
export function requestsInHand(): number {
  return inHand;
}

/**
 * Node's HTTP parser answers some requests before any route sees them (malformed ones, oversized
 * headers, an Expect it does not know, CONNECT, an Upgrade), with an empty body or none at all.
 * Here they get the JSON error every other refusal has, without ever writing over the reply of a
 * request that is still being answered on the same connection:
 *   - nothing in flight: the error is the reply, and the connection closes;
 *   - the request being read is the broken one (its body did not parse): that request is
 *     answered 400, and its handler, still waiting for the body, never acts on it;
 *   - the requests in flight are whole and the garbage came after them: they are answered, then
 *     the connection closes.
 * HTTP/1.1 requests without a Host header are refused here too (RFC 9112), with JSON.
 */
export function guardHttp(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (lingering.has(socket)) return; // refused already: the rest of its input is being dropped
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const r = parserRefusal(err.code);
    const c = connections.get(socket);
    if (c === undefined || c.pending === 0 || c.last === undefined) {
      socket.end(rawJsonReply(r.status, r.reason, { error: { code: r.errorCode, message: r.message } }));
      lingerThenClose(socket);
      return;
    }
    const { req, res } = c.last;
    res.once('finish', () => socket.end());
    if (!req.complete && !res.headersSent) {
      sendError(req, res, r.status, r.errorCode, `${r.message}: the request was not acted on`, {}, { Connection: 'close' });
    } else if (!res.headersSent) res.setHeader('Connection', 'close');
  });
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    sendError(req, res, 417, 'bad_request', `Expect: ${JSON.stringify(req.headers.expect)} is not supported (only 100-continue)`);
  });
  const refuse = (socket: Duplex, status: number, reason: string, message: string) =>
    socket.end(rawJsonReply(status, reason, { error: { code: 'bad_request', message } }));
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => refuse(socket, 405, 'Method Not Allowed', 'CONNECT is not supported'));
  server.on('upgrade', (req: IncomingMessage, socket: Duplex) =>
    refuse(socket, 400, 'Bad Request', `protocol upgrades are not supported (Upgrade: ${JSON.stringify(req.headers.upgrade)})`),
  );
}

/** How long a refused connection's remaining input is read and dropped before it is closed. */
const LINGER_MS = 2_000;

/**
 * After the refusal is written: read and drop what the client is still sending (the rest of an
 * oversized header, say), for at most LINGER_MS. Closing a socket with unread input makes the
 * kernel answer with a reset, and the client would lose the refusal it was sent (Apache's
 * lingering close).
 */
const lingering = new WeakSet<Duplex>();

function lingerThenClose(socket: Duplex): void {
  lingering.add(socket);
  socket.on('data', () => {});
  socket.resume();
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}

/** HTTP/1.1 requires a Host header (RFC 9112 §3.2); Node's own check answers without a body, so it is done here. */
export function hostProblem(req: IncomingMessage): string | undefined {
  return req.httpVersionMajor === 1 && req.httpVersionMinor === 1 && req.headers.host === undefined
    ? 'an HTTP/1.1 request needs a Host header'
    : undefined;
}
