// The one guard in front of every /admin/* route: it reads the request's source and Authorization
// header, looks the bearer token's role up (./tokens.ts: digests, compared in constant time), and
// applies the rule of core/admin-access.ts. An admin token is one of --admin-token or a token of
// role admin in the tokens file. A refusal is the API's JSON error; the route never runs and the
// body is never read.

import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { adminAccess } from '../core/admin-access';
import type { Counter } from '../metrics';
import { sendRefusal } from './errors';
import { credentialOf, type TokenRegistry } from './tokens';

export interface AdminGuardOptions {
  /** The tokens this node accepts, with their roles (--admin-token's are admin). */
  tokens: TokenRegistry;
  /** --admin-from-loopback. */
  fromLoopback: boolean;
  /** Counts refusals by status. */
  refused?: Counter;
}

export function adminGuard(opts: AdminGuardOptions): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const credential = credentialOf(opts.tokens, req.get('authorization'));
    const verdict = adminAccess(
      { tokens: opts.tokens.hasAdmin(), fromLoopback: opts.fromLoopback },
      {
        remoteAddress: req.socket.remoteAddress,
        // a token too long for any this node holds is a wrong bearer token
        credential: credential.kind === 'too-long' ? 'bearer' : credential.kind,
        tokenMatches: credential.role === 'admin',
      },
    );
    if (verdict.allowed) {
      next();
      return;
    }
    opts.refused?.inc({ status: String(verdict.status) });
    sendRefusal(req, res, verdict, verdict.challenge ? 'Bearer realm="quorumkv admin"' : undefined);
  };
}
