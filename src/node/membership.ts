// Membership in motion: the heartbeat loop, the gossip loop (push-pull with one random live peer
// per round, sometimes an unreachable one, sometimes a seed), the failure detector's verdicts, and
// the peer-discovery loop that finds the first peers. Cassandra's Gossiper, on injected parts.

import type { Clock, TimerId } from '../core/clock';
import { TUNING } from '../core/defaults';
import type { Logger } from '../core/log';
import {
  isMemberEntry,
  type MemberEntry,
  type MemberStatus,
  type MembershipOptions,
  MemberTable,
  type MemberView,
} from '../core/membership';
import type { GossipMessage, GossipPushMessage, HelloMessage, ReplyOf, RingStateMessage, ShutdownMessage } from '../core/messages';
import type { Liveness } from '../core/phi';
import { Placement } from '../core/placement';
import { jittered, type Random, randomInt } from '../core/random';
import type { Ring } from '../core/ring';
import type { Discovery } from '../discovery/discovery';
import type { Counter, Metrics } from '../metrics';
import type { Transport } from '../net/transport';
import type { Store } from '../storage/store';
import { BadMessageError } from './errors';

export interface MembershipConfig {
  vnodes: number;
  replicationFactor: number;
  heartbeatIntervalMs: number;
  gossipIntervalMs: number;
  phiConvictThreshold: number;
  /** First pause between discovery rounds; doubles (with jitter) up to the max while peers are missing. */
  discoveryIntervalMs: number;
  discoveryMaxIntervalMs: number;
  /** Members the cluster should have (a StatefulSet's replicas); undefined when unknown. */
  expectedMembers: number | undefined;
  /** Most member entries sent in one gossip message (bounds its size). */
  maxGossipEntries: number;
}

export interface MembershipDeps {
  clock: Clock;
  random: Random;
  transport: Transport;
  store: Store;
  log: Logger;
  discovery: Discovery;
  metrics?: Metrics | undefined;
}

/** What the member table persists: enough to rebuild the ring at start-up. */
export type StoredMember = Pick<MemberEntry, 'id' | 'address' | 'generation' | 'status'>;

export interface DiscoveryStatus {
  provider: string;
  /** True once every expected member is known and every candidate address belongs to a member. */
  complete: boolean;
  expected: number | undefined;
  known: number;
  candidates: string[];
  problems: string[];
  /** The provider says the settings cannot be right (this node's own name does not resolve). */
  selfProblem?: string;
}

function storable(entries: MemberEntry[], selfId: string): StoredMember[] {
  return entries.filter((e) => e.id !== selfId).map(({ id, address, generation, status }) => ({ id, address, generation, status }));
}

/** What the node is told when the cluster's view of it changes under it. */
export interface MembershipEvents {
  /** The cluster says this node's id was removed (this incarnation, or one before it). */
  selfRemoved(entry: MemberEntry): void;
}

export class Membership {
  readonly table: MemberTable;
  private placementCache: Placement;
  private running = false;
  /**
   * False until this node has said who it is (a node with a fresh data directory first looks at the
   * cluster, then starts one or joins it): until then it gossips nothing and takes nobody in.
   */
  private announced: boolean;
  events: MembershipEvents | undefined;
  private heartbeatTimer: TimerId | undefined;
  private gossipTimer: TimerId | undefined;
  private discoveryTimer: TimerId | undefined;
  private discoveryBackoffMs: number;
  private discoveryRunning = false;
  /** The last round found discovery complete; only the slow re-check timer is pending. */
  private discoveryIdle = false;
  private candidates: string[] = [];
  private candidatesFetched = false;
  private problems: string[] = [];
  private selfProblem: string | undefined;
  private wasComplete = false;
  /** The first discovery round has finished (startup probe: the node has tried to join). */
  private firstRoundDone = false;
  private podsSeen: number | undefined;
  private podsLookup: Promise<number | undefined> | undefined;
  private readonly verdicts = new Map<string, Liveness>();
  private readonly gossipRounds: Counter | undefined;
  private readonly convictions: Counter | undefined;

  constructor(
    self: MemberEntry,
    restored: readonly StoredMember[],
    private readonly config: MembershipConfig,
    private readonly deps: MembershipDeps,
    announced = true,
  ) {
    this.announced = announced;
    const opts: MembershipOptions = {
      convictThreshold: config.phiConvictThreshold,
      windowSize: TUNING.phiWindowSize,
      initialIntervalMs: 2 * config.gossipIntervalMs,
      maxIntervalMs: 4 * Math.max(config.gossipIntervalMs, config.heartbeatIntervalMs),
    };
    this.table = new MemberTable(self, opts);
    this.table.restore(restored, deps.clock.nowMs());
    this.placementCache = this.computePlacement();
    this.discoveryBackoffMs = config.discoveryIntervalMs;
    this.gossipRounds = deps.metrics?.counter('quorumkv_gossip_rounds_total', 'Gossip exchanges started, by outcome', ['outcome']);
    this.convictions = deps.metrics?.counter('quorumkv_member_state_changes_total', 'Failure-detector verdict changes, by new state', [
      'state',
    ]);
    deps.metrics?.gauge(
      'quorumkv_members_by_state',
      "Members of this node's table by failure-detector state",
      () => {
        const counts = { alive: 0, suspect: 0, down: 0 };
        for (const m of this.table.view(this.deps.clock.nowMs())) counts[m.liveness]++;
        return Object.entries(counts).map(([state, n]) => [{ state }, n]);
      },
      ['state'],
    );
  }

  /** The ring keys are written to (the one the moves under way lead to). */
  get ring(): Ring {
    return this.placementCache.next;
  }

  get placement(): Placement {
    return this.placementCache;
  }

  private computePlacement(): Placement {
    return new Placement(
      this.announced ? this.table.members() : this.table.members().filter((m) => m.id !== this.table.selfId),
      this.config.vnodes,
      this.config.replicationFactor,
    );
  }

  isAnnounced(): boolean {
    return this.announced;
  }

  /**
   * This node's status changes (it starts, joins, finishes joining, leaves): persisted by the caller,
   * spread by gossip (and pushed to every member by a move's confirmation round).
   */
  async setStatus(status: MemberStatus, progress?: number): Promise<MemberEntry> {
    this.announced = true;
    const entry = this.table.setStatus(status, progress);
    this.placementCache = this.computePlacement();
    this.deps.log.info({ status, placement: this.placementCache.checksum() }, `this node is now ${status}`);
    return entry;
  }

  /** removenode: a status published on behalf of a member that is down for good. */
  async setStatusOf(id: string, status: 'leaving' | 'removed'): Promise<MemberEntry> {
    const entry = this.table.setStatusOf(id, status, this.deps.clock.nowMs());
    this.placementCache = this.computePlacement();
    this.deps.log.info({ member: id, status, placement: this.placementCache.checksum() }, `member ${id} is now ${status} (removenode)`);
    await this.persist();
    return entry;
  }

  setProgress(progress: number): void {
    this.table.setProgress(progress);
  }

  private persist(): Promise<void> {
    return this.deps.store.putMeta('members', storable(this.table.all(), this.table.selfId));
  }

  start(): void {
    this.running = true;
    const { clock, random } = this.deps;
    const heartbeat = () => {
      this.table.beat();
      this.heartbeatTimer = clock.setTimer(this.config.heartbeatIntervalMs, heartbeat);
    };
    this.heartbeatTimer = clock.setTimer(this.config.heartbeatIntervalMs, heartbeat);
    const gossip = () => {
      this.gossipRound();
      this.gossipTimer = clock.setTimer(this.config.gossipIntervalMs, gossip);
    };
    this.gossipTimer = clock.setTimer(randomInt(random, 0, this.config.gossipIntervalMs), gossip);
    this.discoveryRound();
  }

  stop(): void {
    this.running = false;
    for (const t of [this.heartbeatTimer, this.gossipTimer, this.discoveryTimer]) if (t !== undefined) this.deps.clock.cancel(t);
    this.heartbeatTimer = this.gossipTimer = this.discoveryTimer = undefined;
  }

  // ---- what the rest of the node asks ------------------------------------------------------------

  liveness(id: string): Liveness {
    return this.table.liveness(id, this.deps.clock.nowMs());
  }

  addressOf(id: string): string | undefined {
    return this.table.get(id)?.address;
  }

  view(): MemberView[] {
    return this.table.view(this.deps.clock.nowMs());
  }

  /** Addresses of the other members that are not down (the seed's /peers). */
  livePeers(): string[] {
    const now = this.deps.clock.nowMs();
    return this.table
      .members()
      .filter((m) => m.id !== this.table.selfId && this.table.liveness(m.id, now) !== 'down')
      .map((m) => m.address);
  }

  discoveryStatus(): DiscoveryStatus {
    return {
      provider: this.deps.discovery.name,
      complete: this.discoveryComplete(),
      expected: this.config.expectedMembers,
      known: this.table.size(),
      candidates: [...this.candidates],
      problems: [...this.problems],
      ...(this.selfProblem !== undefined ? { selfProblem: this.selfProblem } : {}),
    };
  }

  discoveryTried(): boolean {
    return this.firstRoundDone;
  }

  /** Why the discovery settings cannot be right, as of the last round (startup probe); undefined when they can. */
  discoveryProblem(): string | undefined {
    return this.selfProblem;
  }

  /** Members not marked down, this node included. */
  liveCount(): number {
    const now = this.deps.clock.nowMs();
    return this.table.members().filter((m) => this.table.liveness(m.id, now) !== 'down').length;
  }

  /**
   * How many pods exist, if discovery can tell; waits at most `budgetMs` for a fresh count and
   * otherwise answers with the last one (a probe must answer within its timeout even when DNS hangs).
   */
  async podsExisting(budgetMs: number): Promise<number | undefined> {
    const { discovery, clock } = this.deps;
    if (!discovery.podsThatExist) return undefined;
    this.podsLookup ??= discovery
      .podsThatExist()
      .then(
        (n) => {
          this.podsSeen = n;
          return n;
        },
        () => this.podsSeen,
      )
      .finally(() => {
        this.podsLookup = undefined;
      });
    let timer: TimerId | undefined;
    const late = new Promise<number | undefined>((resolve) => {
      timer = clock.setTimer(budgetMs, () => resolve(this.podsSeen));
    });
    const n = await Promise.race([this.podsLookup, late]);
    if (timer !== undefined) clock.cancel(timer);
    return n;
  }

  /** Tells every live peer this node is stopping, so they mark it down now (best effort, bounded). */
  async announceShutdown(): Promise<void> {
    const { transport } = this.deps;
    const { id, generation, heartbeat } = this.table.self();
    const now = this.deps.clock.nowMs();
    const peers = this.table.members().filter((m) => m.id !== id && this.table.liveness(m.id, now) !== 'down');
    await Promise.all(
      peers.map((m) =>
        transport.send(m.address, { type: 'shutdown', from: { id, generation, heartbeat } }, this.timeoutMs()).catch(() => undefined),
      ),
    );
  }

  onShutdown(msg: ShutdownMessage): ReplyOf<ShutdownMessage> {
    const d = msg.from;
    if (!d || typeof d.id !== 'string' || !Number.isSafeInteger(d.generation) || !Number.isSafeInteger(d.heartbeat)) {
      throw new BadMessageError('shutdown needs from: {id, generation, heartbeat}');
    }
    if (this.table.markShutdown(d)) {
      this.verdicts.set(d.id, 'down');
      this.convictions?.inc({ state: 'down' });
      this.deps.log.info({ member: d.id }, 'member announced a clean shutdown: marked down');
    }
    return {};
  }

  // ---- merging what others say --------------------------------------------------------------------

  /** Merges entries heard from peers: rebuilds the ring when ids change, persists what must survive. */
  private async absorb(entries: readonly unknown[]): Promise<void> {
    const valid = entries.filter(isMemberEntry);
    const { added, restarted, impostors, statusChanged, refused, selfRemoved } = this.table.merge(valid, this.deps.clock.nowMs());
    if (selfRemoved) this.events?.selfRemoved(selfRemoved);
    for (const e of refused) {
      this.deps.log.warn(
        { member: e.id, address: e.address, generation: e.generation, status: e.status },
        'refused a member that was removed from the cluster: it must join again with an empty data directory',
      );
    }
    for (const { entry, previous } of statusChanged) {
      this.deps.log.info({ member: entry.id, from: previous, to: entry.status }, `member is now ${entry.status}`);
    }
    for (const e of impostors) {
      this.deps.log.error(
        { id: e.id, address: e.address, generation: e.generation },
        "another node gossips with this node's id; check --node-id",
      );
    }
    for (const e of added) this.deps.log.info({ member: e.id, address: e.address, members: this.table.size() }, 'member joined');
    for (const { entry, previousAddress } of restarted) {
      if (entry.address !== previousAddress) {
        this.deps.log.info({ member: entry.id, from: previousAddress, to: entry.address }, 'member restarted at a new address');
      } else this.deps.log.info({ member: entry.id, generation: entry.generation }, 'member restarted');
    }
    const before = this.placementCache.checksum();
    if (added.length > 0 || restarted.length > 0 || statusChanged.length > 0) {
      this.placementCache = this.computePlacement();
      if (this.placementCache.checksum() !== before) {
        this.deps.log.info({ members: this.table.size(), placement: this.placementCache.checksum() }, 'ring changed');
      }
    }
    if (added.length > 0 || restarted.length > 0 || statusChanged.length > 0) await this.persist();
  }

  onHello(msg: HelloMessage): Promise<ReplyOf<HelloMessage>> {
    if (!isMemberEntry(msg.from)) throw new BadMessageError('hello needs from: {id, address, generation, heartbeat, status}');
    if (!this.announced) return Promise.resolve({ member: this.table.self(), members: [], undecided: true });
    if (msg.probe) return Promise.resolve({ member: this.table.self(), members: this.table.all() });
    return this.absorb([msg.from]).then(() => ({ member: this.table.self(), members: this.table.all() }));
  }

  /** A move's confirmation round: take its entries, say what placement this node computes now. */
  async onRingState(msg: RingStateMessage): Promise<ReplyOf<RingStateMessage>> {
    if (!Array.isArray(msg.entries)) throw new BadMessageError('ring-state needs entries');
    await this.absorb(msg.entries);
    const moving = this.table.members().filter((m) => m.status === 'joining' || m.status === 'leaving');
    return { placement: this.placementCache.checksum(), moving };
  }

  /**
   * A node with a fresh data directory looks before it leaps: asks every discovery candidate for its
   * member table without announcing itself (hello probes).
   */
  async probe(): Promise<{ entries: MemberEntry[]; undecided: number; unanswered: string[]; selfProblem?: string }> {
    const { discovery, transport } = this.deps;
    const found = await discovery.candidates();
    this.candidates = found.addresses;
    this.candidatesFetched = true;
    this.problems = found.problems;
    this.noteSelfProblem(found.selfProblem);
    const self = this.table.self();
    const entries = new Map<string, MemberEntry>();
    const unanswered: string[] = [];
    let undecided = 0;
    await Promise.all(
      found.addresses
        .filter((a) => a !== self.address)
        .map(async (address) => {
          try {
            const r = await transport.send(address, { type: 'hello', from: self, probe: true }, this.timeoutMs());
            if (r.undecided) undecided++;
            for (const e of [r.member, ...(r.members ?? [])]) {
              if (!isMemberEntry(e) || (r.undecided && e.id === r.member?.id)) continue;
              const known = entries.get(e.id);
              if (!known || e.generation > known.generation || (e.generation === known.generation && e.heartbeat > known.heartbeat))
                entries.set(e.id, e);
            }
          } catch {
            unanswered.push(address);
          }
        }),
    );
    this.firstRoundDone = true;
    return {
      entries: [...entries.values()],
      undecided,
      unanswered,
      ...(found.selfProblem !== undefined ? { selfProblem: found.selfProblem } : {}),
    };
  }

  /** Merges entries learned outside gossip (a move's confirmation replies, a probe's answer). */
  learn(entries: readonly unknown[]): Promise<void> {
    return this.absorb(entries);
  }

  onGossip(msg: GossipMessage): ReplyOf<GossipMessage> {
    if (!Array.isArray(msg.digests)) throw new BadMessageError('gossip needs digests');
    const digests = msg.digests.filter(
      (d) =>
        typeof d === 'object' &&
        d !== null &&
        typeof d.id === 'string' &&
        Number.isSafeInteger(d.generation) &&
        Number.isSafeInteger(d.heartbeat),
    );
    const { send, want } = this.table.diff(digests, this.config.maxGossipEntries);
    return { entries: send, want };
  }

  async onGossipPush(msg: GossipPushMessage): Promise<ReplyOf<GossipPushMessage>> {
    if (!Array.isArray(msg.entries)) throw new BadMessageError('gossip-push needs entries');
    await this.absorb(msg.entries);
    return {};
  }

  // ---- gossip -----------------------------------------------------------------------------------

  private timeoutMs(): number {
    return Math.max(100, Math.min(2000, this.config.gossipIntervalMs));
  }

  /** One push-pull exchange with the node at `address`. */
  private async exchange(address: string): Promise<void> {
    const { transport } = this.deps;
    try {
      const reply = await transport.send(
        address,
        { type: 'gossip', from: this.table.selfId, digests: this.table.digests() },
        this.timeoutMs(),
      );
      await this.absorb(reply.entries ?? []);
      const wanted = this.table.entries(reply.want ?? []);
      if (wanted.length > 0) {
        await transport.send(
          address,
          { type: 'gossip-push', from: this.table.selfId, entries: wanted.slice(0, this.config.maxGossipEntries) },
          this.timeoutMs(),
        );
      }
      this.gossipRounds?.inc({ outcome: 'ok' });
    } catch (err) {
      this.gossipRounds?.inc({ outcome: 'failed' });
      this.deps.log.debug({ address, err: String(err) }, 'gossip exchange failed');
    }
  }

  private gossipRound(): void {
    if (!this.running) return;
    const { random, clock } = this.deps;
    const now = clock.nowMs();
    this.updateVerdicts(now);
    const others = this.table.members().filter((m) => m.id !== this.table.selfId);
    const live = others.filter((m) => this.table.liveness(m.id, now) !== 'down');
    const unreachable = others.filter((m) => this.table.liveness(m.id, now) === 'down');
    const seeds = this.candidates.filter((a) => a !== this.table.self().address);
    let toSeed = false;
    if (live.length > 0) {
      const peer = live[randomInt(random, 0, live.length - 1)] as MemberEntry;
      toSeed = seeds.includes(peer.address);
      void this.exchange(peer.address);
    }
    // Now and then try a member believed down: it may be back (and this is how we learn it).
    if (unreachable.length > 0 && random.next() < unreachable.length / (live.length + 1)) {
      void this.exchange((unreachable[randomInt(random, 0, unreachable.length - 1)] as MemberEntry).address);
    }
    // Seeds keep partitioned islands from forming: always with no live peer, sometimes otherwise.
    if (seeds.length > 0 && !toSeed && (live.length === 0 || random.next() < seeds.length / (others.length + 1))) {
      void this.exchange(seeds[randomInt(random, 0, seeds.length - 1)] as string);
    }
    if (this.discoveryIdle && !this.discoveryRunning && !this.discoveryComplete()) {
      this.deps.log.info({ provider: this.deps.discovery.name }, 'discovery resumed: members are missing');
      this.wakeDiscovery();
    }
  }

  private updateVerdicts(now: number): void {
    for (const m of this.table.view(now)) {
      if (m.id === this.table.selfId) continue;
      const before = this.verdicts.get(m.id);
      if (before === m.liveness) continue;
      this.verdicts.set(m.id, m.liveness);
      if (before === undefined && m.liveness === 'alive') continue;
      this.convictions?.inc({ state: m.liveness });
      const fields = { member: m.id, address: m.address, phi: Number(m.phi.toFixed(2)), silentMs: m.sinceHeartbeatMs };
      if (m.liveness === 'down') {
        if (m.downReason === 'convicted') this.deps.log.warn(fields, 'member is down');
        else this.deps.log.info({ ...fields, reason: m.downReason }, 'member is down');
      } else if (m.liveness === 'suspect') this.deps.log.info(fields, 'member is suspect');
      else this.deps.log.info(fields, 'member is alive');
    }
  }

  // ---- discovery --------------------------------------------------------------------------------------

  /** Keeps the provider's verdict on the settings; logs it when it appears or changes. */
  private noteSelfProblem(problem: string | undefined): void {
    if (problem !== undefined && problem !== this.selfProblem) this.deps.log.error({}, `discovery: ${problem}`);
    this.selfProblem = problem;
  }

  private discoveryComplete(): boolean {
    const expected = this.config.expectedMembers;
    const now = this.deps.clock.nowMs();
    if (expected !== undefined) {
      const alive = this.table.members().filter((m) => this.table.liveness(m.id, now) !== 'down').length;
      if (alive < expected) return false;
    }
    if (!this.candidatesFetched) return false;
    return this.candidates.every((a) => this.table.byAddress(a) !== undefined);
  }

  private wakeDiscovery(): void {
    this.discoveryIdle = false;
    this.discoveryBackoffMs = this.config.discoveryIntervalMs;
    if (this.discoveryTimer !== undefined) this.deps.clock.cancel(this.discoveryTimer);
    this.discoveryTimer = undefined;
    this.discoveryRound();
  }

  private discoveryRound(): void {
    if (!this.running || this.discoveryRunning) return;
    this.discoveryTimer = undefined;
    this.discoveryRunning = true;
    void this.discover().finally(() => {
      this.discoveryRunning = false;
      this.firstRoundDone = true;
      if (!this.running) return;
      const { clock, random } = this.deps;
      // Complete: idle, but look again now and then (new pods, changed addresses).
      this.discoveryIdle = this.discoveryComplete();
      const wait = this.discoveryIdle ? this.config.discoveryMaxIntervalMs : this.discoveryBackoffMs;
      if (!this.discoveryIdle) this.discoveryBackoffMs = Math.min(this.discoveryBackoffMs * 2, this.config.discoveryMaxIntervalMs);
      this.discoveryTimer = clock.setTimer(jittered(random, wait), () => this.discoveryRound());
    });
  }

  private async discover(): Promise<void> {
    const { discovery, transport, clock, log } = this.deps;
    const found = await discovery.candidates();
    this.candidates = found.addresses;
    this.candidatesFetched = true;
    this.problems = found.problems;
    this.noteSelfProblem(found.selfProblem);
    if (found.problems.length > 0) log.debug({ problems: found.problems }, 'discovery: some candidates did not resolve');
    const now = clock.nowMs();
    const self = this.table.self();
    const toGreet = found.addresses.filter((a) => {
      if (a === self.address) return false;
      const m = this.table.byAddress(a);
      return m === undefined || this.table.liveness(m.id, now) === 'down';
    });
    await Promise.all(
      toGreet.map(async (address) => {
        try {
          const reply = await transport.send(address, { type: 'hello', from: this.table.self() }, this.timeoutMs());
          // a node still deciding whether to start or join a cluster is not a member yet
          if (!reply.undecided) await this.absorb([reply.member, ...(reply.members ?? [])]);
        } catch (err) {
          log.debug({ address, err: String(err) }, 'discovery: candidate did not answer');
        }
      }),
    );
    const complete = this.discoveryComplete();
    if (complete && !this.wasComplete) log.info({ provider: discovery.name, members: this.table.size() }, 'discovery complete');
    this.wasComplete = complete;
  }
}
