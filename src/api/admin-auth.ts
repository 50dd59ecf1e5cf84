// The one guard in front of every /admin/* route: it reads the request's source and Authorization
// header, compares the bearer token with the configured ones in constant time, and applies the
// rule of core/admin-access.ts. A refusal is the API's JSON error; the route never runs and the
// body is never read.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { adminAccess, parseAuthorization } from '../core/admin-access';
import type { Counter } from '../metrics';
import { sendError } from './errors';

export interface AdminGuardOptions {
  /** Accepted bearer tokens (--admin-token); empty when none is configured. */
  tokens: readonly string[];
  /** --admin-from-loopback. */
  fromLoopback: boolean;
  /** Counts refusals by status. */
  refused?: Counter;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export function adminGuard(opts: AdminGuardOptions): RequestHandler {
  // Digests of equal length: the comparison takes the same time whatever the given token's length,
  // and every configured token is compared, whichever matches.
  const accepted = opts.tokens.map(digest);
  const matches = (token: string) => {
    const given = digest(token);
    let found = false;
    for (const a of accepted) if (timingSafeEqual(a, given)) found = true;
    return found;
  };
  return (req: Request, res: Response, next: NextFunction) => {
    const credential = parseAuthorization(req.get('authorization'));
    const verdict = adminAccess(
      { tokens: accepted.length > 0, fromLoopback: opts.fromLoopback },
      {
        remoteAddress: req.socket.remoteAddress,
        credential: credential.kind,
        tokenMatches: credential.kind === 'bearer' && matches(credential.token),
      },
    );
    if (verdict.allowed) {
      next();
      return;
    }
    opts.refused?.inc({ status: String(verdict.status) });
    sendError(
      req,
      res,
      verdict.status,
      verdict.code,
      verdict.reason,
      {},
      verdict.challenge ? { 'WWW-Authenticate': 'Bearer realm="quorumkv admin"' } : undefined,
    );
  };
}
