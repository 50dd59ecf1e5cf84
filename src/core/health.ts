// The rules kubelet's probes apply (through `quorumkv health ...`). Pure: the node reports its
// state, the CLI and the node apply the same rule to it, and the simulator can apply the naive
// rule the seed design warns about to show the deadlock it causes.
//
// Two-phase readiness (the seed's cure for the StatefulSet start-up deadlock): while fewer pods
// exist than the StatefulSet expects, a node is ready on local state alone, so OrderedReady can go
// on creating pods; once all exist, it is ready only when it sees enough live members to serve
// quorum requests. Liveness never looks at peers: a partition must not make kubelet restart every
// pod of the cluster.

export interface Verdict {
  ok: boolean;
  /** One line for kubelet's event log: why. */
  reason: string;
}

/** Longest event-loop stall a live node may show (a GC pause is ~100 ms; 5 s is a stuck process). */
export const MAX_EVENT_LOOP_DELAY_MS = 5_000;

export interface LivenessInput {
  /** Worst event-loop delay over the last few seconds, measured inside the node. */
  eventLoopDelayMs: number;
}

export function liveness(i: LivenessInput, maxDelayMs = MAX_EVENT_LOOP_DELAY_MS): Verdict {
  if (i.eventLoopDelayMs >= maxDelayMs) {
    return { ok: false, reason: `event loop stalled: ${Math.round(i.eventLoopDelayMs)} ms delay (limit ${maxDelayMs} ms)` };
  }
  return { ok: true, reason: `alive: event loop delay ${Math.round(i.eventLoopDelayMs)} ms` };
}

export interface StartupInput {
  storageOpen: boolean;
  serving: boolean;
  /** The first discovery round has finished (whatever it found). */
  discoveryTried: boolean;
  /**
   * Discovery's settings cannot be right (statefulset: this pod's own name does not resolve, so
   * the headless Service, namespace or cluster domain is wrong), naming the setting to check.
   */
  discoveryProblem?: string | undefined;
  /** Members this node knows, itself included (remembered from disk or learned). */
  knownMembers: number;
  /** Its status in the ring; `undecided` while a fresh node looks at the cluster before joining. */
  memberStatus?: string;
}

/**
 * Started once storage is open, the API serves, and the node has joined: it knows other members,
 * or its first discovery round found nobody to join (the first pod of a new cluster). Never waits
 * for peers to answer: a pod restarting while its peers are down must not be restarted in a loop.
 */
export function startup(i: StartupInput): Verdict {
  if (!i.storageOpen) return { ok: false, reason: 'starting: storage not open' };
  if (!i.serving) return { ok: false, reason: 'starting: API not serving yet' };
  // Before anything that could pass: a pod that cannot find its siblings must never look started
  // (it would go Ready alone, a cluster of one behind the shared client Service).
  if (i.discoveryProblem !== undefined) return { ok: false, reason: `not started: ${i.discoveryProblem}` };
  if (i.memberStatus === 'undecided') {
    return { ok: false, reason: 'starting: fresh data directory; looking at the cluster to start one or join it' };
  }
  if (i.knownMembers > 1) return { ok: true, reason: `started: storage open, serving, ${i.knownMembers} members known` };
  if (!i.discoveryTried) return { ok: false, reason: 'starting: looking for peers (first discovery round not finished)' };
  return { ok: true, reason: 'started: storage open, serving; no peer found yet (first member of the cluster)' };
}

export interface ReadinessInput {
  storageOpen: boolean;
  serving: boolean;
  draining: boolean;
  /**
   * Pods of the StatefulSet that exist now: pod names that resolve in the headless Service's DNS
   * (with publishNotReadyAddresses a pod has a record from the moment it has an IP, ready or not).
   * Undefined when discovery cannot tell (static seeds, join): then only the second phase applies.
   */
  podsExisting: number | undefined;
  expectedPods: number | undefined;
  /** Members not marked down by the failure detector, this node included. */
  liveMembers: number;
  /** Members that must be up for a quorum request: max(R, W). */
  quorumMembers: number;
  /**
   * Its status in the ring. Only a normal member is ready: a joining one is still streaming its
   * ranges in (so `kubectl rollout status` means "every member holds its data"), a leaving or
   * removed one is on its way out. Undefined: not reported (treated as normal).
   */
  memberStatus?: string;
  /** Share of a join's or decommission's streaming done (0..1), when one is under way. */
  moveProgress?: number;
}

export function readiness(i: ReadinessInput): Verdict {
  if (i.draining) return { ok: false, reason: 'not ready: draining (shutting down)' };
  if (!i.storageOpen) return { ok: false, reason: 'not ready: storage not open' };
  if (!i.serving) return { ok: false, reason: 'not ready: API not serving' };
  if (i.memberStatus !== undefined && i.memberStatus !== 'normal') {
    const done = i.moveProgress === undefined ? '' : ` (${Math.floor(i.moveProgress * 100)}% streamed)`;
    const what: Record<string, string> = {
      undecided: 'looking at the cluster to start one or join it',
      joining: `joining: streaming its ranges in${done}`,
      leaving: `leaving: streaming its ranges out${done}`,
      removed: 'left the cluster (decommissioned)',
    };
    return { ok: false, reason: `not ready: ${what[i.memberStatus] ?? i.memberStatus}` };
  }
  if (i.expectedPods !== undefined && i.podsExisting !== undefined && i.podsExisting < i.expectedPods) {
    return {
      ok: true,
      reason: `ready (phase 1, cluster starting): ${i.podsExisting}/${i.expectedPods} pods exist; local state is enough until all do`,
    };
  }
  const peers = i.liveMembers - 1;
  if (i.liveMembers >= i.quorumMembers) {
    return { ok: true, reason: `ready (phase 2): ${peers} live peer(s); quorum requests need ${i.quorumMembers} members` };
  }
  return { ok: false, reason: `not ready (phase 2): ${peers} live peer(s); quorum requests need ${i.quorumMembers} members` };
}

/**
 * The seed's first attempt, kept to demonstrate its failure: ready only with N-1 live peers,
 * whatever the StatefulSet has created so far. Under OrderedReady pod 0 never gets there.
 */
export function naiveReadiness(i: ReadinessInput, replicationFactor: number): Verdict {
  const peers = i.liveMembers - 1;
  if (i.draining || !i.storageOpen || !i.serving) return readiness(i);
  if (peers >= replicationFactor - 1) return { ok: true, reason: `ready (naive rule): ${peers} live peers` };
  return { ok: false, reason: `not ready (naive rule): ${peers} live peers, need ${replicationFactor - 1}` };
}

// ---- the replies of /health/startup and /health/ready: written by the node, read by the probe ----

/** A reply's body as JSON gives it: any field may be missing or of another type. */
type Body = Record<string, unknown>;

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);

/** GET /health/startup: the verdict and what it was made from, in the API's snake_case. */
export interface StartupReply {
  ok: boolean;
  reason: string;
  storage_open: boolean;
  serving: boolean;
  discovery_tried: boolean;
  discovery_problem?: string;
  known_members: number;
  member_status?: string;
}

export function startupReply(i: StartupInput): StartupReply {
  const v = startup(i);
  return {
    ok: v.ok,
    reason: v.reason,
    storage_open: i.storageOpen,
    serving: i.serving,
    discovery_tried: i.discoveryTried,
    ...(i.discoveryProblem !== undefined ? { discovery_problem: i.discoveryProblem } : {}),
    known_members: i.knownMembers,
    ...(i.memberStatus !== undefined ? { member_status: i.memberStatus } : {}),
  };
}

/** The inputs a StartupReply carries (a field of the wrong type reads as the failing value). */
export function startupInputOf(body: Body): StartupInput {
  const discoveryProblem = str(body.discovery_problem);
  const memberStatus = str(body.member_status);
  return {
    storageOpen: body.storage_open === true,
    serving: body.serving === true,
    discoveryTried: body.discovery_tried === true,
    ...(discoveryProblem !== undefined ? { discoveryProblem } : {}),
    knownMembers: Number(body.known_members),
    ...(memberStatus !== undefined ? { memberStatus } : {}),
  };
}

/** GET /health/ready: the verdict of the two-phase rule and what it was made from. */
export interface ReadinessReply {
  ok: boolean;
  reason: string;
  rule: 'two-phase';
  storage_open: boolean;
  serving: boolean;
  draining: boolean;
  pods_existing: number | null;
  expected_pods: number | null;
  live_members: number;
  quorum_members: number;
  member_status?: string;
  move_progress: number | null;
  /** N: what the naive rule (naiveReadiness) needs besides the inputs. */
  replication_factor: number;
}

export function readinessReply(i: ReadinessInput, replicationFactor: number): ReadinessReply {
  const v = readiness(i);
  return {
    ok: v.ok,
    reason: v.reason,
    rule: 'two-phase',
    storage_open: i.storageOpen,
    serving: i.serving,
    draining: i.draining,
    pods_existing: i.podsExisting ?? null,
    expected_pods: i.expectedPods ?? null,
    live_members: i.liveMembers,
    quorum_members: i.quorumMembers,
    ...(i.memberStatus !== undefined ? { member_status: i.memberStatus } : {}),
    move_progress: i.moveProgress ?? null,
    replication_factor: replicationFactor,
  };
}

/** The inputs a ReadinessReply carries, and its N (a field of the wrong type reads as the failing value). */
export function readinessInputOf(body: Body): { input: ReadinessInput; replicationFactor: number } {
  const memberStatus = str(body.member_status);
  const moveProgress = num(body.move_progress);
  return {
    input: {
      storageOpen: body.storage_open === true,
      serving: body.serving === true,
      draining: body.draining === true,
      podsExisting: num(body.pods_existing),
      expectedPods: num(body.expected_pods),
      liveMembers: Number(body.live_members),
      quorumMembers: Number(body.quorum_members),
      ...(memberStatus !== undefined ? { memberStatus } : {}),
      ...(moveProgress !== undefined ? { moveProgress } : {}),
    },
    replicationFactor: Number(body.replication_factor),
  };
}
