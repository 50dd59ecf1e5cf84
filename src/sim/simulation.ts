// A whole quorumkv cluster in one process, on virtual time: the production Node with a simulated
// clock, network and disk injected. One seed fixes everything (latencies, drops, faults, the
// workload), so a run replays exactly, trace and all.

import { DEFAULTS, SIM_SCALED, TUNING } from '../core/defaults';
import type { Logger } from '../core/log';
import { quorumOf } from '../core/quorum';
import { type Random, randomInt, SeededRandom } from '../core/random';
import { Ring } from '../core/ring';
import { type VolumeMeta, volumeDecision } from '../core/volume';
import type { Candidates, Discovery } from '../discovery/discovery';
import { QuorumError, UnavailableError } from '../node/errors';
import { Node, type NodeConfig } from '../node/node';
import {
  checkNoLostWrites,
  checkNoResurrection,
  checkNothingInvented,
  checkQuorumReads,
  checkRefusalsChangeNothing,
  checkReplication,
  checkRingAgreement,
  checkWriteOrder,
  convergence,
  type Violation,
} from './checkers';
import type { FinalState, Op, OpKind } from './history';
import { type Endpoint, SimNetwork } from './network';
import { elasticSteps } from './scenarios';
import { Scheduler, type SimEvent } from './scheduler';
import { SimClock } from './sim-clock';
import { SimStore } from './sim-store';

/** move: a crash after which the node comes back at a new address (a rescheduled pod). */
export type FaultKind = 'partition' | 'crash' | 'move' | 'pause' | 'drop' | 'skew';
export const ALL_FAULTS: readonly FaultKind[] = ['partition', 'crash', 'move', 'pause', 'drop', 'skew'];

export interface SimOptions {
  seed: number;
  nodes?: number;
  /** Replication factor N. */
  n?: number;
  faults?: readonly FaultKind[];
  /** Faults injected during the workload (each heals after a while). */
  faultCount?: number;
  clients?: number;
  opsPerClient?: number;
  keys?: number;
  requestTimeoutMs?: number;
  gossipIntervalMs?: number;
  phiConvictThreshold?: number;
  /**
   * How nodes find peers: `dns` lists every started node (a headless Service); `first-seed` gives
   * only the first node's address (like --join), so everything else must come through gossip.
   */
  discovery?: 'dns' | 'first-seed';
  /** Longest pause between discovery rounds (also the re-check period once complete). */
  discoveryMaxIntervalMs?: number;
  readRepair?: boolean;
  sloppyQuorum?: boolean;
  /** Pause between anti-entropy passes (virtual ms); a very large value turns it off in practice. */
  antiEntropyIntervalMs?: number;
  tombstoneGraceMs?: number;
  /** Pause between slices of tombstone GC (256 slices walk the ring). */
  compactionTickMs?: number;
  /** Hints kept per target; 0 turns hinted handoff off. */
  maxHintsPerNode?: number;
  /** How long a move waits for others to finish before going ahead (0: moves overlap freely). */
  moveWaitMs?: number;
  /** `steady` (default): a fixed set of members; `elastic`: scale up and down, removenode, a replaced volume (scenarios.ts). */
  scenario?: 'steady' | 'elastic';
  /** `new` (default): fresh data directories that form a cluster; `existing`: members restarting. */
  members?: 'new' | 'existing';
  /** One-way network latency: min + an exponential tail with this mean. */
  latency?: { minMs: number; meanExtraMs: number };
  /** Largest offset of a node's wall clock from true time. */
  maxSkewMs?: number;
  trace?: boolean;
}

export interface SimNode {
  id: string;
  address: string;
  clock: SimClock;
  store: SimStore;
  endpoint: Endpoint;
  node: Node | undefined;
  /** Set while Node.create runs, so a restart is never started twice. */
  booting: Promise<void> | undefined;
  /** Booted at least once (discovery lists it from then on). */
  started: boolean;
  /** Discovery lookups this node made. */
  discoveryLookups: number;
  random: Random;
  /** Decommissioned or removed: no longer a member (its store is no replica of anything). */
  left: boolean;
  /** Gone for good (left, or dead awaiting removenode): never booted again, no faults injected. */
  retired: boolean;
  /** Being decommissioned (a pod a scale-down removes): once its volume says it left, it is not booted again. */
  leaving: boolean;
}

export interface RunResult {
  seed: number;
  ops: number;
  okOps: number;
  faults: Record<FaultKind, number>;
  violations: Violation[];
  convergence: { keys: number; converged: number; diverged: string[] };
  virtualMs: number;
  events: number;
  trace: string[];
}

const START_MS = 1_767_225_600_000; // 2026-01-01T00:00:00Z, virtual

function deriveSeed(random: Random): number {
  return Math.floor(random.next() * 2 ** 32);
}

export class Simulation {
  readonly scheduler = new Scheduler(START_MS);
  readonly network: SimNetwork;
  readonly nodes: SimNode[] = [];
  readonly history: Op[] = [];
  readonly traceLines: string[] = [];
  readonly faults: Record<FaultKind, number> = { partition: 0, crash: 0, move: 0, pause: 0, drop: 0, skew: 0 };
  /** Addresses handed out so far (a moved node gets a fresh one). */
  private addressCount = 0;
  readonly opts: Required<Omit<SimOptions, 'trace'>> & { trace: boolean };
  private readonly faultRandom: Random;
  private readonly workloadRandom: Random;
  /** Fault starts and ends still to come; heal() cancels them. */
  private faultEvents: SimEvent[] = [];

  constructor(options: SimOptions) {
    this.opts = {
      nodes: 5,
      n: 3,
      faults: ALL_FAULTS,
      faultCount: 6,
      clients: 4,
      opsPerClient: 200,
      keys: 32,
      // the production values (core/defaults.ts), but for the ones SIM_SCALED names
      requestTimeoutMs: DEFAULTS.requestTimeoutMs,
      gossipIntervalMs: DEFAULTS.gossipIntervalMs,
      phiConvictThreshold: DEFAULTS.phiConvictThreshold,
      discovery: 'dns',
      discoveryMaxIntervalMs: DEFAULTS.discoveryMaxIntervalMs,
      readRepair: true,
      sloppyQuorum: false,
      antiEntropyIntervalMs: SIM_SCALED.antiEntropyIntervalMs,
      tombstoneGraceMs: DEFAULTS.tombstoneGraceMs,
      maxHintsPerNode: DEFAULTS.maxHintsPerNode,
      compactionTickMs: TUNING.compactionTickMs,
      members: 'new',
      scenario: 'steady',
      moveWaitMs: TUNING.moveWaitMs,
      latency: { minMs: 0.2, meanExtraMs: 1.5 },
      maxSkewMs: 300,
      trace: false,
      ...options,
    };
    const master = new SeededRandom(this.opts.seed);
    this.faultRandom = new SeededRandom(deriveSeed(master));
    this.workloadRandom = new SeededRandom(deriveSeed(master));
    this.network = new SimNetwork(
      this.scheduler,
      new SeededRandom(deriveSeed(master)),
      this.opts.trace ? (l) => this.trace(l) : undefined,
      this.opts.latency,
    );
    this.master = master;
    for (let i = 0; i < this.opts.nodes; i++) this.addNode();
  }

  /** Randomness for nodes added later (scale-up): derived from the run's seed like the first ones. */
  private readonly master: Random;

  /**
   * A new node (not booted): n1, n2, ... With `members: 'existing'` its store already says it is a
   * normal member (a cluster restarting), else it is fresh and decides at boot to start or join.
   */
  addNode(): SimNode {
    const master = this.master;
    const random = new SeededRandom(deriveSeed(master));
    const skew = this.opts.faults.includes('skew') ? randomInt(master, -this.opts.maxSkewMs, this.opts.maxSkewMs) : 0;
    const address = this.newAddress();
    const clock = new SimClock(this.scheduler, skew);
    const store = new SimStore(this.scheduler, new SeededRandom(deriveSeed(master)));
    const id = `n${this.nodes.length + 1}`;
    if (this.opts.members === 'existing') void store.putMeta('node', { id, generation: 0, status: 'normal', memberSince: 0 });
    const endpoint: Endpoint = { incarnation: 0, state: 'down', inbox: [], handle: () => Promise.reject(new Error('not started')) };
    this.network.register(address, endpoint);
    const node: SimNode = {
      id,
      address,
      clock,
      store,
      endpoint,
      node: undefined,
      booting: undefined,
      started: false,
      discoveryLookups: 0,
      random,
      left: false,
      retired: false,
      leaving: false,
    };
    this.nodes.push(node);
    return node;
  }

  private newAddress(): string {
    const n = this.addressCount++;
    return `10.0.${Math.floor(n / 250)}.${(n % 250) + 1}:8080`;
  }

  /**
   * Crashes the node (if up) and starts it again on its disk, optionally at a new address: the old
   * one then refuses connections, as a deleted pod's IP would.
   */
  async restart(s: SimNode, opts: { move?: boolean } = {}): Promise<void> {
    if (s.endpoint.state !== 'down') this.crash(s);
    if (opts.move) this.relocate(s);
    await this.until(this.boot(s));
  }

  // ---- elasticity (these run inside a driven run: they wait on virtual time, never drive it) -------

  /** Adds `count` fresh nodes and boots them: they find the cluster and join it. */
  async scaleUp(count: number): Promise<SimNode[]> {
    const added = Array.from({ length: count }, () => this.addNode());
    this.trace(`scale up: ${added.map((s) => s.id).join(' ')}`);
    await Promise.all(added.map((s) => this.boot(s)));
    return added;
  }

  /**
   * Decommissions `s`, carrying on across its crashes and restarts (the leave resumes), until it
   * has left; then stops it for good. Gives up (false) after `limitMs` of virtual time.
   */
  async decommission(s: SimNode, limitMs = 600_000): Promise<boolean> {
    this.trace(`decommission ${s.id}`);
    s.leaving = true;
    const deadline = this.scheduler.now + limitMs;
    while (this.scheduler.now < deadline) {
      if (s.left) return true; // crashed after it left: its pod is gone, not restarted
      const node = s.node;
      if (node && s.endpoint.state === 'up') {
        if (node.memberStatus() === 'removed') {
          this.retire(s, 'decommissioned');
          return true;
        }
        // started, not awaited: a crash leaves the old incarnation's promises unsettled forever
        if (!node.movement.busy()) {
          try {
            node.movement.decommission().catch(() => {});
          } catch {} // refused for now: look again
        }
      }
      await this.sleep(200);
    }
    return false;
  }

  /** `s` dies for good (crashes and is never restarted): removenode must rebuild its ranges. */
  kill(s: SimNode): void {
    this.trace(`kill ${s.id} for good`);
    if (s.endpoint.state !== 'down') this.crash(s);
    s.retired = true;
  }

  /** removenode of a killed node, run by any live member (another one if that one crashes). */
  async removeNode(target: SimNode, limitMs = 600_000): Promise<boolean> {
    this.trace(`removenode ${target.id}`);
    const deadline = this.scheduler.now + limitMs;
    while (this.scheduler.now < deadline) {
      const by = this.nodes.find((x) => x !== target && !x.retired && x.node && x.endpoint.state === 'up');
      const node = by?.node;
      if (node) {
        const entry = node.membership.table.get(target.id);
        if (entry?.status === 'removed') {
          target.left = true;
          this.trace(`removed ${target.id}`);
          return true;
        }
        // the target not yet convicted, or a move under way: look again (a crash of `by` is seen next round)
        if (!node.movement.busy()) {
          try {
            node.movement.removeNode(target.id, false).catch(() => {});
          } catch {}
        }
      }
      await this.sleep(200);
    }
    return false;
  }

  private retire(s: SimNode, why: string): void {
    this.trace(`${s.id} ${why}: stopped for good`);
    s.node?.stop();
    s.node = undefined;
    s.endpoint.state = 'down';
    s.endpoint.incarnation++;
    s.left = true;
    s.retired = true;
  }

  /** Every node that is a member runs and all agree (moves finished). */
  async settleMoves(limitMs = 600_000): Promise<boolean> {
    return this.scheduler.runWhile(() => !this.formed(), this.scheduler.now + limitMs);
  }

  /**
   * A scale-up gives a retained volume back to its ordinal: `s`, gone (left, removed or killed),
   * boots again on the store it had. What it does with that data is the node's decision.
   */
  comeBack(s: SimNode): Promise<void> {
    this.trace(`${s.id} comes back on its volume`);
    if (s.endpoint.state !== 'down') this.crash(s);
    s.left = false;
    s.retired = false;
    s.leaving = false;
    return this.boot(s);
  }

  /** The node loses its disk (a replaced volume): it crashes and comes back empty. */
  wipe(s: SimNode): void {
    if (s.endpoint.state !== 'down') this.crash(s);
    s.store = new SimStore(this.scheduler, new SeededRandom(Math.floor(s.random.next() * 2 ** 32)));
    this.trace(`wipe ${s.id}`);
  }

  private relocate(s: SimNode): void {
    s.address = this.newAddress();
    s.endpoint = { incarnation: 0, state: 'down', inbox: [], handle: () => Promise.reject(new Error('not started')) };
    this.network.register(s.address, s.endpoint);
    this.trace(`move ${s.id} to ${s.address}`);
  }

  trace(line: string): void {
    if (this.opts.trace) this.traceLines.push(`${(this.scheduler.now - START_MS).toFixed(3).padStart(10)} ${line}`);
  }

  /** How often each log message was written by any node (info and above). */
  readonly logCounts = new Map<string, number>();

  /** Failure-detector convictions (a node marking another down), counted from the nodes' logs. */
  get convictions(): number {
    return this.logCounts.get('member is down') ?? 0;
  }

  private logger(id: string): Logger {
    const line = (level: string) => (obj: object, msg: string) => {
      this.logCounts.set(msg, (this.logCounts.get(msg) ?? 0) + 1);
      if (this.opts.trace) this.trace(`log ${id} ${level} ${msg} ${JSON.stringify(obj)}`);
    };
    return { debug: process.env.QKV_SIM_DEBUG ? line('debug') : () => {}, info: line('info'), warn: line('warn'), error: line('error') };
  }

  private nodeConfig(s: SimNode): NodeConfig {
    return {
      id: s.id,
      address: s.address,
      replicationFactor: this.opts.n,
      readQuorum: quorumOf(this.opts.n),
      writeQuorum: quorumOf(this.opts.n),
      vnodes: DEFAULTS.vnodes,
      requestTimeoutMs: this.opts.requestTimeoutMs,
      // one heartbeat a gossip round, as in production (DEFAULTS has both at 1 s)
      heartbeatIntervalMs: this.opts.gossipIntervalMs,
      gossipIntervalMs: this.opts.gossipIntervalMs,
      phiConvictThreshold: this.opts.phiConvictThreshold,
      discoveryIntervalMs: DEFAULTS.discoveryIntervalMs,
      discoveryMaxIntervalMs: this.opts.discoveryMaxIntervalMs,
      expectedMembers: this.opts.nodes,
      maxGossipEntries: TUNING.maxGossipEntries,
      movement: { moveWaitMs: this.opts.moveWaitMs },
      repair: {
        readRepair: this.opts.readRepair,
        sloppyQuorum: this.opts.sloppyQuorum,
        hints: {
          windowMs: DEFAULTS.hintWindowMs,
          maxPerTarget: this.opts.maxHintsPerNode,
          deliveryRatePerSec: DEFAULTS.hintDeliveryRate,
          tickMs: TUNING.hintTickMs,
        },
        antiEntropy: {
          intervalMs: this.opts.antiEntropyIntervalMs,
          peerPauseMs: SIM_SCALED.antiEntropyPeerPauseMs,
          maxRecordsPerPass: TUNING.antiEntropyMaxRecordsPerPass,
        },
        tombstoneGraceMs: this.opts.tombstoneGraceMs,
        compactionTickMs: this.opts.compactionTickMs,
      },
    };
  }

  /**
   * What a headless Service's DNS would answer: the current address of every node that has been
   * started (ready or not). Answers after a lookup's worth of virtual time.
   */
  private discovery(s: SimNode): Discovery {
    return {
      name: 'sim-dns',
      candidates: () =>
        new Promise<Candidates>((resolve) => {
          s.discoveryLookups++;
          this.scheduler.after(0.5, () => {
            const started = this.nodes.filter((n) => n.started);
            const addresses = this.opts.discovery === 'dns' ? started.map((n) => n.address) : started.slice(0, 1).map((n) => n.address);
            resolve({ addresses, problems: [] });
          });
        }),
    };
  }

  /** Starts (or restarts) a node on its store: a new incarnation with a new clock and memory. */
  boot(s: SimNode): Promise<void> {
    s.started = true;
    s.booting ??= this.create(s).finally(() => {
      s.booting = undefined;
    });
    return s.booting;
  }

  private async create(s: SimNode): Promise<void> {
    // A pod a scale-down removes is not restarted once it has left: only a later scale-up gives
    // its volume back (comeBack), and then the node starts empty (core/volume.ts).
    if (s.leaving && volumeDecision(s.store.getMeta<VolumeMeta>('node'), s.id).kind === 'start-empty') {
      this.trace(`boot ${s.id} skipped: it left the cluster and its pod is gone`);
      s.left = true;
      s.retired = true;
      return;
    }
    s.clock = new SimClock(this.scheduler, s.clock.skewMs);
    const node = await Node.create(this.nodeConfig(s), {
      clock: s.clock,
      random: s.random,
      transport: this.network.transportFor(s.address, s.clock),
      store: s.store,
      log: this.logger(s.id),
      discovery: this.discovery(s),
    });
    s.node = node;
    s.endpoint.handle = (msg) => node.handle(msg);
    s.endpoint.state = 'up';
    node.start();
    // told it was removed while this store was its volume, the process exits and kubelet restarts it
    node.onStale(() => {
      if (s.node !== node) return;
      this.trace(`${s.id} stopped: removed while this store was its volume; restarting`);
      this.crash(s);
      void this.boot(s);
    });
    this.trace(`boot ${s.id} generation ${node.generation}`);
  }

  crash(s: SimNode): void {
    this.trace(`fault crash ${s.id}`);
    s.node?.stop();
    s.node = undefined;
    s.booting = undefined;
    s.endpoint.state = 'down';
    s.endpoint.incarnation++;
    s.endpoint.inbox = [];
    s.clock.crash();
    s.store.crash();
  }

  pause(s: SimNode): void {
    this.trace(`fault pause ${s.id}`);
    s.endpoint.state = 'paused';
    s.clock.pause();
  }

  resume(s: SimNode): void {
    if (s.endpoint.state !== 'paused') return;
    this.trace(`resume ${s.id}`);
    s.endpoint.state = 'up';
    s.clock.resume();
    const inbox = s.endpoint.inbox;
    s.endpoint.inbox = [];
    for (const deliver of inbox) deliver();
  }

  /** Runs the scheduler until `p` settles (or virtual time runs out). */
  async until<T>(p: Promise<T>, limitMs = 600_000): Promise<T> {
    let done = false;
    const wrapped = p.finally(() => {
      done = true;
    });
    // a rejection is the caller's to handle once the scheduler stops, not an unhandled one before
    wrapped.catch(() => {});
    await this.scheduler.runWhile(() => !done, this.scheduler.now + limitMs);
    if (!done) throw new Error(`seed ${this.opts.seed}: did not finish within ${limitMs} virtual ms`);
    return wrapped;
  }

  /** Boots every node and waits until each has identified every seed. */
  async start(): Promise<void> {
    await this.until(Promise.all(this.nodes.map((s) => this.boot(s))));
    if (!(await this.runUntilFormed(60_000))) throw new Error(`seed ${this.opts.seed}: cluster did not form`);
  }

  /**
   * Every running node knows every node, sees it alive and normal (no join or leave under way), and
   * computes the same placement.
   */
  formed(): boolean {
    // Checked after every event while a cluster forms: the cheap tests first, and no member views
    // (they compute every phi).
    const running = this.nodes.filter((s) => s.node && !s.left);
    if (running.length === 0) return false;
    const checksum = (running[0]?.node as Node | undefined)?.placement().checksum();
    if (running.some((s) => (s.node as Node).placement().checksum() !== checksum)) return false;
    const expected = this.members().length;
    return running.every((s) => {
      const { membership } = s.node as Node;
      const members = membership.table.members();
      return members.length === expected && members.every((m) => m.status === 'normal' && membership.liveness(m.id) === 'alive');
    });
  }

  /** Runs until formed() or `limitMs` of virtual time passed; returns formed(). */
  runUntilFormed(limitMs: number): Promise<boolean> {
    return this.scheduler.runWhile(() => !this.formed(), this.scheduler.now + limitMs);
  }

  // ---- faults -----------------------------------------------------------------------------------

  private pick<T>(random: Random, items: readonly T[]): T {
    return items[randomInt(random, 0, items.length - 1)] as T;
  }

  private scheduleFaults(windowMs: number): void {
    const r = this.faultRandom;
    for (let i = 0; i < this.opts.faultCount && this.opts.faults.length > 0; i++) {
      const kind = this.pick(r, this.opts.faults);
      const at = randomInt(r, 0, windowMs);
      const duration = randomInt(r, 50, 2500);
      const target = this.pick(r, this.nodes);
      this.faultEvents.push(this.scheduler.after(at, () => this.inject(kind, target, duration)));
    }
  }

  private inject(kind: FaultKind, s: SimNode, durationMs: number): void {
    const r = this.faultRandom;
    if (s.retired) return;
    switch (kind) {
      case 'crash':
      case 'move': {
        if (s.endpoint.state === 'down') return;
        this.crash(s);
        if (kind === 'move') this.relocate(s);
        this.afterFault(durationMs, () => {
          if (s.endpoint.state === 'down' && !s.retired) void this.boot(s);
        });
        break;
      }
      case 'pause': {
        if (s.endpoint.state !== 'up') return;
        this.pause(s);
        this.afterFault(durationMs, () => this.resume(s));
        break;
      }
      case 'partition': {
        const addresses = this.nodes.map((n) => n.address);
        const side = addresses.filter(() => r.next() < 0.5);
        if (side.length === 0 || side.length === addresses.length) side.splice(0, side.length, s.address);
        this.trace(`fault partition [${side.join(' ')}] | rest`);
        this.network.partition([addresses.filter((a) => !side.includes(a)), side]);
        this.afterFault(durationMs, () => {
          this.trace('heal partition');
          this.network.heal();
        });
        break;
      }
      case 'drop': {
        const rate = 0.05 + r.next() * 0.3;
        this.trace(`fault drop ${rate.toFixed(3)}`);
        this.network.dropRate = rate;
        this.afterFault(durationMs, () => {
          this.network.dropRate = 0;
        });
        break;
      }
      case 'skew': {
        const jump = randomInt(r, -2000, 2000);
        s.clock.skewMs += jump;
        this.trace(`fault skew ${s.id} ${jump} ms (now ${s.clock.skewMs})`);
        break;
      }
    }
    this.faults[kind]++;
  }

  private afterFault(ms: number, fn: () => void): void {
    this.faultEvents.push(this.scheduler.after(ms, fn));
  }

  /** Ends every fault: partitions healed, drops stopped, paused nodes resumed, crashed nodes restarted. */
  async heal(): Promise<void> {
    this.trace('heal all');
    for (const e of this.faultEvents) e.cancelled = true;
    this.faultEvents = [];
    this.network.heal();
    this.network.dropRate = 0;
    const boots: Array<Promise<void>> = [];
    for (const s of this.nodes) {
      if (s.endpoint.state === 'paused') this.resume(s);
      if (s.endpoint.state === 'down' && !s.retired) boots.push(this.boot(s));
    }
    await this.until(Promise.all(boots));
  }

  /** Lets the cluster run with no clients for `ms` of virtual time (background work settles). */
  async quiesce(ms = 5000): Promise<void> {
    await this.scheduler.runUntil(this.scheduler.now + ms);
  }

  // ---- workload -----------------------------------------------------------------------------------

  private async client(c: number): Promise<void> {
    const r = this.workloadRandom;
    const n = this.opts.n;
    for (let i = 0; i < this.opts.opsPerClient; i++) {
      await this.sleep(randomInt(r, 0, 20));
      const roll = r.next();
      const kind: OpKind = roll < 0.5 ? 'put' : roll < 0.85 ? 'get' : 'delete';
      const key = `k${randomInt(r, 0, this.opts.keys - 1)}`;
      const level = r.next();
      const required = level < 0.7 ? quorumOf(n) : level < 0.85 ? 1 : n;
      // a client goes to a node that is a member (a Service's endpoints), not to one retired for good
      const target = this.pick(
        r,
        this.nodes.filter((x) => !x.retired),
      );
      const op: Op = {
        id: this.history.length,
        client: c,
        kind,
        key,
        required,
        coordinator: target.id,
        start: this.scheduler.now,
        end: Number.NaN,
        outcome: 'unknown',
        ...(kind === 'put' ? { value: `c${c}-${i}` } : {}),
      };
      this.history.push(op);
      await this.call(op, target);
      op.end = this.scheduler.now;
      this.trace(
        `op #${op.id} c${c} ${kind} ${key}${op.value ? `=${op.value}` : ''} w/r=${required} via ${target.id}: ${op.outcome}` +
          (op.version ? ` @${op.version.wallMs}.${op.version.counter}.${op.version.nodeId}` : '') +
          (op.read
            ? ` read ${op.read.record ? (op.read.record.deleted ? 'tombstone' : JSON.stringify(op.read.record.value)) : 'nothing'}`
            : '') +
          (op.error ? ` (${op.error})` : ''),
      );
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.scheduler.after(ms, resolve));
  }

  /** One client request: refused by a crashed coordinator, lost if it crashes before answering. */
  private async call(op: Op, s: SimNode): Promise<void> {
    const node = s.node;
    if (!node || s.endpoint.state === 'down') {
      await this.sleep(0.5);
      op.outcome = 'fail';
      op.error = 'connection refused';
      return;
    }
    const incarnation = s.endpoint.incarnation;
    const clientTimeoutMs = this.opts.requestTimeoutMs * 2;
    const timeout = new Promise<'timeout'>((resolve) => this.scheduler.after(clientTimeoutMs, () => resolve('timeout')));
    const request = (async () => {
      // a paused coordinator only reads the request once it resumes
      if (s.endpoint.state === 'paused') await new Promise<void>((resolve) => s.endpoint.inbox.push(resolve));
      if (op.kind === 'put') return node.put(op.key, op.value as string, op.required);
      if (op.kind === 'delete') return node.delete(op.key, op.required);
      return node.get(op.key, op.required);
    })();
    try {
      const result = await Promise.race([request, timeout]);
      if (s.endpoint.incarnation !== incarnation) {
        op.outcome = 'unknown';
        op.error = 'coordinator crashed';
      } else if (result === 'timeout') {
        op.outcome = 'unknown';
        op.error = 'no answer';
      } else {
        op.outcome = 'ok';
        if ('responded' in result) op.read = { record: result.record };
        else op.version = result.record.version;
      }
    } catch (err) {
      op.outcome = s.endpoint.incarnation !== incarnation ? 'unknown' : err instanceof UnavailableError ? 'unavailable' : 'fail';
      op.error = err instanceof QuorumError ? 'quorum not met' : err instanceof UnavailableError ? 'unavailable' : String(err);
    }
  }

  /**
   * Runs the clients to completion while faults come and go and `steps` (scale-ups, decommissions,
   * removals) happen alongside; both must finish.
   */
  async runWith(steps: () => Promise<void>): Promise<Op[]> {
    const expectedMs = this.opts.opsPerClient * 15;
    this.scheduleFaults(expectedMs);
    await this.until(Promise.all([...Array.from({ length: this.opts.clients }, (_, c) => this.client(c)), steps()]), 3_600_000);
    return this.history;
  }

  /** Waits (in virtual time, inside a driven run) until `cond()` holds; false after `limitMs`. */
  async waitFor(cond: () => boolean, limitMs: number, everyMs = 100): Promise<boolean> {
    const deadline = this.scheduler.now + limitMs;
    while (!cond()) {
      if (this.scheduler.now >= deadline) return false;
      await this.sleep(everyMs);
    }
    return true;
  }

  /** Sleeps `ms` of virtual time inside a driven run. */
  pauseFor(ms: number): Promise<void> {
    return this.sleep(ms);
  }

  /** Runs the clients to completion while faults come and go. */
  async run(): Promise<Op[]> {
    const expectedMs = this.opts.opsPerClient * 15;
    this.scheduleFaults(expectedMs);
    await this.until(Promise.all(Array.from({ length: this.opts.clients }, (_, c) => this.client(c))));
    return this.history;
  }

  // ---- the god's-eye view ---------------------------------------------------------------------------

  /** What each replica of each key written holds on disk. */
  readAll(): FinalState {
    const keys = new Set<string>();
    for (const o of this.history) keys.add(o.key);
    for (const s of this.nodes) for (const k of s.store.durableKeys()) keys.add(k);
    const out: FinalState = new Map();
    const ring = this.finalRing();
    for (const key of [...keys].sort()) {
      const replicas = ring.preferenceList(key, this.opts.n);
      out.set(
        key,
        replicas.map((id) => ({ node: id, record: (this.nodes.find((s) => s.id === id) as SimNode).store.durableRecord(key) })),
      );
    }
    return out;
  }

  /** The nodes that have not left the cluster (a killed one awaiting removenode still counts). */
  members(): SimNode[] {
    return this.nodes.filter((s) => !s.left);
  }

  /** The ring of the members that have not left: where every key should be once moves are over. */
  finalRing(): Ring {
    return new Ring(
      this.nodes.filter((s) => !s.left).map((s) => s.id),
      64,
    );
  }

  /** Checker 7 now: every acknowledged write on at least W of the current ring's replicas. */
  checkReplicationNow(): Violation[] {
    return checkReplication(this.history, this.readAll());
  }

  ringChecksums(): Array<{ node: string; checksum: string }> {
    return this.nodes.filter((s) => s.node).map((s) => ({ node: s.id, checksum: (s.node as Node).placement().checksum() }));
  }

  check(): { violations: Violation[]; convergence: ReturnType<typeof convergence> } {
    const final = this.readAll();
    const violations = [
      ...checkNoLostWrites(this.history, final),
      ...checkQuorumReads(this.history, this.opts.n),
      ...checkNothingInvented(this.history, final),
      ...checkNoResurrection(this.history, final, this.opts.n),
      ...checkRefusalsChangeNothing(this.history, final),
      ...checkWriteOrder(this.history, this.opts.n),
      ...checkRingAgreement(this.ringChecksums()),
      ...this.network.shapeViolations.map((message): Violation => ({ checker: 'malformed-message', message, ops: [] })),
    ];
    return { violations, convergence: convergence(final) };
  }
}

/** One complete run: start, workload under faults, heal, quiet, check. */
export async function runSeed(options: SimOptions): Promise<RunResult> {
  // the elastic scenario checks replication after each move with anti-entropy off (scenarios.ts)
  const sim = new Simulation(options.scenario === 'elastic' ? { antiEntropyIntervalMs: 3_600_000, ...options } : options);
  await sim.start();
  const stuck: Violation[] = [];
  if (sim.opts.scenario === 'elastic') {
    await sim.runWith(async () => {
      stuck.push(...(await elasticSteps(sim)));
    });
  } else await sim.run();
  await sim.heal();
  if (sim.opts.scenario === 'elastic') {
    if (!(await sim.settleMoves())) {
      stuck.push({ checker: 'stuck-move', message: 'moves still under way (or members disagree) after heal', ops: [] });
    }
    // background anti-entropy was off during the moves (so that it could not mask a range the
    // moves failed to stream); an operator's repair pass on every member now
    await sim.until(Promise.all(sim.nodes.filter((s) => s.node && !s.retired).map((s) => (s.node as Node).antiEntropy.run('repair'))));
  }
  await sim.quiesce();
  const checked = sim.check();
  const violations = [...stuck, ...checked.violations];
  const conv = checked.convergence;
  return {
    seed: options.seed,
    ops: sim.history.length,
    okOps: sim.history.filter((o) => o.outcome === 'ok').length,
    faults: { ...sim.faults },
    violations,
    convergence: conv,
    virtualMs: sim.scheduler.now - START_MS,
    events: sim.scheduler.eventsRun,
    trace: sim.traceLines,
  };
}
