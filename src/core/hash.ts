// Token hashing: murmur3 x86 32-bit over the UTF-8 bytes of a string.
//
// murmurhash3js reads `charCodeAt(i) & 0xff`, which would fold every non-ASCII UTF-16 unit to one
// byte; we hand it a "binary string" (one char per UTF-8 byte) so the token is the real murmur3
// of the key's bytes, the same any other implementation would compute.

import murmurhash3js from 'murmurhash3js';

/** Ring tokens are unsigned 32-bit integers: 0 .. MAX_TOKEN. */
export const TOKEN_SPACE = 2 ** 32;
export const MAX_TOKEN = TOKEN_SPACE - 1;

/** A value that may stand for a ring token (messages and requests are checked with this). */
export function isToken(t: unknown): t is number {
  return Number.isInteger(t) && (t as number) >= 0 && (t as number) <= MAX_TOKEN;
}

const encoder = new TextEncoder();

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

function toByteString(s: string): string {
  if (isAscii(s)) return s;
  const bytes = encoder.encode(s);
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += String.fromCharCode(bytes[i] as number);
  return out;
}

/** The ring token of a key or vnode name: an unsigned 32-bit integer. */
export function tokenOf(s: string): number {
  return murmurhash3js.x86.hash32(toByteString(s)) >>> 0;
}

/** Number of bytes `s` takes in UTF-8, without allocating. Lone surrogates count as U+FFFD (3). */
export function utf8ByteLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}
