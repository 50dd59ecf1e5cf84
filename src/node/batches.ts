// Records sent in one internal message (write-batch, a streamed page) are bounded in bytes, not
// only in count: a peer refuses an internal body larger than the biggest value plus 64 KiB, so a
// batch of many large values would be refused every time it was retried. One record always fits.

import { LIMITS } from '../core/defaults';
import { utf8ByteLength } from '../core/hash';
import type { StoredRecord } from '../core/record';

/** Bytes of records per internal message, at most (a single larger record goes alone). */
export const MAX_BATCH_BYTES = LIMITS.maxBatchBytes;

/** What a record costs on the wire as JSON, in UTF-8 bytes, with room for the array around it. */
export function recordBytes(key: string, record: StoredRecord): number {
  return utf8ByteLength(key) + utf8ByteLength(JSON.stringify(record)) + 8;
}

/** Splits `items` into consecutive batches of at most `maxBytes` (each with at least one item). */
export function byteBatches<T>(items: readonly T[], sizeOf: (item: T) => number, maxBytes = MAX_BATCH_BYTES): T[][] {
  const out: T[][] = [];
  let batch: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = sizeOf(item);
    if (batch.length > 0 && bytes + size > maxBytes) {
      out.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(item);
    bytes += size;
  }
  if (batch.length > 0) out.push(batch);
  return out;
}
