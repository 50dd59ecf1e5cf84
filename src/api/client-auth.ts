// The guard in front of every client route when client authentication is on (--tokens-file): the
// route's need (core/client-access.ts), the bearer token's role (./tokens.ts), the decision. It
// runs before any route, the /kv fast path included, and costs one SHA-256 of the token and a
// compare per known token; with authentication off it is not installed at all. /admin/* is left
// to the admin guard (which an admin token of the file opens), the health routes are open.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { clientAccess, routeNeed } from '../core/client-access';
import type { Counter } from '../metrics';
import { sendRefusal } from './errors';
import { credentialOf, type TokenRegistry } from './tokens';

/** Lets the request through (true), or answers it with the refusal (false). */
export type ClientGuard = (req: IncomingMessage, res: ServerResponse) => boolean;

export function clientGuard(tokens: TokenRegistry, refused: Counter): ClientGuard {
  const by401 = refused.child({ status: '401' });
  const by403 = refused.child({ status: '403' });
  return (req, res) => {
    const url = req.url as string;
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const method = req.method as string;
    const need = routeNeed(method, path);
    if (need === 'open' || need === 'admin') return true;
    const credential = credentialOf(tokens, req.headers.authorization);
    const what = need === 'read' || need === 'write' ? `${method} ${path.startsWith('/kv/') ? '/kv/<key>' : path.slice(0, 64)}` : path;
    const verdict = clientAccess(need, credential.kind, credential.role, what);
    if (verdict.allowed) return true;
    (verdict.status === 401 ? by401 : by403).inc();
    req.resume(); // the body is never read, the connection stays usable
    sendRefusal(req, res, verdict, verdict.challenge);
    return false;
  };
}
