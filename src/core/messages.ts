// The internode protocol: plain data. `node/` answers them; `net/` carries them.

import type { Digest, MemberEntry } from './membership';
import type { StoredRecord } from './record';

/** A join: "here I am"; the reply carries the whole member table, so one hello teaches everything. */
export interface HelloMessage {
  readonly type: 'hello';
  readonly from: MemberEntry;
}
export interface HelloReply {
  readonly member: MemberEntry;
  readonly members: MemberEntry[];
}

/** Gossip round, first leg (Cassandra's SYN): the sender's digests. */
export interface GossipMessage {
  readonly type: 'gossip';
  readonly from: string;
  readonly digests: Digest[];
}
/** Second leg (ACK): entries the receiver has newer, and the ids it wants. */
export interface GossipReply {
  readonly entries: MemberEntry[];
  readonly want: string[];
}

/** Third leg (ACK2): the entries the receiver asked for. */
export interface GossipPushMessage {
  readonly type: 'gossip-push';
  readonly from: string;
  readonly entries: MemberEntry[];
}
export type GossipPushReply = Record<string, never>;

/** "I am stopping cleanly": the receiver marks the sender down at once (Cassandra's shutdown notice). */
export interface ShutdownMessage {
  readonly type: 'shutdown';
  readonly from: Digest;
}
export type ShutdownReply = Record<string, never>;

/** Store `record` under `key` if it is newer than what the replica holds. */
export interface WriteMessage {
  readonly type: 'write';
  readonly key: string;
  readonly record: StoredRecord;
}
export interface WriteReply {
  /** False when the replica already held this version or a newer one (still durable: an ack). */
  readonly applied: boolean;
}

export interface ReadMessage {
  readonly type: 'read';
  readonly key: string;
}
export interface ReadReply {
  readonly record: StoredRecord | null;
}

export type Message = HelloMessage | GossipMessage | GossipPushMessage | ShutdownMessage | WriteMessage | ReadMessage;
export type MessageType = Message['type'];

export type ReplyOf<M extends Message> = M extends HelloMessage
  ? HelloReply
  : M extends GossipMessage
    ? GossipReply
    : M extends GossipPushMessage
      ? GossipPushReply
      : M extends ShutdownMessage
        ? ShutdownReply
        : M extends WriteMessage
          ? WriteReply
          : M extends ReadMessage
            ? ReadReply
            : never;

export const MESSAGE_TYPES: readonly MessageType[] = ['hello', 'gossip', 'gossip-push', 'shutdown', 'write', 'read'];
