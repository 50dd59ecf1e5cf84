// A quorumkv node: replica and coordinator. Protocol only: time, randomness, the network and
// the disk are injected (Clock, Random, Transport, Store), so the simulator runs this same code.
//
// Membership here is static: the node says hello to each seed address until it has learned the
// id behind it. Members are remembered in the store, so a restarted node has its ring at once.

import type { Clock, TimerId } from '../core/clock';
import { Hlc } from '../core/hlc';
import { keyProblem } from '../core/limits';
import type { Logger } from '../core/log';
import type { HelloMessage, MemberInfo, Message, ReadMessage, ReplyOf, WriteMessage } from '../core/messages';
import { jittered, type Random } from '../core/random';
import { isStoredRecord, type JsonValue, liveRecord, newest, type StoredRecord, supersedes, tombstone } from '../core/record';
import { Ring } from '../core/ring';
import type { Counter, Metrics } from '../metrics';
import type { Transport } from '../net/transport';
import type { Store } from '../storage/store';
import { BadMessageError, QuorumError } from './errors';
import { type Gathered, gather, type ReplicaFailure } from './fanout';

export interface NodeConfig {
  /** Stable identity (pod name); survives restarts and address changes. */
  id: string;
  /** host:port where peers reach this node. */
  address: string;
  /** Addresses of other nodes to say hello to (may include this node's own). */
  seeds: string[];
  replicationFactor: number;
  readQuorum: number;
  writeQuorum: number;
  vnodes: number;
  /** Deadline of a client request, internode calls included. */
  requestTimeoutMs: number;
  /** Pause between rounds of hellos to seeds not yet identified. */
  seedRetryMs: number;
}

export interface NodeDeps {
  clock: Clock;
  random: Random;
  transport: Transport;
  store: Store;
  log: Logger;
  metrics?: Metrics;
}

export interface WriteResult {
  key: string;
  record: StoredRecord;
  coordinator: string;
  replicas: string[];
  required: number;
  acked: string[];
  failures: ReplicaFailure[];
}

export interface ReadResult {
  key: string;
  /** The newest record among the replies; undefined when no replica has the key. */
  record: StoredRecord | undefined;
  coordinator: string;
  replicas: string[];
  required: number;
  responded: string[];
  failures: ReplicaFailure[];
}

interface NodeMeta {
  id: string;
  generation: number;
}

export class Node {
  readonly id: string;
  readonly address: string;
  readonly generation: number;
  readonly startedAtMs: number;

  private readonly hlc: Hlc;
  private readonly members = new Map<string, MemberInfo>();
  private ring: Ring;
  /** Seed addresses whose node id is known (or that are this node). */
  private readonly identifiedSeeds = new Set<string>();
  private seedTimer: TimerId | undefined;
  private running = false;
  private readonly replicaFailures: Counter | undefined;

  private constructor(
    readonly config: NodeConfig,
    private readonly deps: NodeDeps,
    generation: number,
    knownMembers: MemberInfo[],
  ) {
    this.id = config.id;
    this.address = config.address;
    this.generation = generation;
    this.startedAtMs = deps.clock.nowMs();
    this.hlc = new Hlc(config.id);
    this.members.set(this.id, this.self());
    for (const m of knownMembers) if (m.id !== this.id) this.members.set(m.id, m);
    this.ring = new Ring(this.members.keys(), config.vnodes);
    this.replicaFailures = deps.metrics?.counter(
      'quorumkv_replica_failures_total',
      'Replica calls of coordinated requests that failed or timed out, by operation and reason',
    );
    for (const seed of config.seeds) {
      if (seed === config.address || [...this.members.values()].some((m) => m.address === seed && m.id !== this.id)) {
        this.identifiedSeeds.add(seed);
      }
    }
  }

  /**
   * Opens a node on a store: checks the store belongs to this id, takes a generation higher than
   * any before it on this store, and reloads the members it knew.
   */
  static async create(config: NodeConfig, deps: NodeDeps): Promise<Node> {
    const meta = deps.store.getMeta<NodeMeta>('node');
    if (meta && meta.id !== config.id) {
      throw new Error(
        `the data directory belongs to node ${JSON.stringify(meta.id)}, not ${JSON.stringify(config.id)}: ` +
          'start with that --node-id, or point --data-dir elsewhere',
      );
    }
    const generation = Math.max(deps.clock.nowMs(), (meta?.generation ?? 0) + 1);
    await deps.store.putMeta('node', { id: config.id, generation } satisfies NodeMeta);
    const known = deps.store.getMeta<MemberInfo[]>('members') ?? [];
    return new Node(config, deps, generation, known);
  }

  private self(): MemberInfo {
    return { id: this.id, address: this.address, generation: this.generation };
  }

  /** Starts the background loops (seed hellos). */
  start(): void {
    this.running = true;
    this.deps.log.info({ id: this.id, address: this.address, generation: this.generation, members: this.members.size }, 'node started');
    this.helloRound();
  }

  stop(): void {
    this.running = false;
    if (this.seedTimer !== undefined) this.deps.clock.cancel(this.seedTimer);
    this.seedTimer = undefined;
  }

  // ---- membership (static seeds) -------------------------------------------------------------

  private helloRound(): void {
    if (!this.running) return;
    const missing = this.config.seeds.filter((s) => !this.identifiedSeeds.has(s));
    if (missing.length === 0) {
      this.deps.log.info({ members: [...this.members.keys()] }, 'every seed identified');
      return;
    }
    const timeoutMs = Math.min(this.config.requestTimeoutMs, this.config.seedRetryMs);
    const rounds = missing.map(async (seed) => {
      try {
        const reply = await this.deps.transport.send(seed, { type: 'hello', from: this.self() }, timeoutMs);
        this.identifiedSeeds.add(seed);
        if (reply.member.id === this.id) return;
        await this.learn(reply.member);
      } catch (err) {
        this.deps.log.debug({ seed, err: String(err) }, 'seed not reachable yet');
      }
    });
    void Promise.all(rounds).then(() => {
      if (!this.running) return;
      if (this.config.seeds.some((s) => !this.identifiedSeeds.has(s))) {
        this.seedTimer = this.deps.clock.setTimer(jittered(this.deps.random, this.config.seedRetryMs), () => this.helloRound());
      } else {
        this.deps.log.info({ members: [...this.members.keys()] }, 'every seed identified');
      }
    });
  }

  /** Adds or updates a member (a higher generation wins); rebuilds the ring when the ids change. */
  private async learn(m: MemberInfo): Promise<void> {
    if (m.id === this.id) {
      if (m.address !== this.address) {
        this.deps.log.error({ id: m.id, address: m.address }, 'another node claims this node id; check --node-id');
      }
      return;
    }
    const known = this.members.get(m.id);
    if (known && known.generation >= m.generation && known.address === m.address) return;
    if (known && known.generation > m.generation) return;
    this.members.set(m.id, m);
    if (!known) {
      this.ring = new Ring(this.members.keys(), this.config.vnodes);
      this.deps.log.info(
        { member: m.id, address: m.address, members: this.members.size, ring: this.ring.checksum() },
        'member joined the ring',
      );
    } else if (known.address !== m.address) {
      this.deps.log.info({ member: m.id, from: known.address, to: m.address }, 'member moved to a new address');
    }
    await this.deps.store.putMeta(
      'members',
      [...this.members.values()].filter((x) => x.id !== this.id),
    );
  }

  memberList(): MemberInfo[] {
    return [...this.members.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Addresses of the other members (the seed's /peers). */
  peers(): string[] {
    return this.memberList()
      .filter((m) => m.id !== this.id)
      .map((m) => m.address);
  }

  currentRing(): Ring {
    return this.ring;
  }

  /** Keys in the local store (tombstones included). */
  storeCount(): number {
    return this.deps.store.count();
  }

  /** The seeds this node has not yet identified. */
  unidentifiedSeeds(): string[] {
    return this.config.seeds.filter((s) => !this.identifiedSeeds.has(s));
  }

  // ---- replica side ---------------------------------------------------------------------------

  /** Answers a protocol message from a peer (or from this node, as a local replica). */
  async handle<M extends Message>(msg: M): Promise<ReplyOf<M>> {
    switch (msg.type) {
      case 'hello':
        return (await this.onHello(msg)) as ReplyOf<M>;
      case 'write':
        return (await this.onWrite(msg)) as ReplyOf<M>;
      case 'read':
        return this.onRead(msg) as ReplyOf<M>;
      default:
        throw new BadMessageError(`unknown message type ${JSON.stringify((msg as { type: unknown }).type)}`);
    }
  }

  private async onHello(msg: HelloMessage): Promise<ReplyOf<HelloMessage>> {
    const m = msg.from;
    if (!m || typeof m.id !== 'string' || typeof m.address !== 'string' || !Number.isSafeInteger(m.generation)) {
      throw new BadMessageError('hello needs from: {id, address, generation}');
    }
    await this.learn({ id: m.id, address: m.address, generation: m.generation });
    return { member: this.self() };
  }

  private async onWrite(msg: WriteMessage): Promise<ReplyOf<WriteMessage>> {
    const problem = typeof msg.key === 'string' ? keyProblem(msg.key) : 'key must be a string';
    if (problem) throw new BadMessageError(problem);
    if (!isStoredRecord(msg.record)) throw new BadMessageError('write needs a record {version, value} or {version, deleted: true}');
    const { store, clock } = this.deps;
    this.hlc.observe(msg.record.version, clock.nowMs());
    // get and put run in one turn of the event loop: no other write to this key can come between.
    if (!supersedes(msg.record, store.get(msg.key))) {
      await store.flushed(); // what superseded it must be durable before we acknowledge
      return { applied: false };
    }
    await store.put(msg.key, msg.record);
    return { applied: true };
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
    const member = this.members.get(id);
    if (!member) return Promise.reject(new Error(`unknown member ${id}`));
    return this.deps.transport.send(member.address, msg, timeoutMs);
  }

  preferenceList(key: string): string[] {
    return this.ring.preferenceList(key, this.config.replicationFactor);
  }

  put(key: string, value: JsonValue, w?: number): Promise<WriteResult> {
    return this.write(key, liveRecord(value, this.hlc.now(this.deps.clock.nowMs())), w);
  }

  delete(key: string, w?: number): Promise<WriteResult> {
    return this.write(key, tombstone(this.hlc.now(this.deps.clock.nowMs())), w);
  }

  private async write(key: string, record: StoredRecord, w = this.config.writeQuorum): Promise<WriteResult> {
    const replicas = this.preferenceList(key);
    const timeoutMs = this.config.requestTimeoutMs;
    const msg: WriteMessage = { type: 'write', key, record };
    const g = await gather(replicas, w, (id) => this.sendTo(id, msg, timeoutMs), this.deps.clock, timeoutMs);
    this.countFailures('write', g);
    const acked = g.replies.map((r) => r.replica);
    if (g.outcome === 'failed') {
      throw new QuorumError('write', { key, required: w, replicas, succeeded: acked, failures: withMissing(g.failures, replicas, w) });
    }
    return { key, record, coordinator: this.id, replicas, required: w, acked, failures: g.failures };
  }

  async get(key: string, r = this.config.readQuorum): Promise<ReadResult> {
    const replicas = this.preferenceList(key);
    const timeoutMs = this.config.requestTimeoutMs;
    const msg: ReadMessage = { type: 'read', key };
    const g = await gather(replicas, r, (id) => this.sendTo(id, msg, timeoutMs), this.deps.clock, timeoutMs);
    this.countFailures('read', g);
    const responded = g.replies.map((x) => x.replica);
    if (g.outcome === 'failed') {
      throw new QuorumError('read', { key, required: r, replicas, succeeded: responded, failures: withMissing(g.failures, replicas, r) });
    }
    const record = newest(g.replies.map((x) => x.value.record ?? undefined));
    if (record) this.hlc.observe(record.version, this.deps.clock.nowMs());
    return { key, record, coordinator: this.id, replicas, required: r, responded, failures: g.failures };
  }

  private countFailures(op: 'read' | 'write', g: Gathered<unknown>): void {
    for (const f of g.failures) this.replicaFailures?.inc({ op, reason: f.reason.split(':')[0] ?? 'error' });
  }

  /** What /health and the CLI report about this node. */
  status(): { id: string; address: string; generation: number; uptimeMs: number; members: number; ring: string } {
    return {
      id: this.id,
      address: this.address,
      generation: this.generation,
      uptimeMs: this.deps.clock.nowMs() - this.startedAtMs,
      members: this.members.size,
      ring: this.ring.checksum(),
    };
  }
}

/**
 * When the ring has fewer members than the replication factor, a quorum can be impossible before
 * anyone is asked; say that instead of an empty failure list.
 */
function withMissing(failures: ReplicaFailure[], replicas: string[], required: number): ReplicaFailure[] {
  if (replicas.length >= required) return failures;
  return [...failures, { replica: '(none)', reason: `only ${replicas.length} member(s) in the ring; ${required} replica(s) required` }];
}
