// The member table that gossip spreads (Cassandra's endpoint state, reduced to what quorumkv
// needs). Each node owns its own entry and is the only one to change it; everyone else keeps the
// newest copy they have seen: higher generation (a restart) wins, then higher heartbeat. A
// restarted node (same id, new address, higher generation) replaces its old entry: there is never
// more than one entry per id. Liveness is local: each node runs phi accrual over the arrival times
// of each member's heartbeats, whether they came directly or through other members.
//
// Pure: times are arguments; the node/ layer runs the loops and sends the messages.

import assert from './assert';
import { ArrivalWindow, type Liveness, livenessOf, type PhiOptions } from './phi';

/** What a member publishes about itself. `normal`: a full member of the ring. */
export type MemberStatus = 'normal';

export interface MemberEntry {
  readonly id: string;
  /** host:port of its API and /internal routes. */
  readonly address: string;
  /** Start time (ms) of this incarnation; strictly higher after every restart. */
  readonly generation: number;
  /** Bumped by the member every heartbeat interval while it runs. */
  readonly heartbeat: number;
  readonly status: MemberStatus;
}

export interface Digest {
  readonly id: string;
  readonly generation: number;
  readonly heartbeat: number;
}

/** True when `a` is a newer state of a member than `b`. */
export function isNewer(a: Digest, b: Digest | undefined): boolean {
  if (b === undefined) return true;
  return a.generation > b.generation || (a.generation === b.generation && a.heartbeat > b.heartbeat);
}

export function isMemberEntry(e: unknown): e is MemberEntry {
  if (typeof e !== 'object' || e === null) return false;
  const o = e as Record<string, unknown>;
  return (
    typeof o.id === 'string' &&
    o.id.length > 0 &&
    typeof o.address === 'string' &&
    o.address.length > 0 &&
    Number.isSafeInteger(o.generation) &&
    Number.isSafeInteger(o.heartbeat) &&
    (o.heartbeat as number) >= 0 &&
    o.status === 'normal'
  );
}

export interface MergeResult {
  /** Members seen for the first time. */
  added: MemberEntry[];
  /** Members whose generation went up (restarted), with their previous address. */
  restarted: Array<{ entry: MemberEntry; previousAddress: string }>;
  /** Entries that claim this node's id but are not this incarnation (a duplicate --node-id). */
  impostors: MemberEntry[];
}

export interface MemberView extends MemberEntry {
  liveness: Liveness;
  phi: number;
  /** ms since the last fresh heartbeat arrived here (undefined: never). */
  sinceHeartbeatMs: number | undefined;
}

export interface MembershipOptions extends PhiOptions {
  /** phi at which a member is convicted (down). Cassandra's default: 8. */
  convictThreshold: number;
}

export class MemberTable {
  private selfEntry: MemberEntry;
  private readonly others = new Map<string, MemberEntry>();
  private readonly windows = new Map<string, ArrivalWindow>();
  /** Members that announced a clean shutdown, with the state they announced: down until they move past it. */
  private readonly shutDown = new Map<string, Digest>();

  constructor(
    self: MemberEntry,
    private readonly opts: MembershipOptions,
  ) {
    this.selfEntry = self;
  }

  get selfId(): string {
    return this.selfEntry.id;
  }

  self(): MemberEntry {
    return this.selfEntry;
  }

  /** The heartbeat loop: this node is still running. */
  beat(): void {
    this.selfEntry = { ...this.selfEntry, heartbeat: this.selfEntry.heartbeat + 1 };
  }

  get(id: string): MemberEntry | undefined {
    return id === this.selfEntry.id ? this.selfEntry : this.others.get(id);
  }

  /** Every member, this node included, sorted by id. */
  all(): MemberEntry[] {
    return [this.selfEntry, ...this.others.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  ids(): string[] {
    return this.all().map((m) => m.id);
  }

  size(): number {
    return this.others.size + 1;
  }

  /** The member currently at `address`, if any. */
  byAddress(address: string): MemberEntry | undefined {
    if (this.selfEntry.address === address) return this.selfEntry;
    for (const m of this.others.values()) if (m.address === address) return m;
    return undefined;
  }

  digests(): Digest[] {
    return this.all().map(({ id, generation, heartbeat }) => ({ id, generation, heartbeat }));
  }

  /**
   * Push-pull: given a peer's digests, the entries this node should send (it has them newer, or
   * the peer lacks them) and the ids it should ask for (the peer has them newer). At most
   * `maxEntries` entries are sent per message; the rest go in later rounds.
   */
  diff(remote: readonly Digest[], maxEntries: number): { send: MemberEntry[]; want: string[] } {
    const theirs = new Map(remote.map((d) => [d.id, d]));
    const send: MemberEntry[] = [];
    const want: string[] = [];
    for (const mine of this.all()) {
      if (isNewer(mine, theirs.get(mine.id)) && send.length < maxEntries) send.push(mine);
    }
    for (const d of remote) {
      if (isNewer(d, this.get(d.id))) want.push(d.id);
    }
    return { send, want };
  }

  /** Entries for the ids a peer asked for (that this node has). */
  entries(ids: readonly string[]): MemberEntry[] {
    const out: MemberEntry[] = [];
    for (const id of ids) {
      const e = this.get(id);
      if (e) out.push(e);
    }
    return out;
  }

  /** Keeps every entry that is newer than what this node had; a fresh heartbeat counts as an arrival. */
  merge(entries: readonly MemberEntry[], nowMs: number): MergeResult {
    const result: MergeResult = { added: [], restarted: [], impostors: [] };
    for (const e of entries) {
      if (e.id === this.selfEntry.id) {
        if (e.generation !== this.selfEntry.generation || e.address !== this.selfEntry.address) {
          if (isNewer(e, this.selfEntry)) result.impostors.push(e);
        }
        continue;
      }
      const known = this.others.get(e.id);
      if (!isNewer(e, known)) continue;
      this.others.set(e.id, e);
      const notice = this.shutDown.get(e.id);
      if (notice && isNewer(e, notice)) this.shutDown.delete(e.id); // it is running again
      if (!known) {
        result.added.push(e);
        this.windows.set(e.id, new ArrivalWindow(this.opts));
      } else if (e.generation > known.generation) {
        result.restarted.push({ entry: e, previousAddress: known.address });
        this.windows.set(e.id, new ArrivalWindow(this.opts)); // a new process: forget the old rhythm
      }
      this.windows.get(e.id)?.heartbeat(nowMs);
    }
    return result;
  }

  /**
   * Members remembered from disk at start-up: in the ring at once, heartbeat 0 so any gossip about
   * them is newer. Their failure clocks start now: one that never speaks is convicted in time.
   */
  restore(entries: readonly Omit<MemberEntry, 'heartbeat' | 'status'>[], nowMs: number): void {
    for (const e of entries) {
      if (e.id === this.selfEntry.id || this.others.has(e.id)) continue;
      this.others.set(e.id, { ...e, heartbeat: 0, status: 'normal' });
      const w = new ArrivalWindow(this.opts);
      w.heartbeat(nowMs);
      this.windows.set(e.id, w);
    }
  }

  /**
   * A member said it is shutting down cleanly (Cassandra's shutdown notice): it counts as down at
   * once instead of after phi convicts it, until gossip shows it past the announced state.
   */
  markShutdown(notice: Digest): boolean {
    const known = this.others.get(notice.id);
    if (!known || isNewer(known, notice)) return false; // stale notice: it already moved on
    this.shutDown.set(notice.id, notice);
    return true;
  }

  phi(id: string, nowMs: number): number {
    if (id === this.selfEntry.id) return 0;
    return this.windows.get(id)?.phi(nowMs) ?? 0;
  }

  liveness(id: string, nowMs: number): Liveness {
    if (id === this.selfEntry.id) return 'alive';
    if (this.shutDown.has(id)) return 'down';
    return livenessOf(this.phi(id, nowMs), this.opts.convictThreshold);
  }

  view(nowMs: number): MemberView[] {
    return this.all().map((m) => {
      const last = m.id === this.selfEntry.id ? nowMs : this.windows.get(m.id)?.lastArrivalMs();
      const phi = this.phi(m.id, nowMs);
      return {
        ...m,
        liveness: this.liveness(m.id, nowMs),
        phi,
        sinceHeartbeatMs: last === undefined ? undefined : nowMs - last,
      };
    });
  }

  /** Checks the table's own invariants (one entry per id, none of them this node's). */
  assertValid(): void {
    assert(!this.others.has(this.selfEntry.id), 'the table holds no second entry for this node');
    for (const [id, e] of this.others) assert(id === e.id, 'entries are keyed by their id');
  }
}
