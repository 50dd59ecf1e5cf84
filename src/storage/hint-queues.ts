// Hint ids, and the in-memory hint queues of MemoryStore and SimStore.
//
// An id is `target ␀ createdAtMs (15 digits) ␀ seq (16 digits)`: string order, and UTF-8 byte order
// (LMDB's), is then (target, createdAtMs, seq), so a target's hints are one contiguous run, oldest
// first, and `seq` (one counter per store, only ever growing) breaks ties in the order hints were
// added. 15 digits of ms last until the year 33658; 16 of seq hold any safe integer.

import assert from '../core/assert';
import type { Hint } from './store';

const MS_DIGITS = 15;
const SEQ_DIGITS = 16;
const SEP = '\u0000';
const DIGITS = /^[0-9]+$/;

export function hintId(target: string, createdAtMs: number, seq: number): string {
  return `${target}${SEP}${String(createdAtMs).padStart(MS_DIGITS, '0')}${SEP}${String(seq).padStart(SEQ_DIGITS, '0')}`;
}

/** The parts of an id this module made; undefined for anything else (callers ignore unknown ids). */
export function parseHintId(id: string): { target: string; createdAtMs: number; seq: number } | undefined {
  const seqAt = id.length - SEQ_DIGITS;
  const msAt = seqAt - 1 - MS_DIGITS;
  if (msAt < 1 || id[seqAt - 1] !== SEP || id[msAt - 1] !== SEP) return undefined;
  const msText = id.slice(msAt, seqAt - 1);
  const seqText = id.slice(seqAt);
  if (!DIGITS.test(msText) || !DIGITS.test(seqText)) return undefined;
  const createdAtMs = Number(msText);
  const seq = Number(seqText);
  if (!Number.isSafeInteger(seq)) return undefined;
  return { target: id.slice(0, msAt - 1), createdAtMs, seq };
}

/** The first id a target's hints can have, and the first past them: the bounds of its run. */
export function hintIdBounds(target: string): { start: string; end: string } {
  return { start: `${target}${SEP}`, end: `${target}\u0001` };
}

/** Gives `h` its id; throws on what the id could not order (a target with ␀, a negative time). */
export function makeHint(h: Omit<Hint, 'id'>, seq: number): Hint {
  assert(!h.target.includes(SEP), 'a hint target (a node id) has no NUL: ids use it as the separator');
  assert(
    Number.isSafeInteger(h.createdAtMs) && h.createdAtMs >= 0 && h.createdAtMs < 10 ** MS_DIGITS,
    `a hint's createdAtMs is whole ms since the epoch: got ${h.createdAtMs}`,
  );
  assert(Number.isSafeInteger(seq) && seq >= 0, 'hint seq is a safe integer');
  return { id: hintId(h.target, h.createdAtMs, seq), target: h.target, key: h.key, record: h.record, createdAtMs: h.createdAtMs };
}

interface Queue {
  /** In id order whenever `sorted`; Map keeps insertion order, so appends in id order keep it. */
  hints: Map<string, Hint>;
  lastId: string;
  sorted: boolean;
}

/** Per-target queues in id order, with counts at hand. */
export class HintQueues {
  private readonly queues = new Map<string, Queue>();
  private total = 0;

  static of(hints: Iterable<Hint>): HintQueues {
    const q = new HintQueues();
    for (const h of hints) q.add(h);
    return q;
  }

  add(h: Hint): void {
    let q = this.queues.get(h.target);
    if (q === undefined) {
      q = { hints: new Map(), lastId: h.id, sorted: true };
      this.queues.set(h.target, q);
    }
    if (q.hints.has(h.id)) return;
    // createdAtMs comes from a clock that can step back: then the queue needs a sort before a read
    if (h.id < q.lastId) q.sorted = false;
    else q.lastId = h.id;
    q.hints.set(h.id, h);
    this.total++;
  }

  /** True when it was there. */
  remove(id: string): boolean {
    const parsed = parseHintId(id);
    if (parsed === undefined) return false;
    const q = this.queues.get(parsed.target);
    if (q === undefined || !q.hints.delete(id)) return false;
    this.total--;
    if (q.hints.size === 0) this.queues.delete(parsed.target);
    return true;
  }

  list(target: string, limit: number): Hint[] {
    const q = this.queues.get(target);
    const out: Hint[] = [];
    if (q === undefined) return out;
    if (!q.sorted) {
      q.hints = new Map([...q.hints].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      q.lastId = [...q.hints.keys()].pop() as string;
      q.sorted = true;
    }
    for (const h of q.hints.values()) {
      if (out.length >= limit) break;
      out.push(h);
    }
    return out;
  }

  count(target?: string): number {
    if (target === undefined) return this.total;
    return this.queues.get(target)?.hints.size ?? 0;
  }

  targets(): string[] {
    return [...this.queues.keys()].sort();
  }
}
