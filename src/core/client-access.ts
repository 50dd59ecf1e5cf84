// Who may use the client routes when client authentication is on (`--tokens-file`). Pure: the API
// says which route a request is for and which role its bearer token holds (looked up by digest,
// in constant time, by the caller); this decides. /admin/* keeps its own guard (admin-access.ts),
// which an `admin` token of the file also opens.
//
// Roles nest, as in most databases' built-in roles (etcd's read/readwrite, Cassandra's SELECT and
// MODIFY): `read` reads keys and the cluster views; `write` also writes and deletes; `admin` also
// runs the admin routes. A token holds one role.
//
// Open to everyone, whatever the settings: the three health routes. kubelet's probes and load
// balancers' health checks carry no credential, and what these routes say (a node's id, address,
// member count, readiness inputs) is what a pod's DNS name and the Service's endpoints already
// tell anyone who can reach the port; keeping them open also means a wrong token file can never
// make kubelet restart every pod. Every other route needs a token: nothing is open because of the
// address a request comes from.
//
// Refusals follow RFC 6750 §3.1: no credential, a credential that is not a bearer token, or a
// token this node does not know: 401 with a `WWW-Authenticate: Bearer` challenge; a known token
// whose role is too small: 403. A refusal happens before the body is read: it changes nothing.

import type { Credential } from './admin-access';

export const ROLES = ['read', 'write', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** What a route needs: nothing (health), or a token of at least this role. */
export type Need = 'open' | Role;

const RANK: Record<Role, number> = { read: 0, write: 1, admin: 2 };

export function roleGrants(held: Role, needed: Role): boolean {
  return RANK[held] >= RANK[needed];
}

/** The routes anyone may call (probes, load balancers): see the header. */
const OPEN_PATHS = new Set(['/health', '/health/', '/health/ready', '/health/ready/', '/health/startup', '/health/startup/']);

/**
 * What a request needs, from its method and path (the path without the query). `/kv/...`: read
 * for GET and HEAD, write for anything else (a method the route refuses with 405 is still refused
 * only to a writer: the 405 tells nothing a reader needs). `/admin/...`: admin. Health: open.
 * Everything else (cluster views, metrics, unknown paths): read.
 */
export function routeNeed(method: string, path: string): Need {
  const lower = path.length <= 16 ? path.toLowerCase() : path.slice(0, 16).toLowerCase();
  if (lower === '/kv' || lower.startsWith('/kv/')) return method === 'GET' || method === 'HEAD' ? 'read' : 'write';
  if (lower === '/admin' || lower.startsWith('/admin/')) return 'admin';
  if (OPEN_PATHS.has(path)) return 'open';
  return 'read';
}

export type ClientVerdict =
  | { allowed: true }
  | { allowed: false; status: 401 | 403; code: 'unauthorized' | 'forbidden'; reason: string; challenge: string | undefined };

/** The token settings named in refusals (never a token). */
const TOKENS_SETTING = '--tokens-file (QUORUMKV_TOKENS_FILE)';

/**
 * The decision for one request. `held` is the role of the bearer token when this node knows it,
 * undefined otherwise; `what` names the request in the refusal (e.g. `PUT /kv/<key>`).
 */
export function clientAccess(need: Role, credential: Credential['kind'] | 'too-long', held: Role | undefined, what: string): ClientVerdict {
  const refuse = (status: 401 | 403, reason: string, challenge?: string): ClientVerdict => ({
    allowed: false,
    status,
    code: status === 401 ? 'unauthorized' : 'forbidden',
    reason,
    challenge,
  });
  if (credential === 'none')
    return refuse(
      401,
      `${what} needs a token with the ${need} role: send Authorization: Bearer <token> (the CLI sends $QUORUMKV_TOKEN)`,
      'Bearer realm="quorumkv"',
    );
  if (credential === 'not-bearer')
    return refuse(
      401,
      'the Authorization header is not a bearer token (Bearer, then letters, digits and - . _ ~ + /, then = padding): send Authorization: Bearer <token>',
      'Bearer realm="quorumkv", error="invalid_request"',
    );
  if (credential === 'too-long')
    return refuse(
      401,
      `the bearer token is longer than ${MAX_TOKEN_CHARS} characters: no token of this node is`,
      'Bearer realm="quorumkv", error="invalid_token"',
    );
  if (held === undefined)
    return refuse(401, `the bearer token is not one this node knows (${TOKENS_SETTING})`, 'Bearer realm="quorumkv", error="invalid_token"');
  if (!roleGrants(held, need))
    return refuse(
      403,
      `the token's role is ${held}; ${what} needs the ${need} role`,
      'Bearer realm="quorumkv", error="insufficient_scope"',
    );
  return { allowed: true };
}

/** Longest token the file may hold and a request may send (`openssl rand -hex 32` makes 64). */
export const MAX_TOKEN_CHARS = 512;
/** Most entries a tokens file may hold: a request compares its token with every one. */
export const MAX_TOKEN_ENTRIES = 256;

/** One line of a tokens file: a role and the token, or the token's SHA-256 digest (hex). */
export type TokenEntry = { role: Role; token: string } | { role: Role; sha256: string };

const BEARER_TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * A tokens file: one `<role> <token>` per line (`<role> sha256:<64 hex digits>` for a token
 * given by its digest, so the file need not hold it), `#` comments and blank lines ignored. Every
 * problem is reported with its line number, never with the token.
 */
export function parseTokensFile(text: string): { entries: TokenEntry[]; problems: string[] } {
  const entries: TokenEntry[] = [];
  const problems: string[] = [];
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const at = `line ${i + 1}`;
    const parts = line.split(/\s+/);
    if (parts.length !== 2) {
      problems.push(`${at}: must be "<role> <token>" (role read, write or admin), found ${parts.length} field(s)`);
      continue;
    }
    const [role, token] = parts as [string, string];
    if (!(ROLES as readonly string[]).includes(role)) {
      problems.push(`${at}: the role must be read, write or admin`);
      continue;
    }
    if (token.toLowerCase().startsWith('sha256:')) {
      const hex = token.slice('sha256:'.length).toLowerCase();
      if (!/^[0-9a-f]{64}$/.test(hex)) problems.push(`${at}: sha256: must be followed by 64 hex digits`);
      else entries.push({ role: role as Role, sha256: hex });
      continue;
    }
    if (token.length > MAX_TOKEN_CHARS) problems.push(`${at}: the token is longer than ${MAX_TOKEN_CHARS} characters`);
    else if (!BEARER_TOKEN.test(token))
      problems.push(`${at}: the token has a character no bearer token may have (letters, digits and - . _ ~ + /, then = padding)`);
    else entries.push({ role: role as Role, token });
  }
  if (entries.length > MAX_TOKEN_ENTRIES) problems.push(`holds ${entries.length} tokens; at most ${MAX_TOKEN_ENTRIES}`);
  return { entries, problems };
}
