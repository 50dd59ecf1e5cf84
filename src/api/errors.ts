// Every error the API returns has one shape: { "error": { "code", "message", ...details } }, and
// every reply is written the way express's res.json writes it (the /kv routes do not go through
// express: ./kv.ts), so a client sees the same bytes from either.

import type { IncomingMessage, ServerResponse } from 'node:http';

export type ErrorCode =
  | 'bad_request'
  | 'invalid_key'
  | 'invalid_parameter'
  | 'invalid_body'
  | 'not_found'
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

/** Writes `body` as JSON with the headers express's res.json sets; a HEAD gets the headers only. */
export function sendJson(req: IncomingMessage, res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  if (headers) for (const name in headers) res.setHeader(name, headers[name] as string);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
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
