// Where each key lives while members join and leave.
//
// Two rings, from the member statuses every node gossips:
//   - `prev`, the ring as it was before the moves under way: normal and leaving members;
//   - `next`, the ring those moves lead to: joining and normal members.
// With no move under way they are the same ring and everything below reduces to plain quorums.
//
// For a key, the `next` preference list is where it is written (every member of it gets the
// write). The replicas in both lists ("stable": they held the key before the move and still will)
// are the only ones read from, and the only ones whose acknowledgements count toward W; a joining
// member (in next only) is sent every write but is not read until it has streamed the key's range
// in, and a leaving one (in prev only) gets no new writes and is not read while it streams its
// ranges out. So a read and a write always meet in the stable replicas, whatever a coordinator
// believes about the move as long as it knows the move has started (the mover confirms that every
// member does before it streams):
//   - before the move, writes had W acks among prev's list; after it, among next's list;
//   - during it, W among the stable ones, which are in both;
//   - a coordinator that still sees the move under way reads R stable replicas, one that sees it
//     done reads R of next's list: either meets any write acknowledged under either view (the
//     mover streamed everything the lists' other members held before it flipped).
// What it costs: for the ranges a move touches, reads and writes need R (W) of the N - 1 stable
// replicas, so one more failure there makes them fail fast with 503 instead of reading stale data.
//
// Pure: computed from the member entries.

import { tokenOf } from './hash';
import type { MemberEntry, MemberStatus } from './membership';
import { Ring } from './ring';

const IN_PREV: ReadonlySet<MemberStatus> = new Set(['normal', 'leaving']);
const IN_NEXT: ReadonlySet<MemberStatus> = new Set(['joining', 'normal']);

export interface Replicas {
  /** Every replica the write goes to: the `next` preference list. */
  write: string[];
  /** Replicas read from, whose write acks count toward W: in both preference lists. */
  stable: string[];
  /** In `next` only: being streamed the key's range (joining, or gaining it from a leaving member). */
  pending: string[];
  /** In `prev` only: losing the key's range (it is leaving, or a joining member displaces it). */
  displaced: string[];
}

export class Placement {
  readonly prev: Ring;
  readonly next: Ring;
  /** Members joining or leaving, by id. */
  readonly moving: ReadonlyMap<string, MemberStatus>;

  constructor(
    entries: ReadonlyArray<Pick<MemberEntry, 'id' | 'status'>>,
    readonly vnodes: number,
    readonly replicationFactor: number,
  ) {
    const prevIds = entries.filter((e) => IN_PREV.has(e.status)).map((e) => e.id);
    const nextIds = entries.filter((e) => IN_NEXT.has(e.status)).map((e) => e.id);
    this.prev = Ring.of(prevIds, vnodes);
    const same = prevIds.length === nextIds.length && prevIds.every((id) => nextIds.includes(id));
    this.next = same ? this.prev : Ring.of(nextIds, vnodes);
    this.moving = new Map(entries.filter((e) => e.status === 'joining' || e.status === 'leaving').map((e) => [e.id, e.status]));
  }

  /** No move under way: one ring. */
  get stable(): boolean {
    return this.prev === this.next;
  }

  replicasForToken(token: number): Replicas {
    const n = this.replicationFactor;
    const write = this.next.preferenceListForToken(token, n);
    if (this.stable) return { write, stable: write, pending: [], displaced: [] };
    const before = this.prev.preferenceListForToken(token, n);
    return {
      write,
      stable: write.filter((id) => before.includes(id)),
      pending: write.filter((id) => !before.includes(id)),
      displaced: before.filter((id) => !write.includes(id)),
    };
  }

  replicas(key: string): Replicas {
    return this.replicasForToken(tokenOf(key));
  }

  /** Equal on every node that sees the same members in the same states (and so computes the same replicas). */
  checksum(): string {
    return this.stable ? this.next.checksum() : `${this.prev.checksum()}>${this.next.checksum()}`;
  }

  /**
   * The ring's ranges (lo, hi], cut at every token of either ring, each with its replicas: one
   * preference list per range in both rings, so a move can be planned range by range.
   */
  ranges(): Array<{ lo: number; hi: number; replicas: Replicas }> {
    const tokens = [...new Set([...this.prev.tokens, ...this.next.tokens])].sort((a, b) => a - b);
    const out: Array<{ lo: number; hi: number; replicas: Replicas }> = [];
    for (let i = 0; i < tokens.length; i++) {
      const lo = tokens[(i - 1 + tokens.length) % tokens.length] as number;
      const hi = tokens[i] as number;
      if (lo === hi && tokens.length > 1) continue;
      out.push({ lo, hi, replicas: this.replicasForToken(hi) });
    }
    return out;
  }
}
