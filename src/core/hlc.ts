// Hybrid logical clock versions (Kulkarni et al., "Logical Physical Clocks", 2014).
//
// A version is (wallMs, counter, nodeId). It is close to physical time, strictly increases on
// one node, and never falls behind a version the node has seen: a coordinator whose wall clock
// is slow still issues versions newer than the writes it has already observed, so it cannot
// lose its own later write to a replica's older one. Pure: the physical time is an argument.

export interface Version {
  /** Milliseconds since the epoch, as the issuing HLC saw it (physical or advanced by others). */
  readonly wallMs: number;
  /** Orders versions issued within the same wallMs. */
  readonly counter: number;
  /** The coordinator that issued it: makes versions from different nodes distinct. */
  readonly nodeId: string;
}

/** Total order on versions: wall time, then counter, then node id. */
export function compareVersions(a: Version, b: Version): -1 | 0 | 1 {
  if (a.wallMs !== b.wallMs) return a.wallMs < b.wallMs ? -1 : 1;
  if (a.counter !== b.counter) return a.counter < b.counter ? -1 : 1;
  if (a.nodeId !== b.nodeId) return a.nodeId < b.nodeId ? -1 : 1;
  return 0;
}

/** `1732252800123.4@n1`: what the public API shows; `parseVersion` reverses it. */
export function formatVersion(v: Version): string {
  return `${v.wallMs}.${v.counter}@${v.nodeId}`;
}

export function parseVersion(s: string): Version | undefined {
  const m = /^(\d+)\.(\d+)@(.+)$/.exec(s);
  if (!m) return undefined;
  return { wallMs: Number(m[1]), counter: Number(m[2]), nodeId: m[3] as string };
}

export function isVersion(v: unknown): v is Version {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return (
    Number.isSafeInteger(o.wallMs) &&
    (o.wallMs as number) >= 0 &&
    Number.isSafeInteger(o.counter) &&
    (o.counter as number) >= 0 &&
    typeof o.nodeId === 'string' &&
    o.nodeId.length > 0
  );
}

export class Hlc {
  private wallMs = 0;
  private counter = 0;

  constructor(private readonly nodeId: string) {}

  /** A new version for a local event (a write this node coordinates). */
  now(physicalMs: number): Version {
    if (physicalMs > this.wallMs) {
      this.wallMs = physicalMs;
      this.counter = 0;
    } else {
      this.counter += 1;
    }
    return { wallMs: this.wallMs, counter: this.counter, nodeId: this.nodeId };
  }

  /** Advance past a version received from elsewhere, so later local versions order after it. */
  observe(remote: Version, physicalMs: number): void {
    const wall = Math.max(this.wallMs, remote.wallMs, physicalMs);
    if (wall === this.wallMs && wall === remote.wallMs) {
      this.counter = Math.max(this.counter, remote.counter);
    } else if (wall === remote.wallMs) {
      this.counter = remote.counter;
    } else if (wall !== this.wallMs) {
      this.counter = 0;
    }
    this.wallMs = wall;
  }

  /** The last version issued or observed, for diagnostics. */
  peek(): { wallMs: number; counter: number } {
    return { wallMs: this.wallMs, counter: this.counter };
  }
}
