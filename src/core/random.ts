// Seeded randomness (mulberry32): the same seed gives the same sequence, in production and in the
// simulator. Production seeds it from the OS; the simulator from the run's seed.

export interface Random {
  /** Uniform in [0, 1). */
  next(): number;
}

export class SeededRandom implements Random {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/** An integer in [lo, hi]. */
export function randomInt(random: Random, lo: number, hi: number): number {
  return lo + Math.floor(random.next() * (hi - lo + 1));
}

/** `ms` spread by ±`fraction` (jitter for retry loops, so restarted nodes do not move in step). */
export function jittered(random: Random, ms: number, fraction = 0.2): number {
  return Math.round(ms * (1 - fraction + 2 * fraction * random.next()));
}
