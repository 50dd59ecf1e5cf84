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

/** Too few replicas answered in time: 503. */
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
        (failed ? `; failed: ${failed}` : ''),
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
