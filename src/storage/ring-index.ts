// Ring-ordered access for the in-memory stores: keys sorted by (token, key), kept up to date
// lazily, and the token-range arithmetic every Store shares.

import assert from '../core/assert';
import { isToken, MAX_TOKEN, tokenOf } from '../core/hash';

export { MAX_TOKEN };

/** The inclusive token intervals that make up the ring range (fromToken, toToken], in ring order. */
export function ringSegments(fromToken: number, toToken: number): Array<readonly [number, number]> {
  assert(isToken(fromToken) && isToken(toToken), `a token range is two integers in [0, 2^32): got (${fromToken}, ${toToken}]`);
  if (fromToken < toToken) return [[fromToken + 1, toToken]];
  // wraps past the top of the ring (fromToken === toToken: all of it, starting after fromToken)
  const out: Array<readonly [number, number]> = [];
  if (fromToken < MAX_TOKEN) out.push([fromToken + 1, MAX_TOKEN]);
  out.push([0, toToken]);
  return out;
}

/**
 * Orders keys as their UTF-8 bytes do (what LMDB sorts by), so every store lists a token's keys in
 * the same order. JS compares UTF-16 units, which puts surrogates (code points above U+FFFF) below
 * U+E000..U+FFFF; UTF-8 puts them above. Keys are well-formed (the API rejects lone surrogates).
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800) x += x < 0xe000 ? 0x2000 : -0x800;
    if (y >= 0xd800) y += y < 0xe000 ? 0x2000 : -0x800;
    return x - y;
  }
  return a.length - b.length;
}

/** Where the index gets the keys of the store's view: whether one is there, and all of them. */
export interface KeySource {
  has(key: string): boolean;
  keys(): Iterable<string>;
}

/**
 * Keys sorted by (token, key) for binary-searched ranges. Sorting is deferred to the next read and
 * done only when keys were added: a read after writes to existing keys costs nothing extra, and one
 * after k new keys costs O(k log k + n) (sort the new ones, merge). A key that left the view stays
 * in the array until then, so range() may list it: the caller skips keys it no longer has.
 */
export class RingIndex {
  private keys: string[] = [];
  /** tokens[i] is tokenOf(keys[i]): the binary search reads this array. */
  private tokens: number[] = [];
  private added: string[] = [];
  /**
   * Keys that left the view since the last sort. Every other key in the array is still there, so
   * the merge asks the source only about these (asking about all of them, a Map lookup each, was
   * most of the cost: 85 ms a merge at 200k keys, cache misses).
   */
  private removed = new Set<string>();
  private rebuild = false;

  constructor(private readonly source: KeySource) {}

  /** `key` entered the view (it was absent before). Adding one twice is harmless. */
  noteAdded(key: string): void {
    this.added.push(key);
  }

  /** `key` left the view. */
  noteRemoved(key: string): void {
    this.removed.add(key);
  }

  /** The view changed wholesale (a crash dropped the writes in flight): rebuild from the source. */
  reset(): void {
    this.rebuild = true;
    this.added = [];
    this.removed = new Set();
  }

  /**
   * Keys whose token is in (fromToken, toToken] (see Store.range), in ring order; among them may be
   * keys that have left the view since the last sort.
   */
  range(fromToken: number, toToken: number): Iterable<string> {
    return this.scan(ringSegments(fromToken, toToken));
  }

  private *scan(segments: ReadonlyArray<readonly [number, number]>): Generator<string> {
    this.refresh();
    // a refresh replaces the arrays rather than mutating them, so this iteration is unaffected by writes
    const { keys, tokens } = this;
    for (const [lo, hi] of segments) {
      for (let i = lowerBound(tokens, lo); i < tokens.length && (tokens[i] as number) <= hi; i++) yield keys[i] as string;
    }
  }

  private refresh(): void {
    if (this.rebuild) {
      this.rebuild = false;
      this.setSorted(sortByRing(this.source.keys()));
      return;
    }
    // departed keys are only skipped until then; compact once they could be half the array
    if (this.added.length === 0 && this.removed.size * 2 <= this.keys.length) return;
    const fresh = sortByRing(this.added);
    const removed = this.removed;
    this.added = [];
    this.removed = new Set();
    const oldKeys = this.keys;
    const oldTokens = this.tokens;
    const keys: string[] = [];
    const tokens: number[] = [];
    let last: string | undefined;
    let i = 0;
    let j = 0;
    while (i < oldKeys.length || j < fresh.length) {
      let k: string;
      let t: number;
      const neu = fresh[j];
      if (i < oldKeys.length && (neu === undefined || compareRing(oldTokens[i] as number, oldKeys[i] as string, neu.t, neu.k) <= 0)) {
        k = oldKeys[i] as string;
        t = oldTokens[i] as number;
        i++;
      } else {
        const n = neu as { k: string; t: number };
        k = n.k;
        t = n.t;
        j++;
      }
      // a key removed then added again is both in the array and among the new ones: keep one
      if (k === last || (removed.size > 0 && removed.has(k) && !this.source.has(k))) continue;
      keys.push(k);
      tokens.push(t);
      last = k;
    }
    this.keys = keys;
    this.tokens = tokens;
  }

  private setSorted(sorted: Array<{ k: string; t: number }>): void {
    this.added = [];
    this.removed = new Set();
    this.keys = sorted.map((e) => e.k);
    this.tokens = sorted.map((e) => e.t);
  }
}

function compareRing(ta: number, a: string, tb: number, b: string): number {
  return ta - tb || compareKeys(a, b);
}

function sortByRing(keys: Iterable<string>): Array<{ k: string; t: number }> {
  const out = [...keys].map((k) => ({ k, t: tokenOf(k) }));
  out.sort((a, b) => compareRing(a.t, a.k, b.t, b.k));
  return out;
}

/** First index whose token is >= `token` (tokens.length when none). */
function lowerBound(tokens: readonly number[], token: number): number {
  let lo = 0;
  let hi = tokens.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((tokens[mid] as number) < token) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
