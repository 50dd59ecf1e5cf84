// The internode protocol: plain data. `node/` answers them; `net/` carries them.

import type { StoredRecord } from './record';

/** What a node tells others about itself. */
export interface MemberInfo {
  readonly id: string;
  /** host:port where its API and /internal routes listen. */
  readonly address: string;
  /** Its start time in ms; a restarted node has a higher one and its entry wins. */
  readonly generation: number;
}

export interface HelloMessage {
  readonly type: 'hello';
  readonly from: MemberInfo;
}
export interface HelloReply {
  readonly member: MemberInfo;
}

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

export type Message = HelloMessage | WriteMessage | ReadMessage;
export type MessageType = Message['type'];

export type ReplyOf<M extends Message> = M extends HelloMessage
  ? HelloReply
  : M extends WriteMessage
    ? WriteReply
    : M extends ReadMessage
      ? ReadReply
      : never;

export const MESSAGE_TYPES: readonly MessageType[] = ['hello', 'write', 'read'];
