// How a node sends protocol messages to another. Production: HTTP (./http-transport.ts). The
// simulator: a seeded in-memory network. Protocol code sees only this interface.

import type { Message, ReplyOf } from '../core/messages';

/**
 * Why a call failed, in the words a 503 should use:
 * - timeout: no reply within the deadline (a hung or overloaded peer, or a partition);
 * - refused: nothing listens there (the process is down);
 * - unreachable: no route / host down / connection reset before a reply;
 * - rejected: the peer answered with an error (its status and message are in `message`).
 */
export type TransportFailure = 'timeout' | 'refused' | 'unreachable' | 'rejected';

export class TransportError extends Error {
  override name = 'TransportError';
  constructor(
    readonly kind: TransportFailure,
    message: string,
  ) {
    super(message);
  }
}

export interface Transport {
  /** Sends `msg` to the node at `to` (host:port); rejects with TransportError, at the latest after `timeoutMs`. */
  send<M extends Message>(to: string, msg: M, timeoutMs: number): Promise<ReplyOf<M>>;
}
