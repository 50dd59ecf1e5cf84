// The consistent-hash ring (Dynamo §4.2, Cassandra vnodes).
//
// Every member owns `vnodes` tokens derived from its id alone (`tokenOf("<id>#<i>")`), so any two
// nodes that agree on the member ids compute the same ring without exchanging tokens. A vnode at
// token t owns the range (previous token, t]; the preference list of a key walks clockwise from
// the key's token and collects the first N distinct members.

import assert from './assert';
import { TOKEN_SPACE, tokenOf } from './hash';

/** Every ring a process builds for the same member ids hashes the same vnode names: once is enough. */
const tokenCache = new Map<string, readonly number[]>();
const TOKEN_CACHE_MEMBERS = 4096;

/** The tokens of member `id`'s vnodes: `tokenOf("<id>#<i>")` for i < vnodes. */
function vnodeTokens(id: string, vnodes: number): readonly number[] {
  const k = `${vnodes}|${id}`;
  let tokens = tokenCache.get(k);
  if (tokens === undefined) {
    tokens = Array.from({ length: vnodes }, (_, i) => tokenOf(`${id}#${i}`));
    if (tokenCache.size >= TOKEN_CACHE_MEMBERS) tokenCache.clear();
    tokenCache.set(k, tokens);
  }
  return tokens;
}

/** Rings recently built, by vnodes and member ids: membership recomputes placements often, from the same members. */
const ringCache = new Map<string, Ring>();
const RING_CACHE_SIZE = 64;

export class Ring {
  /**
   * The ring of these members (the same object for the same members and vnodes while cached; a
   * Ring never changes once built).
   */
  static of(memberIds: Iterable<string>, vnodes: number): Ring {
    const members = [...new Set(memberIds)].sort();
    const k = `${vnodes}|${members.join('\u0000')}`;
    let ring = ringCache.get(k);
    if (ring === undefined) {
      ring = new Ring(members, vnodes);
      if (ringCache.size >= RING_CACHE_SIZE) ringCache.delete(ringCache.keys().next().value as string);
      ringCache.set(k, ring);
    }
    return ring;
  }

  /** Sorted ascending; ties (hash collisions) broken by owner id so the order is total. */
  readonly tokens: Uint32Array;
  /** owners[i] is the member that owns tokens[i]. */
  readonly owners: readonly string[];
  readonly members: readonly string[];

  constructor(
    memberIds: Iterable<string>,
    readonly vnodes: number,
  ) {
    assert(Number.isInteger(vnodes) && vnodes >= 1, `vnodes must be a positive integer, got ${vnodes}`);
    const members = [...new Set(memberIds)].sort();
    const entries: Array<{ token: number; owner: string }> = [];
    for (const id of members) for (const token of vnodeTokens(id, vnodes)) entries.push({ token, owner: id });
    entries.sort((a, b) => a.token - b.token || (a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0));
    this.tokens = Uint32Array.from(entries, (e) => e.token);
    this.owners = entries.map((e) => e.owner);
    this.members = members;
  }

  get size(): number {
    return this.members.length;
  }

  /** Index of the vnode that owns `token`: the first vnode token >= token, wrapping to 0. */
  ownerIndex(token: number): number {
    let lo = 0;
    let hi = this.tokens.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.tokens[mid] as number) < token) lo = mid + 1;
      else hi = mid;
    }
    return lo === this.tokens.length ? 0 : lo;
  }

  /** The first `n` distinct members clockwise from `token` (fewer if the ring has fewer). */
  preferenceListForToken(token: number, n: number): string[] {
    const out: string[] = [];
    const want = Math.min(n, this.members.length);
    if (want === 0) return out;
    const start = this.ownerIndex(token);
    for (let step = 0; step < this.owners.length && out.length < want; step++) {
      const owner = this.owners[(start + step) % this.owners.length] as string;
      if (!out.includes(owner)) out.push(owner);
    }
    assert(out.length === want, 'a preference list holds min(n, members) distinct members');
    return out;
  }

  preferenceList(key: string, n: number): string[] {
    return this.preferenceListForToken(tokenOf(key), n);
  }

  /**
   * Identifies the ring: equal on every node that computed it from the same members and vnodes.
   * Hashes the member ids and the vnode count (tokens follow from them).
   */
  checksum(): string {
    this.checksumText ??= tokenOf(`${this.vnodes}|${this.members.join(',')}`)
      .toString(16)
      .padStart(8, '0');
    return this.checksumText;
  }

  private checksumText: string | undefined;

  /** Fraction of the token space for which each member is one of the `n` replicas (sums to min(n, size)). */
  replicaOwnership(n: number): Map<string, number> {
    const share = new Map<string, number>(this.members.map((m) => [m, 0]));
    const count = this.tokens.length;
    for (let i = 0; i < count; i++) {
      const prev = this.tokens[(i - 1 + count) % count] as number;
      const cur = this.tokens[i] as number;
      const width = count === 1 ? TOKEN_SPACE : (cur - prev + TOKEN_SPACE) % TOKEN_SPACE;
      // every token in (prev, cur] has the preference list that starts at vnode i
      for (const id of this.preferenceListForToken(cur, n)) share.set(id, (share.get(id) ?? 0) + width / TOKEN_SPACE);
    }
    return share;
  }

  /** Fraction of the token space for which each member is the first (primary) replica. */
  primaryOwnership(): Map<string, number> {
    const share = new Map<string, number>(this.members.map((m) => [m, 0]));
    const count = this.tokens.length;
    for (let i = 0; i < count; i++) {
      const prev = this.tokens[(i - 1 + count) % count] as number;
      const cur = this.tokens[i] as number;
      const width = count === 1 ? TOKEN_SPACE : (cur - prev + TOKEN_SPACE) % TOKEN_SPACE;
      const owner = this.owners[i] as string;
      share.set(owner, (share.get(owner) ?? 0) + width / TOKEN_SPACE);
    }
    return share;
  }
}
