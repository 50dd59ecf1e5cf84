// A quorumkv node: replica and coordinator. Protocol only: time, randomness, the network, the disk
// and peer discovery are injected (Clock, Random, Transport, Store, Discovery), so the simulator
// runs this same code.
//
// Members come from gossip (./membership.ts): discovery finds the first peers, gossip teaches the
// rest, phi accrual says who is down. Members are remembered in the store, so a restarted node has
// its ring at once.

import type { Clock } from '../core/clock';
import { LIMITS, TUNING } from '../core/defaults';
import type { ReadinessInput, StartupInput } from '../core/health';
import { compareVersions, Hlc, type Version } from '../core/hlc';
import { LatencyWindow } from '../core/latency';
import { keyProblem } from '../core/limits';
import type { Logger } from '../core/log';
import type { MemberEntry, MemberStatus } from '../core/membership';
import type { HintMessage, Message, ReadMessage, ReplyOf, WriteBatchMessage, WriteMessage, WriteReply } from '../core/messages';
import type { Placement } from '../core/placement';
import type { Random } from '../core/random';
import { isStoredRecord, type JsonValue, liveRecord, newest, type StoredRecord, supersedes, tombstone } from '../core/record';
import { type VolumeMeta, volumeDecision } from '../core/volume';
import type { Discovery } from '../discovery/discovery';
import type { Counter, Metrics } from '../metrics';
import type { Transport } from '../net/transport';
import type { Store } from '../storage/store';
import { AntiEntropy, type AntiEntropyConfig } from './anti-entropy';
import { MAX_BATCH_BYTES } from './batches';
import { Compaction } from './compaction';
import { BadMessageError, NotServingError, QuorumError, UnavailableError } from './errors';
import { type Gathered, gather, type ReplicaFailure } from './fanout';
import { type HintConfig, HintedHandoff } from './hints';
import { type DiscoveryStatus, Membership, type MembershipConfig, type StoredMember } from './membership';
import { Movement, type MovementConfig, PLAN_META } from './movement';

/**
 * A read's speculative retry before this node has timed enough replica reads to know their p99:
 * far above a healthy round trip, far below a deadline.
 */
const SPECULATE_BEFORE_SAMPLES_MS = 50;

/** A version this far ahead of this node's wall clock says some clock is off: logged and counted. */
const CLOCK_AHEAD_WARN_MS = 5_000;

/** Times a write that lost to a newer version at a replica is written again above it. */
const SUPERSEDED_RETRIES = 2;

function newestOf(versions: readonly Version[]): Version | undefined {
  let best: Version | undefined;
  for (const v of versions) if (best === undefined || compareVersions(v, best) > 0) best = v;
  return best;
}

/** Records in one write-batch message at most (hint delivery and anti-entropy send fewer). */
const MAX_BATCH_RECORDS = LIMITS.maxBatchRecords;

export interface RepairConfig {
  /** Repair stale replicas met by a read (those that answered before the reply: blocking). */
  readRepair: boolean;
  /** A write to a replica that is down goes to a substitute node as a hint, and counts toward W. */
  sloppyQuorum: boolean;
  hints: Omit<HintConfig, 'timeoutMs'>;
  antiEntropy: Omit<AntiEntropyConfig, 'replicationFactor' | 'timeoutMs' | 'tombstoneGraceMs'>;
  tombstoneGraceMs: number;
  /** Pause between two slices of tombstone garbage collection. */
  compactionTickMs: number;
}

export interface NodeConfig extends MembershipConfig {
  /** Streaming of joins and decommissions (defaults in Node.create). */
  movement?: Partial<
    Pick<MovementConfig, 'pageRecords' | 'pageBytes' | 'concurrentRanges' | 'retryMs' | 'formationGraceMs' | 'mustJoin' | 'moveWaitMs'>
  >;
  /** Stable identity (pod name); survives restarts and address changes. */
  id: string;
  /** host:port where peers reach this node. */
  address: string;
  replicationFactor: number;
  readQuorum: number;
  writeQuorum: number;
  /** Deadline of a client request, internode calls included. */
  requestTimeoutMs: number;
  repair: RepairConfig;
}

export interface NodeDeps {
  clock: Clock;
  random: Random;
  transport: Transport;
  store: Store;
  log: Logger;
  discovery: Discovery;
  metrics?: Metrics;
}

export interface WriteResult {
  key: string;
  record: StoredRecord;
  coordinator: string;
  replicas: string[];
  required: number;
  /** Replicas (or, with a sloppy quorum, substitute nodes) that acknowledged. */
  acked: string[];
  /** Sloppy quorum: replica -> the substitute that holds its hint. */
  hintedOn: Record<string, string>;
  failures: ReplicaFailure[];
  /** Newer versions of the key that replicas already held (the write lost to them). */
  newer: Version[];
}

export interface ReadResult {
  key: string;
  /** The newest record among the replies; undefined when no replica has the key. */
  record: StoredRecord | undefined;
  coordinator: string;
  replicas: string[];
  required: number;
  responded: string[];
  /** Replicas that answered with an older record and were brought up to date before the reply. */
  repaired: string[];
  failures: ReplicaFailure[];
}

/**
 * What the data directory records about this node (core/volume.ts). `status` is `undecided` while a
 * fresh directory has not yet started or joined a cluster.
 */
type NodeMeta = VolumeMeta;

/** Records (and hints) deleted per step when a directory is cleared: bounded memory and batches. */
const CLEAR_PAGE = 10_000;

/**
 * Empties the directory of a member that left (core/volume.ts), in bounded pages: records, hints,
 * the members it knew and any move plan. The caller writes the node meta last, so a crash midway
 * leaves the directory still marked as left, and the next start clears the rest.
 */
async function clearStore(store: Store): Promise<{ records: number; hints: number }> {
  let records = 0;
  const recordPages = Math.ceil(store.count() / CLEAR_PAGE) + 1;
  for (let i = 0; i < recordPages; i++) {
    const page: string[] = [];
    for (const [key] of store.entries()) {
      page.push(key);
      if (page.length >= CLEAR_PAGE) break;
    }
    if (page.length === 0) break;
    await Promise.all(page.map((key) => store.delete(key)));
    records += page.length;
  }
  let hints = 0;
  for (const target of store.hintTargets()) {
    const hintPages = Math.ceil(store.hintCount(target) / CLEAR_PAGE) + 1;
    for (let i = 0; i < hintPages; i++) {
      const ids = store.hints(target, CLEAR_PAGE).map((h) => h.id);
      if (ids.length === 0) break;
      await store.removeHints(ids);
      hints += ids.length;
    }
  }
  await store.putMeta('members', []);
  await store.putMeta(PLAN_META, null);
  return { records, hints };
}

/** Defaults for streaming (core/defaults.ts): pages of at most what a peer takes in one message. */
const MOVEMENT_DEFAULTS = {
  pageRecords: TUNING.movePageRecords,
  pageBytes: MAX_BATCH_BYTES,
  concurrentRanges: TUNING.moveConcurrentRanges,
  retryMs: TUNING.moveRetryMs,
  formationGraceMs: TUNING.formationGraceMs,
  mustJoin: false,
  moveWaitMs: TUNING.moveWaitMs,
} as const;

export class Node {
  readonly id: string;
  readonly address: string;
  readonly generation: number;
  readonly startedAtMs: number;
  readonly membership: Membership;
  readonly hints: HintedHandoff;
  readonly antiEntropy: AntiEntropy;
  readonly compaction: Compaction;
  readonly movement: Movement;
  /** Set when this node learns its data is stale (its id was removed): it stops serving. */
  private staleReason: string | undefined;
  private readonly staleListeners: Array<(reason: string) => void> = [];

  private readonly hlc: Hlc;
  /** Latency of reads this node asked of other replicas (when to retry one speculatively). */
  private readonly readLatency = new LatencyWindow();
  private readonly readRepairs: Counter | undefined;
  private readonly replicaFailures: Counter | undefined;
  private readonly restamped: Counter | undefined;
  private readonly clockAhead: Counter | undefined;
  /** When a clock far ahead was last logged, per node that issued the version. */
  private readonly clockWarnedAt = new Map<string, number>();
  private serving = false;
  private draining = false;

  private constructor(
    readonly config: NodeConfig,
    private readonly deps: NodeDeps,
    generation: number,
    knownMembers: StoredMember[],
    private meta: NodeMeta,
  ) {
    this.id = config.id;
    this.address = config.address;
    this.generation = generation;
    this.startedAtMs = deps.clock.nowMs();
    this.hlc = new Hlc(config.id);
    const decided = meta.status !== 'undecided';
    const status: MemberStatus = meta.status === 'undecided' ? 'normal' : meta.status;
    const self: MemberEntry = { id: config.id, address: config.address, generation, heartbeat: 0, status };
    this.membership = new Membership(self, knownMembers, config, deps, decided);
    this.membership.events = { selfRemoved: (e) => this.onSelfRemoved(e) };
    const { store, clock, log, transport, metrics } = deps;
    const internodeMs = config.requestTimeoutMs;
    this.hints = new HintedHandoff(
      { ...config.repair.hints, timeoutMs: internodeMs },
      { clock, transport, store, log, membership: this.membership, metrics },
    );
    this.antiEntropy = new AntiEntropy(
      {
        ...config.repair.antiEntropy,
        replicationFactor: config.replicationFactor,
        timeoutMs: internodeMs,
        tombstoneGraceMs: config.repair.tombstoneGraceMs,
      },
      { clock, transport, store, log, membership: this.membership, metrics, apply: (key, record) => this.apply(key, record) },
    );
    this.movement = new Movement(
      {
        ...MOVEMENT_DEFAULTS,
        ...config.movement,
        requestTimeoutMs: config.requestTimeoutMs,
        tombstoneGraceMs: config.repair.tombstoneGraceMs,
      },
      {
        clock,
        random: deps.random,
        transport,
        store,
        log,
        membership: this.membership,
        metrics,
        apply: (key, record) => this.apply(key, record),
        saveStatus: (st, extra) => this.saveStatus(st, extra),
      },
    );
    this.compaction = new Compaction(
      { tombstoneGraceMs: config.repair.tombstoneGraceMs, tickMs: config.repair.compactionTickMs },
      { clock, store, log, metrics, owns: (key) => this.owns(key) },
    );
    this.readRepairs = metrics?.counter(
      'quorumkv_read_repairs_total',
      'Stale replicas brought up to date by reads, by when (before the reply, after it)',
      ['when'],
    );
    this.restamped = deps.metrics?.counter(
      'quorumkv_writes_restamped_total',
      'Writes that lost to a newer version a replica held (this node had not seen it) and were written again above it',
    );
    this.clockAhead = deps.metrics?.counter(
      'quorumkv_versions_from_clocks_ahead_total',
      `Versions met that were issued more than ${CLOCK_AHEAD_WARN_MS / 1000} s ahead of this node's clock`,
    );
    this.replicaFailures = deps.metrics?.counter(
      'quorumkv_replica_failures_total',
      'Replica calls of coordinated requests that failed or timed out, by operation and reason',
      ['op', 'reason'],
    );
  }

  /**
   * Opens a node on a store: checks the store belongs to this id, takes a generation higher than
   * any before it on this store, and reloads the members it knew.
   */
  static async create(config: NodeConfig, deps: NodeDeps): Promise<Node> {
    let meta = deps.store.getMeta<NodeMeta>('node');
    const decision = volumeDecision(meta, config.id);
    if (decision.kind === 'refuse') throw new Error(decision.reason);
    if (decision.kind === 'start-empty') {
      const cleared = await clearStore(deps.store);
      deps.log.warn(
        { leftBy: decision.leftBy, leftAt: decision.removedAtMs, recordsCleared: cleared.records, hintsCleared: cleared.hints },
        decision.reason,
      );
      // a fresh directory from here on, but generations never go backwards on it
      meta = undefined;
    }
    const previous = deps.store.getMeta<NodeMeta>('node');
    const generation = Math.max(deps.clock.nowMs(), (previous?.generation ?? 0) + 1);
    // a fresh directory (no meta, or one that never got to decide) looks at the cluster first
    const next: NodeMeta = meta === undefined ? { id: config.id, generation, status: 'undecided' } : { ...meta, id: config.id, generation };
    await deps.store.putMeta('node', next);
    const known = meta === undefined ? [] : (deps.store.getMeta<StoredMember[]>('members') ?? []);
    return new Node(config, deps, generation, known, next);
  }

  private async saveStatus(status: MemberStatus, extra: { memberSince?: number } = {}): Promise<void> {
    const { id, generation } = this.meta;
    const memberSince = extra.memberSince ?? this.meta.memberSince;
    this.meta = {
      id,
      generation,
      ...(memberSince !== undefined ? { memberSince } : {}),
      ...(status === 'removed' ? { status, removedAtMs: this.deps.clock.nowMs(), removedBy: 'decommission' } : { status }),
    };
    await this.deps.store.putMeta('node', this.meta);
  }

  /**
   * The cluster says this id was removed. Stale only if that removal is of this data directory's
   * membership (a fresh directory joining under a removed id is a new member, not stale data).
   */
  private onSelfRemoved(entry: MemberEntry): void {
    if (this.staleReason || this.meta.status === 'undecided' || this.meta.status === 'removed') return;
    const since = this.meta.memberSince ?? 0;
    if (entry.generation < since) return;
    this.staleReason =
      `the cluster removed ${this.id} (removenode) while this data directory was its volume: its data is stale and ` +
      'must not be served. Stopping; started again, the node clears the directory and joins as a new member.';
    this.deps.log.error({ generation: entry.generation }, this.staleReason);
    this.stop();
    // recorded before anyone is told, so that the next start on this directory clears it (core/volume.ts)
    this.meta = { ...this.meta, status: 'removed', removedAtMs: this.deps.clock.nowMs(), removedBy: 'removenode' };
    const reason = this.staleReason;
    const tell = () => {
      for (const l of this.staleListeners) l(reason);
    };
    this.deps.store.putMeta('node', this.meta).then(tell, (err: unknown) => {
      this.deps.log.error({ err: String(err) }, 'could not record that this node was removed');
      tell();
    });
  }

  /** Called once if the node finds out its data is stale (it then stops serving; the process should exit). */
  onStale(listener: (reason: string) => void): void {
    this.staleListeners.push(listener);
  }

  /** This node's status in the ring (joining, normal, leaving, removed), or undecided before it started or joined one. */
  memberStatus(): MemberStatus | 'undecided' {
    return this.membership.isAnnounced() ? this.membership.table.self().status : 'undecided';
  }

  /** The HTTP server is listening (or has stopped). */
  setServing(serving: boolean): void {
    this.serving = serving;
  }

  /**
   * Shutting down: readiness fails from now on, so Kubernetes takes the pod out of the Services,
   * while requests still arriving are served until the server closes.
   */
  drain(): void {
    if (!this.draining) this.deps.log.info({}, 'draining: readiness now fails');
    this.draining = true;
  }

  isDraining(): boolean {
    return this.draining;
  }

  startupInput(): StartupInput {
    return {
      storageOpen: this.deps.store.isOpen(),
      serving: this.serving,
      discoveryTried: this.membership.discoveryTried(),
      discoveryProblem: this.membership.discoveryProblem(),
      knownMembers: this.membership.table.size(),
      memberStatus: this.memberStatus(),
    };
  }

  /** What the readiness rule needs; waits at most `budgetMs` for a DNS count of the pods. */
  async readinessInput(budgetMs: number): Promise<ReadinessInput> {
    return {
      storageOpen: this.deps.store.isOpen(),
      serving: this.serving,
      draining: this.draining,
      podsExisting: await this.membership.podsExisting(budgetMs),
      expectedPods: this.config.expectedMembers,
      liveMembers: this.membership.liveCount(),
      quorumMembers: Math.max(this.config.readQuorum, this.config.writeQuorum),
      memberStatus: this.memberStatus(),
      ...(this.movement.busy()
        ? { moveProgress: this.movement.progress.rangesDone / Math.max(1, this.movement.progress.rangesTotal) }
        : {}),
    };
  }

  /**
   * Starts the background loops: heartbeat, gossip, discovery, repair. A node with a fresh data
   * directory first decides whether to start a cluster or join one (it joins in the background);
   * one whose join or decommission was cut short goes on with it.
   */
  start(): void {
    this.deps.log.info(
      {
        id: this.id,
        address: this.address,
        generation: this.generation,
        status: this.memberStatus(),
        members: this.membership.table.size(),
        discovery: this.deps.discovery.name,
      },
      'node started',
    );
    this.stopped = false;
    const loops = () => {
      if (this.stopped) return;
      this.membership.start();
      this.hints.start();
      this.antiEntropy.start();
      this.compaction.start();
    };
    if (this.membership.isAnnounced()) {
      loops();
      this.movement.resume();
    } else {
      this.movement.bootstrap().then(loops, (err: unknown) => {
        if (!this.stopped) this.deps.log.error({ err: String(err) }, 'could not start or join a cluster');
      });
    }
  }

  private stopped = false;

  stop(): void {
    this.stopped = true;
    this.movement.stop();
    this.membership.stop();
    this.hints.stop();
    this.antiEntropy.stop();
    this.compaction.stop();
  }

  memberList(): MemberEntry[] {
    return this.membership.table.all();
  }

  /** Addresses of the other members that are not down (the seed's /peers). */
  peers(): string[] {
    return this.membership.livePeers();
  }

  /** This node's wall clock (TTL checks use it, as the writes' expiry came from a coordinator's). */
  nowMs(): number {
    return this.deps.clock.nowMs();
  }

  /** Keys in the local store (tombstones included). */
  storeCount(): number {
    return this.deps.store.count();
  }

  discoveryStatus(): DiscoveryStatus {
    return this.membership.discoveryStatus();
  }

  // ---- replica side ---------------------------------------------------------------------------

  /** Answers a protocol message from a peer (or from this node, as a local replica). */
  async handle<M extends Message>(msg: M): Promise<ReplyOf<M>> {
    // A fresh node deciding whether to start a cluster or join one is nobody's peer yet: it answers
    // hellos (saying it is undecided) and nothing else, so that no one takes it for a member.
    if (msg.type !== 'hello' && !this.membership.isAnnounced()) {
      throw new BadMessageError('not a member yet: deciding whether to start a cluster or join one');
    }
    switch (msg.type) {
      case 'hello':
        return (await this.membership.onHello(msg)) as ReplyOf<M>;
      case 'gossip':
        return this.membership.onGossip(msg) as ReplyOf<M>;
      case 'gossip-push':
        return (await this.membership.onGossipPush(msg)) as ReplyOf<M>;
      case 'shutdown':
        return this.membership.onShutdown(msg) as ReplyOf<M>;
      case 'write':
        return (await this.onWrite(msg)) as ReplyOf<M>;
      case 'write-batch':
        return (await this.onWriteBatch(msg)) as ReplyOf<M>;
      case 'hint':
        return (await this.onHint(msg)) as ReplyOf<M>;
      case 'read':
        return this.onRead(msg) as ReplyOf<M>;
      case 'ae-roots':
        return this.antiEntropy.onRoots(msg) as ReplyOf<M>;
      case 'ae-level':
        return this.antiEntropy.onLevel(msg) as ReplyOf<M>;
      case 'ae-keys':
        return this.antiEntropy.onKeys(msg) as ReplyOf<M>;
      case 'ring-state':
        return (await this.membership.onRingState(msg)) as ReplyOf<M>;
      case 'stream-range':
        return this.movement.onStreamRange(msg) as ReplyOf<M>;
      default:
        throw new BadMessageError(`unknown message type ${JSON.stringify((msg as { type: unknown }).type)}`);
    }
  }

  /**
   * The replica write path, shared by client writes, hints, read repair and anti-entropy: stores
   * `record` if it is newer than what this replica holds; resolves once the newest is durable.
   */
  async apply(key: string, record: StoredRecord): Promise<boolean> {
    return (await this.applyWrite(key, record)).applied;
  }

  /**
   * Advances this node's clock past a version it met. A version far ahead of this node's wall clock
   * means the clock of the node that issued it is off (or this one is): every node's versions follow
   * it while it lasts, so it is logged (once a minute per issuing node) and counted.
   */
  private observe(v: Version): void {
    const now = this.deps.clock.nowMs();
    const aheadMs = v.wallMs - now;
    if (aheadMs > CLOCK_AHEAD_WARN_MS) {
      this.clockAhead?.inc();
      const last = this.clockWarnedAt.get(v.nodeId);
      if (last === undefined || now - last > 60_000 || now < last) {
        if (this.clockWarnedAt.size > 1000) this.clockWarnedAt.clear();
        this.clockWarnedAt.set(v.nodeId, now);
        this.deps.log.warn(
          { issuer: v.nodeId, aheadMs },
          `a version issued by ${v.nodeId} is ${(aheadMs / 1000).toFixed(1)} s ahead of this node's clock: check the clocks (NTP) of both`,
        );
      }
    }
    this.hlc.observe(v, now);
  }

  /** apply(), saying which newer version the write lost to, if it did (a replica write's reply). */
  private async applyWrite(key: string, record: StoredRecord): Promise<WriteReply> {
    this.observe(record.version);
    const done = await this.deps.store.putIfNewer(key, record);
    if (done.applied) return { applied: true };
    const { held } = done;
    return held !== undefined && compareVersions(held.version, record.version) > 0
      ? { applied: false, newer: held.version }
      : { applied: false };
  }

  private checkWrite(key: unknown, record: unknown): asserts record is StoredRecord {
    const problem = typeof key === 'string' ? keyProblem(key) : 'key must be a string';
    if (problem) throw new BadMessageError(problem);
    if (!isStoredRecord(record))
      throw new BadMessageError('a write needs a record {version, value[, expiresAt]} or {version, deleted: true}');
  }

  private async onWrite(msg: WriteMessage): Promise<ReplyOf<WriteMessage>> {
    this.checkWrite(msg.key, msg.record);
    return this.applyWrite(msg.key, msg.record);
  }

  private async onWriteBatch(msg: WriteBatchMessage): Promise<ReplyOf<WriteBatchMessage>> {
    if (!Array.isArray(msg.records) || msg.records.length > MAX_BATCH_RECORDS) {
      throw new BadMessageError(`write-batch needs records (at most ${MAX_BATCH_RECORDS})`);
    }
    for (const [key, record] of msg.records) this.checkWrite(key, record);
    const applied = await Promise.all(msg.records.map(([key, record]) => this.apply(key, record)));
    return { applied: applied.filter(Boolean).length };
  }

  private async onHint(msg: HintMessage): Promise<ReplyOf<HintMessage>> {
    this.checkWrite(msg.key, msg.record);
    if (typeof msg.target !== 'string' || !this.membership.table.get(msg.target)) throw new BadMessageError('hint needs a known target');
    return { stored: await this.hints.keep(msg.target, msg.key, msg.record) };
  }

  private onRead(msg: ReadMessage): ReplyOf<ReadMessage> {
    const problem = typeof msg.key === 'string' ? keyProblem(msg.key) : 'key must be a string';
    if (problem) throw new BadMessageError(problem);
    return { record: this.deps.store.get(msg.key) ?? null };
  }

  // ---- coordinator side -----------------------------------------------------------------------

  /** Sends `msg` to replica `id`: locally when it is this node. */
  private sendTo<M extends Message>(id: string, msg: M, timeoutMs: number): Promise<ReplyOf<M>> {
    if (id === this.id) return this.handle(msg);
    const address = this.membership.addressOf(id);
    if (!address) return Promise.reject(new Error(`unknown member ${id}`));
    return this.deps.transport.send(address, msg, timeoutMs);
  }

  /**
   * Whether this node replicates `key`: undefined while that may change (a move under way anywhere,
   * or this node not a normal member), so that nothing is cleaned up on a guess.
   */
  private owns(key: string): boolean | undefined {
    const placement = this.membership.placement;
    if (!placement.stable || this.movement.busy() || this.memberStatus() !== 'normal' || this.staleReason) return undefined;
    return placement.replicas(key).write.includes(this.id);
  }

  /** The replicas a write of `key` goes to (the ring the moves under way lead to). */
  preferenceList(key: string): string[] {
    return this.membership.placement.replicas(key).write;
  }

  placement(): Placement {
    return this.membership.placement;
  }

  /** Refuses client requests a node cannot coordinate yet (or any more). */
  private checkCoordinating(): void {
    if (this.staleReason) throw new NotServingError(this.staleReason);
    if (!this.membership.isAnnounced()) {
      throw new NotServingError('this node has a fresh data directory and has not yet started or joined a cluster');
    }
    if (this.membership.table.self().status === 'removed') throw new NotServingError('this node left the cluster (decommissioned)');
  }

  /** Writes `value`; with `ttlMs` it expires that long after the write (by the coordinator's clock). */
  put(key: string, value: JsonValue, w?: number, ttlMs?: number): Promise<WriteResult> {
    const version = this.hlc.now(this.deps.clock.nowMs());
    return this.write(key, liveRecord(value, version, ttlMs === undefined ? undefined : version.wallMs + ttlMs), w);
  }

  delete(key: string, w?: number): Promise<WriteResult> {
    return this.write(key, tombstone(this.hlc.now(this.deps.clock.nowMs())), w);
  }

  /**
   * Replicas the failure detector has convicted are not asked (their answer would only cost the
   * deadline); they count as failures at once. Suspect ones are still asked.
   */
  private split(replicas: string[]): { ask: string[]; down: ReplicaFailure[] } {
    const ask: string[] = [];
    const down: ReplicaFailure[] = [];
    for (const id of replicas) {
      if (this.membership.liveness(id) === 'down') down.push({ replica: id, kind: 'down', reason: `down: ${this.whyDown(id)}` });
      else ask.push(id);
    }
    return { ask, down };
  }

  /** Why a member is down, in words: it stopped cleanly, it was removed, or phi convicted it. */
  whyDown(id: string): string {
    const now = this.deps.clock.nowMs();
    const reason = this.membership.table.downReason(id, now);
    if (reason === 'stopped') return 'it announced a clean shutdown (stopped)';
    if (reason === 'removed') return 'it was removed from the cluster';
    return `convicted by the failure detector (phi ${this.membership.table.phi(id, now).toFixed(1)})`;
  }

  /**
   * A write goes to every replica of the key at once and succeeds once W have stored it durably.
   * Two ways to fail, and the client is told which:
   *   - unavailable: fewer replicas that count toward W are alive (or stand-ins, with a sloppy
   *     quorum) than W. Decided before any replica is asked, so nothing is written anywhere and no
   *     hint is kept (Cassandra's Unavailable);
   *   - quorum not met: the write was sent and fewer than W acknowledged in time. It may have been
   *     applied (on the replicas that acknowledged, and later on the others through hints).
   */
  private async write(key: string, record: StoredRecord, w = this.config.writeQuorum): Promise<WriteResult> {
    let result = await this.writeOnce(key, record, w);
    // A replica already held a newer version, so the write lost as soon as it landed: this node's
    // clock was behind the key's last version (it had not seen it: a restart, a partition, a clock
    // that runs slow). Its clock has now observed that version; the write goes again above it, once
    // more at most (a write that loses again lost to a concurrent one, which is what last write
    // wins means).
    for (let attempt = 1; attempt <= SUPERSEDED_RETRIES; attempt++) {
      const newer = newestOf(result.newer);
      if (newer === undefined) break;
      const { clock } = this.deps;
      this.observe(newer);
      this.restamped?.inc();
      result = await this.writeOnce(key, { ...record, version: this.hlc.now(clock.nowMs()) }, w);
    }
    return result;
  }

  private async writeOnce(key: string, record: StoredRecord, w: number): Promise<WriteResult> {
    this.checkCoordinating();
    const placed = this.membership.placement.replicas(key);
    const replicas = placed.write;
    const timeoutMs = this.config.requestTimeoutMs;
    const msg: WriteMessage = { type: 'write', key, record };
    const { ask, down } = this.split(replicas);
    if (down.length === 0 && placed.pending.length === 0) {
      // every replica alive and no move under way for this key: the common case
      if (replicas.length < w)
        throw new UnavailableError('write', { key, required: w, replicas, alive: ask, failures: withMissing([], replicas, w) });
      const g = await gather(this.writeOrder(replicas), w, (id) => this.sendTo(id, msg, timeoutMs), this.deps.clock, timeoutMs);
      return this.writeOutcome(key, record, w, replicas, g, [], {});
    }
    // Sloppy quorum: each replica known to be down gets a live substitute from further round the
    // ring, which keeps the write as a hint for it and counts toward W.
    // (only for replicas whose acks count: a joining replica that is down gets a plain hint)
    const downCounted = down.filter((d) => placed.stable.includes(d.replica));
    const substitutes = this.config.repair.sloppyQuorum ? this.substitutes(key, replicas, downCounted.length) : [];
    const hintedOn: Record<string, string> = {};
    const hintFor = new Map<string, string>();
    substitutes.forEach((sub, i) => {
      const target = (downCounted[i] as ReplicaFailure).replica;
      hintedOn[target] = sub;
      hintFor.set(sub, target);
    });
    // W counts the replicas that held the key's range before the moves under way and still will,
    // and substitutes standing in for them (core/placement.ts)
    const counted = new Set([...placed.stable, ...substitutes]);
    const targets = [...ask, ...substitutes];
    const countedAlive = targets.filter((id) => counted.has(id));
    const unsubstituted = down.filter((d) => !(d.replica in hintedOn));
    if (countedAlive.length < w) {
      throw new UnavailableError('write', {
        key,
        required: w,
        replicas,
        alive: countedAlive,
        failures: withMissing(unsubstituted, replicas, w),
      });
    }
    const call = (id: string) => {
      const target = hintFor.get(id);
      if (target === undefined) return this.sendTo(id, msg, timeoutMs);
      return this.sendTo(id, { type: 'hint', target, key, record }, timeoutMs).then((r) => {
        if (!r.stored) throw new Error(`substitute ${id} did not keep the hint for ${target}`);
        return { applied: true };
      });
    };
    const g = await gather(targets, w, call, this.deps.clock, timeoutMs, placed.pending.length > 0 ? counted : undefined);
    return this.writeOutcome(key, record, w, replicas, g, unsubstituted, hintedOn);
  }

  /**
   * The order a write's calls go out in, when this node is one of the replicas: the other replicas
   * first, then this node. A frame leaves the moment it is asked for (net/flush.ts), and this node's
   * own write costs its event loop the replica work up to the commit log's disk write, which for a
   * lone write is made on the loop's own thread (storage/commit-log.ts): asked before a frame, it
   * would hold that frame back by a disk write. The other replicas' work and two hops run while this
   * node writes.
   */
  private writeOrder(replicas: string[]): string[] {
    const self = replicas.indexOf(this.id);
    if (self < 0 || self === replicas.length - 1) return replicas;
    const order = replicas.filter((id) => id !== this.id);
    order.push(this.id);
    return order;
  }

  /**
   * The write was sent: replicas that did not take it (down ones not stood in for, and those whose
   * calls failed or timed out) get a hint here once every call has settled; then success, or 503.
   */
  private writeOutcome(
    key: string,
    record: StoredRecord,
    w: number,
    replicas: string[],
    g: Gathered<unknown>,
    unsubstituted: ReplicaFailure[],
    hintedOn: Record<string, string>,
  ): WriteResult {
    const failures = unsubstituted.length === 0 ? g.failures : [...unsubstituted, ...g.failures];
    if (failures.length > 0) this.countFailures('write', failures);
    void g.settled.then(({ failures: late }) => {
      if (late.length === 0 && unsubstituted.length === 0) return;
      const missed = new Set([...unsubstituted.map((d) => d.replica), ...late.map((f) => f.replica).filter((id) => replicas.includes(id))]);
      for (const id of missed)
        void this.hints
          .keep(id, key, record)
          .catch((err: unknown) => this.deps.log.warn({ err: String(err), target: id }, 'could not store a hint'));
    });
    const acked = g.replies.map((r) => r.replica);
    if (g.outcome === 'failed') {
      throw new QuorumError('write', { key, required: w, replicas, succeeded: acked, failures: withMissing(failures, replicas, w) });
    }
    const newer = g.replies.map((r) => (r.value as WriteReply).newer).filter((v): v is Version => v !== undefined);
    return { key, record, coordinator: this.id, replicas, required: w, acked, hintedOn, failures, newer };
  }

  /** Live nodes beyond the preference list, in ring order, to stand in for `count` down replicas. */
  private substitutes(key: string, replicas: string[], count: number): string[] {
    if (count === 0) return [];
    const ring = this.membership.ring;
    const extended = ring.preferenceList(key, ring.size);
    return extended.filter((id) => !replicas.includes(id) && this.membership.liveness(id) !== 'down').slice(0, count);
  }

  /**
   * Reads ask R replicas, not N: this node among them when it is one (a local read costs no
   * message), the others in random order (spreading the load). The rest are kept in reserve: one is
   * asked when an asked replica fails, and once when a reply is slower than the recent p99 of
   * replica reads (a replica that hangs costs a read that much, not its deadline).
   *
   * This node is asked last of the R: its read is synchronous, so asked first it would hold the
   * frames to the others back by its own LMDB read; asked last, it runs while they answer.
   */
  private readOrder(ask: string[], r: number): string[] {
    const others = ask.filter((id) => id !== this.id);
    for (let i = others.length - 1; i > 0; i--) {
      const j = Math.floor(this.deps.random.next() * (i + 1));
      [others[i], others[j]] = [others[j] as string, others[i] as string];
    }
    if (others.length === ask.length) return others;
    others.splice(Math.max(0, Math.min(r, ask.length) - 1), 0, this.id);
    return others;
  }

  /**
   * Milliseconds after which a read asks one more replica: the p99 of recent replica reads (at
   * least 1), SPECULATE_BEFORE_SAMPLES_MS until there are enough of them, and never later than half
   * the deadline, so the replica asked then still has time to answer.
   */
  private speculateAfterMs(): number {
    const p99 = this.readLatency.p99();
    const ms = p99 === undefined ? SPECULATE_BEFORE_SAMPLES_MS : Math.max(1, Math.ceil(p99));
    return Math.min(ms, this.config.requestTimeoutMs / 2);
  }

  async get(key: string, r = this.config.readQuorum): Promise<ReadResult> {
    this.checkCoordinating();
    // read only the replicas that hold the key's range: not one still being streamed it
    const replicas = this.membership.placement.replicas(key).stable;
    const { ask, down } = this.split(replicas);
    if (ask.length < r)
      throw new UnavailableError('read', { key, required: r, replicas, alive: ask, failures: withMissing(down, replicas, r) });
    const timeoutMs = this.config.requestTimeoutMs;
    const { clock } = this.deps;
    const started = clock.nowMs();
    const msg: ReadMessage = { type: 'read', key };
    const read = (id: string): Promise<ReplyOf<ReadMessage>> => {
      if (id === this.id) return this.handle(msg);
      const sent = clock.nowMs();
      return this.sendTo(id, msg, timeoutMs).then((reply) => {
        this.readLatency.add(clock.nowMs() - sent);
        return reply;
      });
    };
    const g = await gather(this.readOrder(ask, r), r, read, clock, timeoutMs, undefined, {
      initial: r,
      speculateAfterMs: this.speculateAfterMs(),
    });
    const failures = [...down, ...g.failures];
    this.countFailures('read', failures);
    const responded = g.replies.map((x) => x.replica);
    if (g.outcome === 'failed') {
      throw new QuorumError('read', { key, required: r, replicas, succeeded: responded, failures: withMissing(failures, replicas, r) });
    }
    const record = newest(g.replies.map((x) => x.value.record ?? undefined));
    if (record) this.observe(record.version);
    let repaired: string[] = [];
    if (record && this.config.repair.readRepair) {
      // Blocking read repair (Cassandra's): stale replicas among those that answered get the newest
      // record before the reply, so a later quorum read cannot see an older one (monotonic reads).
      const stale = g.replies.filter((x) => supersedes(record, x.value.record ?? undefined)).map((x) => x.replica);
      if (stale.length > 0) {
        const left = Math.max(1, timeoutMs - (this.deps.clock.nowMs() - started));
        const results = await gather(
          stale,
          stale.length,
          (id) => this.sendTo(id, { type: 'write', key, record }, left),
          this.deps.clock,
          left,
        );
        repaired = results.replies.map((x) => x.replica);
        this.readRepairs?.inc({ when: 'before_reply' }, repaired.length);
      }
      // Replicas that answered after the reply: repaired in the background.
      void g.settled.then(({ replies }) => {
        for (const late of replies) {
          if (responded.includes(late.replica) || !supersedes(record, late.value.record ?? undefined)) continue;
          this.sendTo(late.replica, { type: 'write', key, record }, timeoutMs).then(
            () => this.readRepairs?.inc({ when: 'after_reply' }),
            () => {},
          );
        }
      });
    }
    return { key, record, coordinator: this.id, replicas, required: r, responded, repaired, failures };
  }

  private countFailures(op: 'read' | 'write', failures: ReplicaFailure[]): void {
    for (const f of failures) this.replicaFailures?.inc({ op, reason: f.kind });
  }

  /** What /health and the CLI report about this node. */
  status(): {
    id: string;
    address: string;
    generation: number;
    uptimeMs: number;
    members: number;
    ring: string;
    status: MemberStatus | 'undecided';
  } {
    return {
      id: this.id,
      address: this.address,
      generation: this.generation,
      uptimeMs: this.deps.clock.nowMs() - this.startedAtMs,
      members: this.membership.table.size(),
      ring: this.membership.placement.checksum(),
      status: this.memberStatus(),
    };
  }
}

/**
 * When the ring has fewer members than the replication factor, a quorum can be impossible before
 * anyone is asked; say that instead of an empty failure list.
 */
function withMissing(failures: ReplicaFailure[], replicas: string[], required: number): ReplicaFailure[] {
  if (replicas.length >= required) return failures;
  return [
    ...failures,
    {
      replica: '(none)',
      kind: 'no_replica',
      reason: `no_replica: only ${replicas.length} member(s) in the ring; ${required} replica(s) required`,
    },
  ];
}
