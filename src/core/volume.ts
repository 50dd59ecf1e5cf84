// What a node does with the data directory it finds at start: the volume a StatefulSet gives back
// to an ordinal. Pure: the caller reads the directory's meta and carries out the decision.
//
// Volumes outlive their members: a scale-down keeps the removed pods' PersistentVolumeClaims
// (whenScaled: Retain), so that a decommission that did not finish (a member down, the preStop
// refused by the API, a pod that crash-looped and ran no preStop) never deletes the last copy of
// an acknowledged write. A later scale-up gives the same volume back to the same ordinal, and the
// directory's own record of how its membership ended decides what is safe:
//   - it never finished leaving (normal, joining, leaving): its data may be the only copy of some
//     writes, so the node comes back with it, as any restart does (a cut-short join or leave
//     resumes where it stopped);
//   - it finished leaving (removed by its own decommission): every range it held was streamed to
//     the members that took it over before the flip to removed (movement.ts), so nothing on it is
//     unique, while what it holds is old: writes and deletes since went elsewhere, and tombstones
//     it never saw may have been purged, so serving it could bring deleted keys back. It starts
//     empty and joins as a new member;
//   - the cluster removed it (removenode) while this directory was its volume: the others rebuilt
//     its ranges from the remaining replicas, so the same holds. It starts empty too. (Cassandra
//     asks an operator to wipe such a node by hand; here the directory says so itself, and a
//     volume kept by Retain is exactly the case where nobody would think to.)
// Only a directory of another node id is refused: that is a wiring mistake, not a lifecycle.

import type { MemberStatus } from './membership';

/** How a data directory's membership ended, as the node records it in its meta. */
export type LeftBy = 'decommission' | 'removenode';

/** What a data directory records about the node it belongs to (the `node` meta). */
export type VolumeMeta = {
  id: string;
  generation: number;
  memberSince?: number;
} & (
  | { status: Exclude<MemberStatus, 'removed'> | 'undecided' }
  /** It left: when (its decommission finished, or it learned that it was removed) and how. */
  | { status: 'removed'; removedAtMs: number; removedBy: LeftBy }
);

export type VolumeDecision =
  /** No meta: a new directory; the node looks at the cluster and starts one or joins it. */
  | { kind: 'fresh' }
  /** A member's directory (or one that had not decided yet): the node carries on with its data. */
  | { kind: 'resume'; status: MemberStatus | 'undecided' }
  /** The directory of a member that left: clear it, then start as a fresh directory and join. */
  | { kind: 'start-empty'; leftBy: LeftBy; removedAtMs: number; reason: string }
  /** Not this node's directory: refuse to start, saying what to do. */
  | { kind: 'refuse'; reason: string };

export function volumeDecision(meta: VolumeMeta | undefined, id: string): VolumeDecision {
  if (meta === undefined) return { kind: 'fresh' };
  if (meta.id !== id) {
    return {
      kind: 'refuse',
      reason:
        `the data directory belongs to node ${JSON.stringify(meta.id)}, not ${JSON.stringify(id)}: ` +
        'start with that --node-id, or point --data-dir elsewhere',
    };
  }
  if (meta.status === 'removed') {
    const leftBy = meta.removedBy;
    const when = ` on ${new Date(meta.removedAtMs).toISOString()}`;
    const why =
      leftBy === 'decommission'
        ? 'its decommission finished, so every range it held was handed over to the members that took it'
        : 'the cluster removed it (removenode) and rebuilt its ranges from the other replicas';
    return {
      kind: 'start-empty',
      leftBy,
      removedAtMs: meta.removedAtMs,
      reason:
        `this data directory holds the data of ${id} from before it left the cluster${when}: ${why}. ` +
        'That data is old (later writes and deletes went elsewhere) and must not be served: ' +
        'clearing it and joining the cluster as a new member',
    };
  }
  return { kind: 'resume', status: meta.status };
}
