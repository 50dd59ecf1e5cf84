// What the simulated clients did and saw: one entry per operation, with true (virtual) start and
// end times. The checkers read this and the stores' final contents.

import type { Version } from '../core/hlc';
import type { StoredRecord } from '../core/record';

export type OpKind = 'put' | 'get' | 'delete';

/**
 * ok: the coordinator answered success. fail: it answered an error (a 503: the write may still
 * have reached some replicas). unavailable: it refused before asking any replica (the write must
 * never become visible). unknown: no answer reached the client (coordinator crashed or hung).
 */
export type OpOutcome = 'ok' | 'fail' | 'unavailable' | 'unknown';

export interface Op {
  id: number;
  client: number;
  kind: OpKind;
  key: string;
  /** The value a put wrote (unique per put in a run). */
  value?: string;
  /** Replicas the op waited for: W for put/delete, R for get. */
  required: number;
  coordinator: string;
  start: number;
  end: number;
  outcome: OpOutcome;
  /** Why it failed, for the trace. */
  error?: string;
  /** Version the coordinator assigned (ok writes). */
  version?: Version;
  /** What an ok read returned: the newest record, or nothing at all. */
  read?: { record: StoredRecord | undefined };
}

export interface ReplicaView {
  node: string;
  record: StoredRecord | undefined;
}

/** The final state: for each key, what each of its replicas holds on disk. */
export type FinalState = Map<string, ReplicaView[]>;
