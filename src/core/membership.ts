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

/**
 * Where a member stands in the ring (see core/placement.ts for what each means to reads and writes):
 * - `joining`: takes writes for the ranges it will own while it streams them in; not read from yet;
 * - `normal`: a full replica;
 * - `leaving`: streaming its ranges out to their next owners; takes no new writes, not read from;
 * - `removed`: left the cluster (decommissioned, or removed by `removenode`). Final for this
 *   incarnation: kept in the table so that no stale gossip brings the member back.
 */
export type MemberStatus = 'joining' | 'normal' | 'leaving' | 'removed';
export const MEMBER_STATUSES: readonly MemberStatus[] = ['joining', 'normal', 'leaving', 'removed'];

/**
 * A status another member publishes on behalf of a dead one (`removenode`) must win over anything
 * the dead incarnation said: its heartbeat jumps this far (about 31 years of 1 s beats), and the
 * final `removed` takes the largest heartbeat there is.
 */
export const PROXY_HEARTBEAT_BUMP = 1_000_000_000;
export const FINAL_HEARTBEAT = Number.MAX_SAFE_INTEGER;

export interface MemberEntry {
  readonly id: string;
  /** host:port of its API and /internal routes. */
  readonly address: string;
  /** Start time (ms) of this incarnation; strictly higher after every restart. */
  readonly generation: number;
  /** Bumped by the member every heartbeat interval while it runs. */
  readonly heartbeat: number;
  readonly status: MemberStatus;
  /** Share (0..1) of the current join or decommission's streaming done, while joining or leaving. */
  readonly progress?: number;
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
    MEMBER_STATUSES.includes(o.status as MemberStatus) &&
    (o.progress === undefined || (typeof o.progress === 'number' && o.progress >= 0 && o.progress <= 1))
  );
}

export interface MergeResult {
  /** Members seen for the first time. */
  added: MemberEntry[];
  /** Members whose generation went up (restarted), with their previous address. */
  restarted: Array<{ entry: MemberEntry; previousAddress: string }>;
  /** Entries that claim this node's id but are not this incarnation (a duplicate --node-id). */
  impostors: MemberEntry[];
  /** Members whose status changed (joining, normal, leaving, removed), with the status before. */
  statusChanged: Array<{ entry: MemberEntry; previous: MemberStatus }>;
  /**
   * Entries refused because the member was removed and they do not come from a fresh join: a
   * node back on the volume of a member that left must not rejoin with its stale data.
   */
  refused: MemberEntry[];
  /** This node's id was removed from the cluster (an earlier incarnation's, or this one's). */
  selfRemoved: MemberEntry | undefined;
}

/**
 * A removed member stays removed: a newer entry for its id is taken only from a fresh incarnation
 * that joins from scratch (a new generation, status joining), or is itself a removal.
 */
function acceptable(incoming: MemberEntry, known: MemberEntry | undefined): boolean {
  if (known?.status !== 'removed') return true;
  if (incoming.status === 'removed') return true;
  return incoming.status === 'joining' && incoming.generation > known.generation;
}

/**
 * Why a member counts as down: it left the cluster (`removed`), it announced its own clean
 * shutdown (`stopped`), or the failure detector convicted it (`convicted`: phi at the threshold).
 */
export type DownReason = 'removed' | 'stopped' | 'convicted';

export interface MemberView extends MemberEntry {
  liveness: Liveness;
  /** Set when `liveness` is `down`. */
  downReason?: DownReason;
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

  /** This node's status changes: a new heartbeat carries it, so gossip spreads it as news. */
  setStatus(status: MemberStatus, progress?: number): MemberEntry {
    const { progress: _old, ...rest } = this.selfEntry;
    this.selfEntry = { ...rest, status, heartbeat: this.selfEntry.heartbeat + 1, ...(progress === undefined ? {} : { progress }) };
    return this.selfEntry;
  }

  /** Streaming progress of this node's move; rides along with the next heartbeat. */
  setProgress(progress: number): void {
    this.selfEntry = { ...this.selfEntry, progress: Math.max(0, Math.min(1, progress)) };
  }

  /**
   * `removenode`: publishes a status on behalf of a member that is down for good. Its heartbeat
   * jumps past anything the dead incarnation said (`removed` is final for that incarnation).
   */
  setStatusOf(id: string, status: 'leaving' | 'removed', nowMs: number): MemberEntry {
    const known = this.others.get(id);
    assert(known !== undefined && id !== this.selfEntry.id, 'a proxy status is for another known member');
    const heartbeat = status === 'removed' ? FINAL_HEARTBEAT : Math.min(FINAL_HEARTBEAT - 1, known.heartbeat + PROXY_HEARTBEAT_BUMP);
    const { progress: _old, ...rest } = known;
    const entry: MemberEntry = { ...rest, status, heartbeat: Math.max(heartbeat, known.heartbeat) };
    this.merge([entry], nowMs);
    return this.others.get(id) as MemberEntry;
  }

  get(id: string): MemberEntry | undefined {
    return id === this.selfEntry.id ? this.selfEntry : this.others.get(id);
  }

  /** Every entry, this node's and removed members' included, sorted by id (what gossip spreads). */
  all(): MemberEntry[] {
    return [this.selfEntry, ...this.others.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** The members that have not been removed, this node included (unless it was), sorted by id. */
  members(): MemberEntry[] {
    return this.all().filter((m) => m.status !== 'removed');
  }

  ids(): string[] {
    return this.members().map((m) => m.id);
  }

  /** Members not removed. */
  size(): number {
    return this.members().length;
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
      const their = theirs.get(mine.id);
      // A removal is sent even to a peer with a newer entry for that id: the peer may be that very
      // member back on its old volume, which must learn that it was removed (and stop).
      const removal =
        mine.status === 'removed' && their !== undefined && (their.generation !== mine.generation || their.heartbeat !== mine.heartbeat);
      if ((isNewer(mine, their) || removal) && send.length < maxEntries) send.push(mine);
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
    const result: MergeResult = { added: [], restarted: [], impostors: [], statusChanged: [], refused: [], selfRemoved: undefined };
    for (const e of entries) {
      if (e.id === this.selfEntry.id) {
        if (e.status === 'removed') result.selfRemoved = e;
        else if (e.generation !== this.selfEntry.generation || e.address !== this.selfEntry.address) {
          if (isNewer(e, this.selfEntry)) result.impostors.push(e);
        }
        continue;
      }
      const known = this.others.get(e.id);
      if (!isNewer(e, known)) continue;
      if (!acceptable(e, known)) {
        result.refused.push(e);
        continue;
      }
      this.others.set(e.id, e);
      if (known && known.status !== e.status) result.statusChanged.push({ entry: e, previous: known.status });
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
  restore(entries: readonly Omit<MemberEntry, 'heartbeat'>[], nowMs: number): void {
    for (const e of entries) {
      if (e.id === this.selfEntry.id || this.others.has(e.id)) continue;
      // a removal is final: remembered with the heartbeat that makes it so
      const { status } = e;
      this.others.set(e.id, {
        id: e.id,
        address: e.address,
        generation: e.generation,
        status,
        heartbeat: status === 'removed' ? FINAL_HEARTBEAT : 0,
      });
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
    if (this.shutDown.has(id) || this.others.get(id)?.status === 'removed') return 'down';
    return livenessOf(this.phi(id, nowMs), this.opts.convictThreshold);
  }

  /** Why `id` is down; undefined while it is not. */
  downReason(id: string, nowMs: number): DownReason | undefined {
    if (id === this.selfEntry.id) return undefined;
    if (this.others.get(id)?.status === 'removed') return 'removed';
    if (this.shutDown.has(id)) return 'stopped';
    return livenessOf(this.phi(id, nowMs), this.opts.convictThreshold) === 'down' ? 'convicted' : undefined;
  }

  view(nowMs: number): MemberView[] {
    return this.all().map((m) => {
      const last = m.id === this.selfEntry.id ? nowMs : this.windows.get(m.id)?.lastArrivalMs();
      const phi = this.phi(m.id, nowMs);
      const downReason = this.downReason(m.id, nowMs);
      return {
        ...m,
        liveness: downReason === undefined ? livenessOf(phi, this.opts.convictThreshold) : 'down',
        ...(downReason === undefined ? {} : { downReason }),
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
