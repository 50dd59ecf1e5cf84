// The internode protocol: plain data. `node/` answers them; `net/` carries them.

import type { Version } from './hlc';
import { type Digest, isMemberEntry, type MemberEntry } from './membership';
import type { StoredRecord } from './record';
import { array, boolean, integer, object, optional, record, type Shape, string, token, tuple, version } from './shape';

/**
 * A join: "here I am"; the reply carries the whole member table, so one hello teaches everything.
 * With `probe`, the receiver only answers (a node with a fresh data directory looks at the cluster
 * before it decides whether to start one or join it) and does not take the sender in.
 */
export interface HelloMessage {
  readonly type: 'hello';
  readonly from: MemberEntry;
  readonly probe?: boolean;
}
export interface HelloReply {
  readonly member: MemberEntry;
  readonly members: MemberEntry[];
  /** The receiver has a fresh data directory and has not decided yet whether to start or join. */
  readonly undecided?: boolean;
}

/**
 * A move (join, decommission, removenode) announcing itself: the receiver merges `entries` and
 * answers with the placement it now computes; the mover waits until every member computes its own.
 */
export interface RingStateMessage {
  readonly type: 'ring-state';
  readonly from: string;
  readonly entries: MemberEntry[];
}
export interface RingStateReply {
  /** Placement checksum (core/placement.ts) after the merge. */
  readonly placement: string;
  /** The receiver's entries of members that are joining or leaving (so the mover learns of others). */
  readonly moving: MemberEntry[];
}

/** A position in ring order: every record with a token up to and including `token` has been sent. */
export type StreamCursor = number;

/** Streaming, one page: records of the range (lo, hi] after `after`, in ring order. */
export interface StreamRangeMessage {
  readonly type: 'stream-range';
  readonly lo: number;
  readonly hi: number;
  readonly after?: StreamCursor;
  readonly maxRecords: number;
  readonly maxBytes: number;
}
export interface StreamRangeReply {
  readonly records: Array<[string, StoredRecord]>;
  /** Where the next page starts; absent when the range is done. */
  readonly next?: StreamCursor;
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
  /**
   * The version the replica holds when it is newer than the write's: the write lost to it. The
   * coordinator writes again above it (a coordinator whose clock is behind the key's last version).
   */
  readonly newer?: Version;
}

/** Several records at once (hint delivery, anti-entropy): each applied if newer. */
export interface WriteBatchMessage {
  readonly type: 'write-batch';
  readonly records: Array<[string, StoredRecord]>;
}
export interface WriteBatchReply {
  readonly applied: number;
}

/** Sloppy quorum: keep this write as a hint for `target`, which is down; deliver it when it is back. */
export interface HintMessage {
  readonly type: 'hint';
  readonly target: string;
  readonly key: string;
  readonly record: StoredRecord;
}
export interface HintReply {
  readonly stored: boolean;
}

/**
 * Anti-entropy, first leg. With `combined`: the XOR of the roots of every range the two nodes share
 * by the sender's ring (`ring` is its checksum); the receiver computes the same from its own ring,
 * so replicas in sync settle a whole pass with one hash. With `ranges`: root summaries per range.
 */
export interface AeRootsMessage {
  readonly type: 'ae-roots';
  readonly from: string;
  readonly ring: string;
  readonly combined?: string;
  readonly ranges?: Array<[number, number, string, number]>;
}
export interface AeRootsReply {
  /** The combined hashes matched (nothing to do), or the rings differ (send explicit ranges). */
  readonly same?: boolean;
  readonly ringMismatch?: boolean;
  /** Positions (in the request's ranges) of the ranges whose roots differ, with the receiver's key counts. */
  readonly differ?: Array<[number, number]>;
}

/** Anti-entropy, descent: the sender's node summaries at `level` under differing `parents`. */
export interface AeLevelMessage {
  readonly type: 'ae-level';
  readonly from: string;
  readonly lo: number;
  readonly hi: number;
  readonly level: number;
  readonly parents: number[];
  /** [index, hash, count] of the sender's non-empty nodes among those parents' children. */
  readonly nodes: Array<[number, string, number]>;
}
export interface AeLevelReply {
  /** [index, receiver's count] of the nodes that differ. */
  readonly differ: Array<[number, number]>;
}

/** Anti-entropy, leaves: the sender's keys (with version and digest) in one differing node. */
export interface AeKeysMessage {
  readonly type: 'ae-keys';
  readonly from: string;
  readonly lo: number;
  readonly hi: number;
  readonly level: number;
  readonly index: number;
  readonly keys: Array<[string, string, string]>;
}
export interface AeKeysReply {
  /** Records the receiver holds newer (or the sender lacks). */
  readonly records: Array<[string, StoredRecord]>;
  /** Keys the sender holds newer (or the receiver lacks): send them with write-batch. */
  readonly want: string[];
}

export interface ReadMessage {
  readonly type: 'read';
  readonly key: string;
}
export interface ReadReply {
  readonly record: StoredRecord | null;
}

export type Message =
  | HelloMessage
  | GossipMessage
  | GossipPushMessage
  | ShutdownMessage
  | WriteMessage
  | WriteBatchMessage
  | HintMessage
  | ReadMessage
  | AeRootsMessage
  | AeLevelMessage
  | AeKeysMessage
  | RingStateMessage
  | StreamRangeMessage;
export type MessageType = Message['type'];

interface Replies {
  hello: HelloReply;
  gossip: GossipReply;
  'gossip-push': GossipPushReply;
  shutdown: ShutdownReply;
  write: WriteReply;
  'write-batch': WriteBatchReply;
  hint: HintReply;
  read: ReadReply;
  'ae-roots': AeRootsReply;
  'ae-level': AeLevelReply;
  'ae-keys': AeKeysReply;
  'ring-state': RingStateReply;
  'stream-range': StreamRangeReply;
}

export type ReplyOf<M extends Message> = Replies[M['type']];

/** Items in any list a message carries at most (member tables, record batches, tree nodes). */
export const MAX_MESSAGE_ITEMS = 100_000;

const member: Shape = (v, path) =>
  isMemberEntry(v) ? undefined : `${path}: must be a member entry {id, address, generation, heartbeat, status[, progress]}`;
const digest = object({ id: string(256), generation: integer(0), heartbeat: integer(0) });
const members = array(member, MAX_MESSAGE_ITEMS);
const records = array(tuple(string(), record), MAX_MESSAGE_ITEMS);
const ids = array(string(256), MAX_MESSAGE_ITEMS);
const pairs = array(tuple(integer(0), integer(0)), MAX_MESSAGE_ITEMS);
const empty = object({});

/**
 * Every message type, declared once: its wire code (never reused), its lane (bulk messages travel
 * on a connection of their own, so a 512 KiB page never queues ahead of a quorum write), and the
 * shapes of the message and of its reply. The transport checks both before anyone reads them.
 */
export const MESSAGE_SPECS: { readonly [T in MessageType]: { code: number; bulk: boolean; request: Shape; reply: Shape } } = {
  hello: {
    code: 1,
    bulk: false,
    request: object({ from: member, probe: optional(boolean) }),
    reply: object({ member, members, undecided: optional(boolean) }),
  },
  gossip: {
    code: 2,
    bulk: false,
    request: object({ from: string(256), digests: array(digest, MAX_MESSAGE_ITEMS) }),
    reply: object({ entries: members, want: ids }),
  },
  'gossip-push': { code: 3, bulk: false, request: object({ from: string(256), entries: members }), reply: empty },
  shutdown: { code: 4, bulk: false, request: object({ from: digest }), reply: empty },
  write: {
    code: 5,
    bulk: false,
    request: object({ key: string(), record }),
    reply: object({ applied: boolean, newer: optional(version) }),
  },
  'write-batch': { code: 6, bulk: true, request: object({ records }), reply: object({ applied: integer(0) }) },
  hint: {
    code: 7,
    bulk: false,
    request: object({ target: string(256), key: string(), record }),
    reply: object({ stored: boolean }),
  },
  read: {
    code: 8,
    bulk: false,
    request: object({ key: string() }),
    reply: object({ record: (v, path) => (v === null ? undefined : record(v, path)) }),
  },
  'ae-roots': {
    code: 9,
    bulk: true,
    request: object({
      from: string(256),
      ring: string(256),
      combined: optional(string(256)),
      ranges: optional(array(tuple(token, token, string(256), integer(0)), MAX_MESSAGE_ITEMS)),
    }),
    reply: object({ same: optional(boolean), ringMismatch: optional(boolean), differ: optional(pairs) }),
  },
  'ae-level': {
    code: 10,
    bulk: true,
    request: object({
      from: string(256),
      lo: token,
      hi: token,
      level: integer(0, 64),
      parents: array(integer(0), MAX_MESSAGE_ITEMS),
      nodes: array(tuple(integer(0), string(256), integer(0)), MAX_MESSAGE_ITEMS),
    }),
    reply: object({ differ: pairs }),
  },
  'ae-keys': {
    code: 11,
    bulk: true,
    request: object({
      from: string(256),
      lo: token,
      hi: token,
      level: integer(0, 64),
      index: integer(0),
      keys: array(tuple(string(), string(256), string(256)), MAX_MESSAGE_ITEMS),
    }),
    reply: object({ records, want: array(string(), MAX_MESSAGE_ITEMS) }),
  },
  'ring-state': {
    code: 12,
    bulk: false,
    request: object({ from: string(256), entries: members }),
    reply: object({ placement: string(256), moving: members }),
  },
  'stream-range': {
    code: 13,
    bulk: true,
    request: object({ lo: token, hi: token, after: optional(token), maxRecords: integer(1), maxBytes: integer(1) }),
    reply: object({ records, next: optional(token) }),
  },
};

export const MESSAGE_TYPES = Object.keys(MESSAGE_SPECS) as readonly MessageType[];

/** What is wrong with `msg` as a message of its declared type, or undefined when it is well formed. */
export function messageProblem(msg: unknown): string | undefined {
  if (typeof msg !== 'object' || msg === null) return 'a message must be an object';
  const type = (msg as { type?: unknown }).type;
  const spec = typeof type === 'string' ? MESSAGE_SPECS[type as MessageType] : undefined;
  if (spec === undefined) return `unknown message type ${JSON.stringify(type)}`;
  return spec.request(msg, type as string);
}

/** What is wrong with `reply` as the reply to a `type` message, or undefined. */
export function replyProblem(type: MessageType, reply: unknown): string | undefined {
  return MESSAGE_SPECS[type].reply(reply, `${type} reply`);
}
