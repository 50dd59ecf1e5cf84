// Every error the API returns has one shape: { "error": { "code", "message", ...details } }.

import type { Response } from 'express';

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
  | 'overloaded'
  | 'not_serving'
  | 'conflict'
  | 'internal';

export function sendError(res: Response, status: number, code: ErrorCode, message: string, details: Record<string, unknown> = {}): void {
  res.status(status).json({ error: { code, message, ...details } });
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
