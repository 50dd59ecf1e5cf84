// Errors the node raises to the API, carrying what the client needs to see.

import type { ReplicaFailure } from './fanout';

export interface QuorumFailureDetails {
  key: string;
  /** Replicas that had to answer. */
  required: number;
  /** The preference list the coordinator used. */
  replicas: string[];
  /** Replicas that did answer (acknowledged the write / returned the read). */
  succeeded: string[];
  failures: ReplicaFailure[];
}

/** Sent, and too few replicas answered in time: 503. A write may have been applied. */
export class QuorumError extends Error {
  override name = 'QuorumError';
  constructor(
    readonly op: 'read' | 'write',
    readonly details: QuorumFailureDetails,
  ) {
    const failed = details.failures.map((f) => `${f.replica} (${f.reason})`).join(', ');
    const answered = op === 'write' ? 'acknowledged' : 'answered';
    super(
      `${op} quorum not met for key ${JSON.stringify(details.key)}: ${details.required} of ${details.replicas.length} replicas must ${op === 'write' ? 'acknowledge' : 'answer'}, ` +
        `${details.succeeded.length} ${answered} before the outcome was certain` +
        (failed ? `; failed: ${failed}` : '') +
        (op === 'write'
          ? '. The write may have been applied: replicas that acknowledged keep it and the others get it through hints; retry it, or read at quorum to see what won'
          : ''),
    );
  }
}

export interface UnavailableDetails {
  key: string;
  required: number;
  replicas: string[];
  /** Replicas (or stand-ins) that could have been asked and would have counted. */
  alive: string[];
  /** Why the others could not: down, or missing from a ring smaller than the quorum. */
  failures: ReplicaFailure[];
}

/**
 * Too few replicas alive to reach the quorum, known before any was asked: nothing was sent, so
 * nothing was applied anywhere and no hint was kept. 503 (Cassandra's Unavailable).
 */
export class UnavailableError extends Error {
  override name = 'UnavailableError';
  constructor(
    readonly op: 'read' | 'write',
    readonly details: UnavailableDetails,
  ) {
    const failed = details.failures.map((f) => `${f.replica} (${f.reason})`).join(', ');
    super(
      `${op} refused for key ${JSON.stringify(details.key)}: ${details.required} of ${details.replicas.length} replicas must ${op === 'write' ? 'acknowledge' : 'answer'}, ` +
        `only ${details.alive.length} ${details.alive.length === 1 ? 'is' : 'are'} alive` +
        (failed ? ` (${failed})` : '') +
        (op === 'write' ? '; nothing was written: no replica was asked' : '; no replica was asked'),
    );
  }
}

/** A message from a peer (or something posing as one) that is not a valid protocol message: 400. */
export class BadMessageError extends Error {
  override name = 'BadMessageError';
}

/** This node cannot coordinate requests (not yet a member, left the cluster, or its data is stale): 503. */
export class NotServingError extends Error {
  override name = 'NotServingError';
}
