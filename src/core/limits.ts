// Limits on what clients may store (DESIGN §9). Every check returns the reason it failed, so the
// API can say exactly what was wrong.

import { utf8ByteLength } from './hash';
import type { JsonValue } from './record';

/** A key is 1..1024 bytes of UTF-8 (Cassandra allows 64 KiB; nobody needs it and it costs memory). */
export const MAX_KEY_BYTES = 1024;

/** Why `key` is not a valid key, or undefined when it is. */
export function keyProblem(key: string): string | undefined {
  if (key.length === 0) return 'key must not be empty';
  if (!key.isWellFormed()) return 'key is not valid UTF-8 (it contains a lone surrogate)';
  const bytes = utf8ByteLength(key);
  if (bytes > MAX_KEY_BYTES) return `key is ${bytes} bytes of UTF-8; the limit is ${MAX_KEY_BYTES}`;
  return undefined;
}

/** The size a value counts against `maxValueBytes`: its JSON encoding in UTF-8. */
export function valueSizeBytes(value: JsonValue): number {
  return utf8ByteLength(JSON.stringify(value));
}

/**
 * Values nest at most this deep (MongoDB's limit): deeper ones are refused before anything is
 * encoded, because encoding them (JSON.stringify) recurses once per level.
 */
export const MAX_VALUE_DEPTH = 100;

/**
 * Why `value` (parsed from `text`, when given) cannot be stored faithfully, or undefined when it
 * can: nested deeper than MAX_VALUE_DEPTH, or holding a number JSON cannot carry (one that
 * overflows to Infinity, or a non-zero literal that underflows to 0). Numbers are otherwise IEEE
 * 754 doubles, as in JavaScript. Iterative: no input can overflow the stack here.
 */
export function valueProblem(value: unknown, text?: string): string | undefined {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return 'the value holds a number too large for a double (it would be stored as null)';
      continue;
    }
    if (typeof v !== 'object' || v === null) continue;
    if (depth > MAX_VALUE_DEPTH) return `the value nests deeper than ${MAX_VALUE_DEPTH} levels`;
    if (Array.isArray(v)) for (const x of v) stack.push([x, depth + 1]);
    else for (const k in v) stack.push([(v as Record<string, unknown>)[k], depth + 1]);
  }
  return text === undefined ? undefined : underflowIn(text);
}

/** A number literal in JSON `text` that is not zero but parses to 0 (1e-400), if any. */
function underflowIn(text: string): string | undefined {
  // only literals with an exponent or a long run of digits can underflow: skip the scan otherwise
  if (!/[0-9][eE]-|0\.0{300}/.test(text)) return undefined;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) {
      inString = true;
      continue;
    }
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let j = i + 1;
      while (j < text.length && /[0-9eE.+-]/.test(text[j] as string)) j++;
      const literal = text.slice(i, j);
      if (Number(literal) === 0 && /[1-9]/.test(literal.split(/[eE]/)[0] as string)) {
        return `the value holds the number ${literal.length > 40 ? `${literal.slice(0, 40)}...` : literal}, too small for a double (it would be stored as 0)`;
      }
      i = j - 1;
    }
  }
  return undefined;
}
