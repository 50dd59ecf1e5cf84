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
