// Seeded dice for the fuzzer. Every request and every internode connection gets its own generator,
// seeded from (campaign seed, campaign, index): a case is the same bytes whatever ran before it or
// alongside it, so one index replays alone (`npm run fuzz -- --seed S --replay-request I`).

import { tokenOf } from '../../src/core/hash';
import { randomInt, SeededRandom } from '../../src/core/random';

export class Dice {
  private readonly random: SeededRandom;

  constructor(seed: number) {
    this.random = new SeededRandom(seed);
  }

  /** The dice of case `index` of `campaign` in the run seeded `seed`. */
  static forCase(seed: number, campaign: string, index: number): Dice {
    return new Dice(tokenOf(`fuzz:${seed}:${campaign}:${index}`));
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.random.next();
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return randomInt(this.random, lo, hi);
  }

  chance(p: number): boolean {
    return this.random.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)] as T;
  }

  /** One of `options`, each as likely as its weight. */
  weighted<T>(options: ReadonlyArray<readonly [number, T]>): T {
    const total = options.reduce((s, [w]) => s + w, 0);
    let at = this.random.next() * total;
    for (const [w, v] of options) {
      at -= w;
      if (at < 0) return v;
    }
    return (options[options.length - 1] as readonly [number, T])[1];
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.int(0, 255);
    return out;
  }

  /** `n` characters drawn from `alphabet`. */
  text(n: number, alphabet: string): string {
    let out = '';
    for (let i = 0; i < n; i++) out += alphabet[this.int(0, alphabet.length - 1)];
    return out;
  }
}

export const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/**
 * A random JSON value: scalars of every kind (unicode strings, numbers of every size), arrays and
 * objects, at most `depth` levels deep.
 */
export function jsonValue(d: Dice, depth = 3): unknown {
  const kind = depth <= 0 ? d.int(0, 4) : d.int(0, 6);
  switch (kind) {
    case 0:
      return null;
    case 1:
      return d.chance(0.5);
    case 2:
      return d.pick([0, -1, 1.5, 2 ** 53, -(2 ** 31), 1e300, 5e-324, d.int(-1e6, 1e6), d.next()]);
    case 3:
      return unicodeText(d, d.int(0, 20));
    case 4:
      return d.text(d.int(0, 12), ALNUM);
    case 5:
      return Array.from({ length: d.int(0, 4) }, () => jsonValue(d, depth - 1));
    default:
      return Object.fromEntries(Array.from({ length: d.int(0, 4) }, () => [unicodeText(d, d.int(0, 6)), jsonValue(d, depth - 1)]));
  }
}

/** Well-formed text from every plane: ASCII, controls (NUL included), accented letters, CJK, emoji. */
export function unicodeText(d: Dice, n: number): string {
  let out = '';
  for (let i = 0; i < n; i++) {
    const range = d.pick([
      [0x20, 0x7e],
      [0x00, 0x1f],
      [0xa0, 0x24f],
      [0x4e00, 0x9fff],
      [0x1f300, 0x1faff],
      [0xfff0, 0xffff],
    ] as const);
    out += String.fromCodePoint(d.int(range[0], range[1]));
  }
  return out;
}
