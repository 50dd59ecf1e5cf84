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
