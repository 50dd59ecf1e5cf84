// Every default and limit of a node, in one table: what `quorumkv serve` falls back to when a flag
// is not given (config.ts), the tunables no flag exposes, and the limits that must fit inside each
// other. `serve` and the simulator both build their nodes from it (src/sim/simulation.ts), so the
// seeds run the production configuration; the few values the simulator scales are in SIM_SCALED
// below, each with its reason. After memberlist's DefaultLANConfig (every field says its unit and
// why) and TigerBeetle's constants.zig (the limits asserted against each other, at load).
//
// Pure data and arithmetic: no clock, no I/O.

import { MAX_KEY_BYTES } from './limits';

const KIB = 1024;
const MIB = 1024 * KIB;
const SECOND_MS = 1000;
const HOUR_MS = 3600 * SECOND_MS;
const DAY_MS = 24 * HOUR_MS;

/** The defaults of the settings a flag can change (README's table; config.ts's fallbacks). */
export const DEFAULTS = {
  // ---- membership ----
  /** Cassandra's gossip tick. */
  gossipIntervalMs: 1 * SECOND_MS,
  /** One bump a gossip tick: phi sees one arrival a round. */
  heartbeatIntervalMs: 1 * SECOND_MS,
  /** Cassandra's phi_convict_threshold: ~1 false conviction a day at 1 s ticks. */
  phiConvictThreshold: 8,
  /** First pause between discovery rounds; doubles while expected peers are missing. */
  discoveryIntervalMs: 500,
  /** Longest pause between discovery rounds, and the re-check period once every member is known. */
  discoveryMaxIntervalMs: 30 * SECOND_MS,

  // ---- requests ----
  replicationFactor: 3,
  /** Tokens per node: Cassandra's num_tokens was 256 before 4.0 chose 16; 64 balances a few nodes within ~10%. */
  vnodes: 64,
  /** Deadline of a client request, internode calls included. */
  requestTimeoutMs: 2 * SECOND_MS,
  /** Largest value, as JSON. Cassandra warns above 1 MiB per cell; so do most clients. */
  maxValueBytes: 1 * MIB,
  /** Client requests coordinated at once; more are refused with 503 overloaded. */
  maxInflightRequests: 1024,
  /**
   * How long a node keeps one CPU awake after its last network event, in µs (0: never). Off: it
   * spends CPU to save the wake-up of an idle virtual CPU on each hop (net/idle-poll.ts).
   */
  idlePollUs: 0,

  // ---- repair ----
  /** Cassandra's max_hint_window. */
  hintWindowMs: 3 * HOUR_MS,
  maxHintsPerNode: 100_000,
  /** Hints per second to one replica that is back: a backlog of 100k drains in under a minute. */
  hintDeliveryRate: 2000,
  /** Between two background anti-entropy passes over every shared range. */
  antiEntropyIntervalMs: 10 * 60 * SECOND_MS,
  /** Cassandra's gc_grace_seconds: longer than any replica may miss repair. */
  tombstoneGraceMs: 10 * DAY_MS,
} as const;

/** Tunables no flag exposes: the same in every node, chosen once. */
export const TUNING = {
  // ---- membership ----
  /** Member entries per gossip message: ~120 bytes each, so one message stays under ~30 KiB. */
  maxGossipEntries: 256,
  /** Heartbeat arrivals phi remembers per member (Cassandra's 1000-sample window). */
  phiWindowSize: 1000,

  // ---- repair ----
  /** Pause between hint delivery rounds (the rate is spread over them). */
  hintTickMs: 200,
  /** Pause between two peers within an anti-entropy pass, so a pass is never a burst. */
  antiEntropyPeerPauseMs: 1 * SECOND_MS,
  /** Records moved (both ways) in one pass at most; the rest waits for the next. */
  antiEntropyMaxRecordsPerPass: 200_000,
  /** Pause between two slices of tombstone GC: 256 slices walk the whole store every ~4 minutes. */
  compactionTickMs: 1 * SECOND_MS,

  // ---- joins, decommissions, removals ----
  /** Records per streamed page at most (bytes: LIMITS.maxBatchBytes). */
  movePageRecords: 2000,
  /** Ranges streamed at once by one move. */
  moveConcurrentRanges: 4,
  /** Pause between two confirmation rounds, and between retries of a failed page. */
  moveRetryMs: 500,
  /** A fresh node that reaches no established member for this long starts a new cluster. */
  formationGraceMs: 30 * SECOND_MS,
  /** How long a move waits for other members' moves to finish before it goes ahead anyway. */
  moveWaitMs: 5 * 60 * SECOND_MS,
  /** A move that waits for members to confirm says so in the log this often. */
  moveWaitLogMs: 10 * SECOND_MS,
  /** While a move streams, its state is saved at most this often: a plan holds hundreds of ranges, a save after every page would cost more than the page. */
  movePlanSaveMs: 1 * SECOND_MS,
  /** A fresh decommission waits up to this long, at random, before it looks for other moves: pods removed by one scale-down start at the same instant. */
  moveStartJitterMs: 1 * SECOND_MS,

  // ---- stopping ----
  /** `quorumkv drain` / `prestop`: after readiness fails, the wait for the endpoints to drop the pod (kube-proxy's few seconds). */
  drainWaitMs: 5 * SECOND_MS,
} as const;

/** Sizes that must fit inside each other (checkLimits says how). */
export const LIMITS = {
  /** Records in one internal message (write-batch, a streamed page) are cut at this many bytes. */
  maxBatchBytes: 512 * KIB,
  /** Records in one write-batch message at most (hint delivery and anti-entropy send fewer). */
  maxBatchRecords: 10_000,
  /** Room around the records of an internal message (framing, the message's own fields, a key). */
  internalMessageOverheadBytes: 64 * KIB,
  /** The smallest and largest --max-value-bytes. */
  minValueBytes: 1,
  maxValueBytes: 64 * MIB,
} as const;

/**
 * Largest internal request a node accepts from a peer: the largest value, or a batch of records
 * (hints, anti-entropy, streamed pages are cut at LIMITS.maxBatchBytes), with room around it.
 */
export function maxRequestFrameBytes(maxValueBytes: number): number {
  return Math.max(maxValueBytes, LIMITS.maxBatchBytes) + LIMITS.internalMessageOverheadBytes;
}

/** What one record may cost on the wire at most: a key, a value, its version and fields. */
export function maxRecordBytes(maxValueBytes: number): number {
  return MAX_KEY_BYTES + maxValueBytes + RECORD_FIELDS_BYTES;
}

/** A version (wall ms, counter, node id of up to 63 characters), an expiry, JSON punctuation. */
const RECORD_FIELDS_BYTES = 256;

/** The settings the limits depend on. */
export interface LimitInputs {
  maxValueBytes: number;
  hintWindowMs: number;
  tombstoneGraceMs: number;
}

/** A limit that does not hold: the setting to change, and why. */
export interface LimitProblem {
  setting: keyof LimitInputs;
  message: string;
}

/**
 * The limits checked against each other (none returned: they hold). A batch that did not fit in
 * what a peer accepts would be refused on every retry, for ever: hints never delivered, a range
 * never repaired, a join that never finishes.
 */
export function checkLimits(c: LimitInputs): LimitProblem[] {
  const problems: LimitProblem[] = [];
  const frame = maxRequestFrameBytes(c.maxValueBytes);
  // a batch is cut before it would pass maxBatchBytes, so a full one holds at most that many bytes of records
  if (LIMITS.maxBatchBytes + LIMITS.internalMessageOverheadBytes > frame) {
    problems.push({
      setting: 'maxValueBytes',
      message: `a full batch (${LIMITS.maxBatchBytes} bytes of records and its message) does not fit in what a peer accepts (${frame} bytes)`,
    });
  }
  // one record always goes, alone if it must: the largest must fit too
  if (maxRecordBytes(c.maxValueBytes) > frame) {
    problems.push({
      setting: 'maxValueBytes',
      message: `the largest record (${maxRecordBytes(c.maxValueBytes)} bytes) does not fit in what a peer accepts (${frame} bytes)`,
    });
  }
  if (c.hintWindowMs >= c.tombstoneGraceMs) {
    problems.push({
      setting: 'hintWindowMs',
      message: `must be shorter than --tombstone-grace-ms (${c.tombstoneGraceMs}): a hint older than the grace period could bring a purged delete back`,
    });
  }
  return problems;
}

/**
 * Where the simulator departs from the production values, and why: only where its clock makes a
 * production value meaningless. A run is about a minute of virtual time (a workload of a few
 * seconds, faults that heal, a 5 s quiet period), and its checkers demand that every replica
 * converges by the end of it.
 */
export const SIM_SCALED = {
  /**
   * A background pass every 10 minutes would never run within a run; every 2 s, passes run through
   * the workload and the quiet period as they would through hours of production.
   */
  antiEntropyIntervalMs: 2 * SECOND_MS,
  /** Scaled with the interval (1 s of 10 minutes is 3 ms of 2 s): a pass fits in the quiet period. */
  antiEntropyPeerPauseMs: 0,
} as const;

export type SimScaled = typeof SIM_SCALED;
