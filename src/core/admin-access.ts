// Who may use the admin routes (/admin/*: drain, repair, decommission, removenode, move). Pure: the
// API says where a request came from and what its Authorization header held; this decides.
//
// There are two ways in, and each is a setting someone chose:
//   - a bearer token (`--admin-token`, `current[,next]` like the cluster secret: any listed token
//     is accepted, so it rotates the same way; or a token of role admin in `--tokens-file`);
//   - trust in callers on loopback (`--admin-from-loopback`), off unless asked for. "From
//     127.0.0.1" says nothing about who is calling once a service-mesh sidecar sits in front of the
//     node (Istio delivers every inbound connection from 127.0.0.6), so it is for local clusters.
// With neither, the admin routes refuse everything and say which settings would open them. The
// cluster token does not open them: it proves membership to peers, a different concern, held by
// every pod. A refused request is refused before its body is read, so it changes nothing.
//
// Refusals follow RFC 6750: 401 with a `WWW-Authenticate: Bearer` challenge when no bearer token
// came; 403 when one came and is not accepted, or when there is no token it could have matched.

/** 127.0.0.0/8, ::1, and 127.0.0.0/8 as IPv4-mapped IPv6 (how a dual-stack socket reports it). */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4) || address === '::1';
}

export type Credential =
  | { kind: 'none' }
  /** An Authorization header of another scheme (Basic, ...) or a malformed one. */
  | { kind: 'not-bearer' }
  | { kind: 'bearer'; token: string };

/** What an Authorization header holds (RFC 6750 §2.1: the scheme is case-insensitive). */
export function parseAuthorization(header: string | undefined): Credential {
  if (header === undefined || header.trim() === '') return { kind: 'none' };
  const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
  return m ? { kind: 'bearer', token: m[1] as string } : { kind: 'not-bearer' };
}

export interface AdminPolicy {
  /** At least one admin token is configured. */
  tokens: boolean;
  /** --admin-from-loopback. */
  fromLoopback: boolean;
}

export interface AdminRequest {
  remoteAddress: string | undefined;
  credential: Credential['kind'];
  /** The bearer token is one of the configured ones (compared by the caller, in constant time). */
  tokenMatches: boolean;
}

export type AdminVerdict =
  | { allowed: true; via: 'loopback' | 'token' }
  | { allowed: false; status: 401 | 403; code: 'unauthorized' | 'forbidden'; reason: string; challenge: boolean };

const TOKEN_SETTING = '--admin-token (QUORUMKV_ADMIN_TOKEN), or an admin line of --tokens-file';
const LOOPBACK_SETTING = '--admin-from-loopback (QUORUMKV_ADMIN_FROM_LOOPBACK=true)';

export function adminAccess(policy: AdminPolicy, req: AdminRequest): AdminVerdict {
  if (policy.fromLoopback && isLoopback(req.remoteAddress)) return { allowed: true, via: 'loopback' };
  const refuse = (status: 401 | 403, reason: string): AdminVerdict => ({
    allowed: false,
    status,
    code: status === 401 ? 'unauthorized' : 'forbidden',
    reason,
    challenge: status === 401,
  });
  if (!policy.tokens) {
    return refuse(
      403,
      policy.fromLoopback
        ? `this node takes admin requests only from loopback (${LOOPBACK_SETTING}); set ${TOKEN_SETTING} to take them from elsewhere with Authorization: Bearer <token>`
        : `the admin routes are disabled on this node: set ${TOKEN_SETTING} and send Authorization: Bearer <token>, or ${LOOPBACK_SETTING} to trust callers on this host`,
    );
  }
  if (req.credential === 'none')
    return refuse(401, 'the admin routes need Authorization: Bearer <admin token> (the CLI sends $QUORUMKV_ADMIN_TOKEN)');
  if (req.credential === 'not-bearer')
    return refuse(401, 'the Authorization header is not a bearer token: send Authorization: Bearer <admin token>');
  if (!req.tokenMatches) return refuse(403, `the bearer token is not an admin token of this node (${TOKEN_SETTING})`);
  return { allowed: true, via: 'token' };
}
