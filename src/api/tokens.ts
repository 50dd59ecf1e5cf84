// The bearer tokens a node accepts, and their roles: the tokens file's (`--tokens-file`, reloaded
// when it changes) and --admin-token's (role admin, so the preStop and existing installs keep
// working unchanged). Only SHA-256 digests are kept: no token is held in memory after it is read,
// and a file may give a token by its digest alone. A request's token is hashed and compared with
// every digest with timingSafeEqual, whichever matches: the time taken says nothing about which
// entry matched or how much of one did.

import { createHash, timingSafeEqual } from 'node:crypto';
import { type Credential, parseAuthorization } from '../core/admin-access';
import { MAX_TOKEN_CHARS, type Role, roleGrants, type TokenEntry } from '../core/client-access';

interface Entry {
  digest: Buffer;
  role: Role;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

function entryOf(e: TokenEntry): Entry {
  return { digest: 'sha256' in e ? Buffer.from(e.sha256, 'hex') : sha256(e.token), role: e.role };
}

export class TokenRegistry {
  private fileEntries: Entry[] = [];
  private readonly adminEntries: Entry[];
  private all: Entry[];

  constructor(adminTokens: readonly string[]) {
    this.adminEntries = adminTokens.map((token) => entryOf({ role: 'admin', token }));
    this.all = this.adminEntries;
  }

  /** The tokens file's entries (replacing the previous file's). */
  setFileEntries(entries: readonly TokenEntry[]): void {
    this.fileEntries = entries.map(entryOf);
    this.all = [...this.adminEntries, ...this.fileEntries];
  }

  /** How many tokens of each role are known (for the log: never the tokens). */
  counts(): Record<Role, number> {
    const out: Record<Role, number> = { read: 0, write: 0, admin: 0 };
    for (const e of this.all) out[e.role]++;
    return out;
  }

  /** Any token opens /admin/* (the admin guard's "is there a token it could have matched"). */
  hasAdmin(): boolean {
    return this.all.some((e) => e.role === 'admin');
  }

  /** The highest role of the entries `token` matches, undefined when none does. */
  roleOf(token: string): Role | undefined {
    if (token.length > MAX_TOKEN_CHARS) return undefined;
    const given = sha256(token);
    let best: Role | undefined;
    for (const e of this.all) {
      if (timingSafeEqual(e.digest, given) && (best === undefined || roleGrants(e.role, best))) best = e.role;
    }
    return best;
  }
}

/** An Authorization header as the guards see it: its kind, and the role of its token when it has one. */
export function credentialOf(
  registry: TokenRegistry,
  header: string | undefined,
): { kind: Credential['kind'] | 'too-long'; role: Role | undefined } {
  // a token longer than any this node holds is refused without running the header's regex over it
  if (header !== undefined && header.length > MAX_TOKEN_CHARS + 32) return { kind: 'too-long', role: undefined };
  const c = parseAuthorization(header);
  if (c.kind !== 'bearer') return { kind: c.kind, role: undefined };
  if (c.token.length > MAX_TOKEN_CHARS) return { kind: 'too-long', role: undefined };
  return { kind: 'bearer', role: registry.roleOf(c.token) };
}
