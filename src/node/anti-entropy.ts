// Anti-entropy: replicas compare the ranges they share, with hash trees (core/merkle.ts), and
// exchange only the records that differ. Dynamo §4.7 and Cassandra's repair, run continuously in
// the background at a low rate, and on demand (`quorumkv repair`).
//
// Pairs: for a range replicated by nodes A and B, the one with the smaller id starts the
// comparison (so each pair is compared once per pass), except in a repair asked for by an
// operator, which compares with every replica. A comparison: roots of all shared ranges in one
// message; for each range that differs, node summaries one level down under the differing nodes,
// until a differing node holds few keys; then its keys with their versions; then each side sends
// what the other lacks or holds older. Every message has a deadline; the records moved per pass are
// bounded (the rest waits for the next pass).

import type { Clock } from '../core/clock';
import { isToken, tokenOf } from '../core/hash';
import { compareVersions, formatVersion, parseVersion } from '../core/hlc';
import type { Logger } from '../core/log';
import {
  bucketOf,
  type DigestedRecord,
  differing,
  digestHex,
  EMPTY_HASH,
  LEAF_KEYS,
  levelHashes,
  MAX_LEVEL,
  type NodeSummary,
  recordDigest,
  type TokenRange,
} from '../core/merkle';
import type { AeKeysMessage, AeLevelMessage, AeRootsMessage, Message, ReplyOf } from '../core/messages';
import { isPurgeable, isStoredRecord, type StoredRecord } from '../core/record';
import type { Counter, Metrics } from '../metrics';
import type { Transport } from '../net/transport';
import type { Store } from '../storage/store';
import { byteBatches, recordBytes } from './batches';
import { BadMessageError } from './errors';
import { Loop } from './loop';
import type { Membership } from './membership';

export interface AntiEntropyConfig {
  replicationFactor: number;
  /** Pause between two full passes over every shared range. */
  intervalMs: number;
  /** Pause between two peers within a pass (spreads the load). */
  peerPauseMs: number;
  /** Most records moved (both ways) in one pass; the rest waits for the next pass. */
  maxRecordsPerPass: number;
  /** Deadline of each anti-entropy message. */
  timeoutMs: number;
  tombstoneGraceMs: number;
}

export interface AntiEntropyDeps {
  clock: Clock;
  transport: Transport;
  store: Store;
  log: Logger;
  membership: Membership;
  /** Applies a record if it is newer than what this replica holds (the replica write path). */
  apply(key: string, record: StoredRecord): Promise<boolean>;
  metrics?: Metrics | undefined;
}

export interface RepairProgress {
  running: boolean;
  /** 'background' pass or an operator's 'repair'. */
  kind: 'background' | 'repair' | undefined;
  startedAtMs: number | undefined;
  finishedAtMs: number | undefined;
  rangesTotal: number;
  rangesDone: number;
  rangesDiffering: number;
  keysCompared: number;
  keysRepaired: number;
  bytesSent: number;
  bytesReceived: number;
  errors: number;
}

const ROOTS_PER_MESSAGE = 512;
/** How long, and for how many ranges, the answering side reuses a range scan during a descent. */
const SCAN_CACHE_MS = 1000;
const SCAN_CACHE_RANGES = 8;
const CONCURRENT_RANGES = 4;

function freshProgress(): RepairProgress {
  return {
    running: false,
    kind: undefined,
    startedAtMs: undefined,
    finishedAtMs: undefined,
    rangesTotal: 0,
    rangesDone: 0,
    rangesDiffering: 0,
    keysCompared: 0,
    keysRepaired: 0,
    bytesSent: 0,
    bytesReceived: 0,
    errors: 0,
  };
}

export class AntiEntropy {
  private readonly loop: Loop;
  private pass: Promise<void> | undefined;
  private rangeCache:
    | { checksum: string; ranges: Array<{ range: TokenRange; replicas: string[] }>; shared: Map<string, TokenRange[]> }
    | undefined;
  progress: RepairProgress = freshProgress();
  private readonly compared: Counter | undefined;
  private readonly repaired: Counter | undefined;
  private readonly bytes: Counter | undefined;

  constructor(
    private readonly config: AntiEntropyConfig,
    private readonly deps: AntiEntropyDeps,
  ) {
    this.loop = new Loop(deps.clock, config.intervalMs, () => this.run('background'));
    const m = deps.metrics;
    this.compared = m?.counter('quorumkv_anti_entropy_keys_compared_total', 'Local records covered by anti-entropy comparisons');
    this.repaired = m?.counter('quorumkv_anti_entropy_keys_repaired_total', 'Records anti-entropy moved between replicas, by direction', [
      'direction',
    ]);
    this.bytes = m?.counter('quorumkv_anti_entropy_bytes_total', 'Bytes of anti-entropy messages and replies, by direction', ['direction']);
  }

  start(): void {
    this.loop.start();
  }

  stop(): void {
    this.loop.stop();
  }

  /**
   * Runs a pass now (an operator's repair compares with every replica, not only those with a
   * higher id) unless one is running; resolves when it ends.
   */
  run(kind: 'background' | 'repair', only?: TokenRange): Promise<void> {
    if (this.pass) return this.pass;
    this.pass = this.runPass(kind, only).finally(() => {
      this.pass = undefined;
    });
    return this.pass;
  }

  /** Every ring range (lo, hi] with its replicas, cached per ring. */
  private ranges(): Array<{ range: TokenRange; replicas: string[] }> {
    const ring = this.deps.membership.ring;
    const checksum = ring.checksum();
    if (this.rangeCache?.checksum === checksum) return this.rangeCache.ranges;
    const out: Array<{ range: TokenRange; replicas: string[] }> = [];
    const count = ring.tokens.length;
    for (let i = 0; i < count; i++) {
      const lo = ring.tokens[(i - 1 + count) % count] as number;
      const hi = ring.tokens[i] as number;
      if (lo === hi && count > 1) continue; // an empty range between two equal tokens
      out.push({ range: { lo, hi }, replicas: ring.preferenceListForToken(hi, this.config.replicationFactor) });
    }
    this.rangeCache = { checksum, ranges: out, shared: new Map() };
    return out;
  }

  /** The ranges both this node and `peer` replicate, in ring order. */
  private sharedWith(peer: string): TokenRange[] {
    const self = this.deps.membership.table.selfId;
    const all = this.ranges();
    const cache = this.rangeCache?.shared;
    const hit = cache?.get(peer);
    if (hit) return hit;
    const shared = all.filter((r) => r.replicas.includes(self) && r.replicas.includes(peer)).map((r) => r.range);
    cache?.set(peer, shared);
    return shared;
  }

  /** The peers to compare with, each with the ranges shared with it. */
  private tasks(kind: 'background' | 'repair', only?: TokenRange): Map<string, TokenRange[]> {
    const { membership } = this.deps;
    const self = membership.table.selfId;
    const out = new Map<string, TokenRange[]>();
    for (const peer of membership.table.ids()) {
      if (peer === self || (kind === 'background' && self > peer) || membership.liveness(peer) === 'down') continue;
      const shared = this.sharedWith(peer).filter((r) => !only || (only.lo === r.lo && only.hi === r.hi));
      if (shared.length > 0) out.set(peer, shared);
    }
    return out;
  }

  private async runPass(kind: 'background' | 'repair', only?: TokenRange): Promise<void> {
    const { clock, log } = this.deps;
    const byPeer = this.tasks(kind, only);
    let total = 0;
    for (const ranges of byPeer.values()) total += ranges.length;
    this.progress = { ...freshProgress(), running: true, kind, startedAtMs: clock.nowMs(), rangesTotal: total };
    try {
      for (const [peer, ranges] of byPeer) {
        if (!this.loop.running && kind === 'background') break;
        await this.compareWith(peer, ranges, only === undefined);
        if (this.progress.keysRepaired >= this.config.maxRecordsPerPass) break;
        if (this.config.peerPauseMs > 0) await new Promise<void>((r) => clock.setTimer(this.config.peerPauseMs, r));
      }
    } finally {
      this.progress.running = false;
      this.progress.finishedAtMs = clock.nowMs();
      const p = this.progress;
      if (p.keysRepaired > 0 || kind === 'repair') {
        log.info(
          {
            kind,
            ranges: p.rangesDone,
            differing: p.rangesDiffering,
            compared: p.keysCompared,
            repaired: p.keysRepaired,
            bytesSent: p.bytesSent,
            errors: p.errors,
          },
          'anti-entropy pass finished',
        );
      }
    }
  }

  // ---- the initiating side ---------------------------------------------------------------------

  private async call<M extends Message>(peer: string, msg: M): Promise<ReplyOf<M>> {
    const address = this.deps.membership.addressOf(peer);
    if (!address) throw new Error(`unknown member ${peer}`);
    const sent = JSON.stringify(msg).length;
    this.progress.bytesSent += sent;
    this.bytes?.inc({ direction: 'sent' }, sent);
    const reply = await this.deps.transport.send(address, msg, this.config.timeoutMs);
    const received = JSON.stringify(reply).length;
    this.progress.bytesReceived += received;
    this.bytes?.inc({ direction: 'received' }, received);
    return reply;
  }

  /**
   * Root summaries of many ranges from one pass over the store when they are vnode ranges of the
   * current ring (each record finds its range by the vnode that owns its token), else one range
   * scan each. A node compares most of what it holds, so one pass beats hundreds of range scans.
   */
  private roots(ranges: readonly TokenRange[]): NodeSummary[] {
    const ring = this.deps.membership.ring;
    const position = new Map<number, number>(); // vnode index -> position in `ranges`
    for (const [i, r] of ranges.entries()) {
      const v = ring.ownerIndex(r.hi);
      if (ring.tokens[v] !== r.hi || ring.tokens[(v - 1 + ring.tokens.length) % ring.tokens.length] !== r.lo) {
        return ranges.map((x) => this.root(x));
      }
      position.set(v, i);
    }
    const now = this.deps.clock.nowMs();
    const acc = ranges.map(() => ({ a: 0, b: 0, count: 0 }));
    for (const [key, record] of this.deps.store.entries()) {
      const at = position.get(ring.ownerIndex(tokenOf(key)));
      if (at === undefined || isPurgeable(record, now, this.config.tombstoneGraceMs)) continue;
      const [a, b] = recordDigest(key, record);
      const x = acc[at] as { a: number; b: number; count: number };
      x.a = (x.a ^ a) >>> 0;
      x.b = (x.b ^ b) >>> 0;
      x.count++;
    }
    return acc.map((x) => ({ hash: digestHex([x.a, x.b]), count: x.count }));
  }

  private root(range: TokenRange): NodeSummary {
    return levelHashes(this.scan(range), range, 0).get(0) ?? { hash: EMPTY_HASH, count: 0 };
  }

  /**
   * The answering side of a descent gets several requests for the same range within milliseconds;
   * it keeps the last few scans briefly rather than rescanning for each (a snapshot that may be a
   * few ms old is fine: anything it misses is found in the next pass).
   */
  private readonly recentScans = new Map<string, { atMs: number; records: DigestedRecord[] }>();

  private cachedScan(range: TokenRange): DigestedRecord[] {
    const key = `${range.lo}:${range.hi}`;
    const now = this.deps.clock.nowMs();
    const hit = this.recentScans.get(key);
    if (hit && now - hit.atMs <= SCAN_CACHE_MS) return hit.records;
    const records = this.scan(range);
    this.recentScans.delete(key);
    this.recentScans.set(key, { atMs: now, records });
    while (this.recentScans.size > SCAN_CACHE_RANGES) this.recentScans.delete(this.recentScans.keys().next().value as string);
    return records;
  }

  private scan(range: TokenRange): DigestedRecord[] {
    const now = this.deps.clock.nowMs();
    const out: DigestedRecord[] = [];
    for (const [key, record] of this.deps.store.range(range.lo, range.hi)) {
      // purgeable records are as good as gone: do not send them back to a replica that purged them
      if (isPurgeable(record, now, this.config.tombstoneGraceMs)) continue;
      out.push({ key, token: tokenOf(key), record });
    }
    return out;
  }

  /**
   * Compares the given shared ranges with `peer`: first one combined hash for all of them (when they
   * are exactly the ranges both rings say the two share), then, if that differs, a root per range.
   */
  private async compareWith(peer: string, ranges: TokenRange[], allShared: boolean): Promise<void> {
    const self = this.deps.membership.table.selfId;
    const ring = this.deps.membership.ring.checksum();
    const roots = this.roots(ranges);
    const compared = roots.reduce((n, r) => n + r.count, 0);
    this.progress.keysCompared += compared;
    this.compared?.inc(undefined, compared);
    try {
      if (allShared) {
        const first = await this.call(peer, { type: 'ae-roots', from: self, ring, combined: xorHashes(roots.map((x) => x.hash)) });
        if (first.same) {
          this.progress.rangesDone += ranges.length;
          return;
        }
      }
      const differ: Array<[number, number]> = [];
      for (let i = 0; i < ranges.length; i += ROOTS_PER_MESSAGE) {
        const chunk = ranges.slice(i, i + ROOTS_PER_MESSAGE).map((r, j): [number, number, string, number] => {
          const root = roots[i + j] as NodeSummary;
          return [r.lo, r.hi, root.hash, root.count];
        });
        const reply = await this.call(peer, { type: 'ae-roots', from: self, ring, ranges: chunk });
        for (const [k, count] of reply.differ ?? []) differ.push([i + k, count]);
      }
      this.progress.rangesDone += ranges.length - differ.length;
      this.progress.rangesDiffering += differ.length;
      const queue = differ.map(([i, theirs]) => ({ range: ranges[i] as TokenRange, mine: roots[i]?.count ?? 0, theirs }));
      const worker = async () => {
        for (let job = queue.shift(); job; job = queue.shift()) {
          if (this.progress.keysRepaired >= this.config.maxRecordsPerPass) return;
          try {
            await this.descend(peer, job.range, job.mine, job.theirs);
          } catch (err) {
            this.progress.errors++;
            this.deps.log.debug({ peer, range: job.range, err: String(err) }, 'anti-entropy: range comparison failed');
          }
          this.progress.rangesDone++;
        }
      };
      await Promise.all(Array.from({ length: CONCURRENT_RANGES }, worker));
    } catch (err) {
      this.progress.errors++;
      this.deps.log.debug({ peer, err: String(err) }, 'anti-entropy: roots exchange failed');
    }
  }

  /** Walks down the tree of one differing range with `peer`, settling small differing nodes key by key. */
  private async descend(peer: string, range: TokenRange, mineRoot: number, theirsRoot: number): Promise<void> {
    const self = this.deps.membership.table.selfId;
    const records = this.scan(range); // one scan for the whole descent: the tree is a snapshot
    let level = 0;
    let diff = new Map<number, { mine: number; theirs: number }>([[0, { mine: mineRoot, theirs: theirsRoot }]]);
    for (;;) {
      const descendInto: number[] = [];
      for (const [index, c] of diff) {
        if (level === MAX_LEVEL || Math.max(c.mine, c.theirs) <= LEAF_KEYS) await this.settle(peer, range, level, index, records);
        else descendInto.push(index);
      }
      if (descendInto.length === 0) return;
      level++;
      const parents = new Set(descendInto);
      const mine = levelHashes(records, range, level, parents);
      const reply = await this.call(peer, {
        type: 'ae-level',
        from: self,
        lo: range.lo,
        hi: range.hi,
        level,
        parents: descendInto,
        nodes: [...mine].map(([i, s]): [number, string, number] => [i, s.hash, s.count]),
      });
      diff = new Map(reply.differ.map(([i, theirs]) => [i, { mine: mine.get(i)?.count ?? 0, theirs }]));
    }
  }

  /** Exchanges the keys of one differing node: each side ends with the newer record of every key. */
  private async settle(peer: string, range: TokenRange, level: number, index: number, scanned: DigestedRecord[]): Promise<void> {
    const records = scanned.filter((r) => bucketOf(range, r.token, level) === index);
    const reply = await this.call(peer, {
      type: 'ae-keys',
      from: this.deps.membership.table.selfId,
      lo: range.lo,
      hi: range.hi,
      level,
      index,
      keys: records.map((r): [string, string, string] => [
        r.key,
        formatVersion(r.record.version),
        digestHex(recordDigest(r.key, r.record)),
      ]),
    });
    for (const [key, record] of reply.records ?? []) {
      if (!isStoredRecord(record)) continue;
      if (await this.deps.apply(key, record)) this.countRepair('received');
    }
    const wanted = new Set(reply.want ?? []);
    const push = records.filter((r) => wanted.has(r.key)).map((r): [string, StoredRecord] => [r.key, r.record]);
    for (const chunk of byteBatches(push, ([key, record]) => recordBytes(key, record))) {
      const r = await this.call(peer, { type: 'write-batch', records: chunk });
      for (let i = 0; i < r.applied; i++) this.countRepair('sent');
    }
  }

  private countRepair(direction: 'sent' | 'received'): void {
    this.progress.keysRepaired++;
    this.repaired?.inc({ direction });
  }

  // ---- the answering side ------------------------------------------------------------------------

  onRoots(msg: AeRootsMessage): ReplyOf<AeRootsMessage> {
    if (msg.combined !== undefined) {
      if (typeof msg.from !== 'string' || msg.ring !== this.deps.membership.ring.checksum()) return { same: false, ringMismatch: true };
      const roots = this.roots(this.sharedWith(msg.from)).map((r) => r.hash);
      return { same: xorHashes(roots) === msg.combined };
    }
    if (!Array.isArray(msg.ranges)) throw new BadMessageError('ae-roots needs combined or ranges');
    const differ: Array<[number, number]> = [];
    const ranges = msg.ranges.map(([lo, hi]) => checkRange({ lo, hi }));
    const roots = this.roots(ranges);
    msg.ranges.forEach(([, , hash], i) => {
      const root = roots[i] as NodeSummary;
      if (root.hash !== hash) differ.push([i, root.count]);
    });
    return { differ };
  }

  onLevel(msg: AeLevelMessage): ReplyOf<AeLevelMessage> {
    const range = checkRange(msg);
    if (
      !Number.isInteger(msg.level) ||
      msg.level < 1 ||
      msg.level > MAX_LEVEL ||
      !Array.isArray(msg.parents) ||
      !Array.isArray(msg.nodes)
    ) {
      throw new BadMessageError('ae-level needs level 1..4, parents and nodes');
    }
    const mine = levelHashes(this.cachedScan(range), range, msg.level, new Set(msg.parents));
    const theirs = new Map<number, NodeSummary>(msg.nodes.map(([i, hash, count]) => [i, { hash, count }]));
    return { differ: differing(mine, theirs).map((i): [number, number] => [i, mine.get(i)?.count ?? 0]) };
  }

  onKeys(msg: AeKeysMessage): ReplyOf<AeKeysMessage> {
    const range = checkRange(msg);
    if (!Array.isArray(msg.keys)) throw new BadMessageError('ae-keys needs keys');
    const mine = new Map(
      this.cachedScan(range)
        .filter((r) => bucketOf(range, r.token, msg.level) === msg.index)
        .map((r) => [r.key, r.record]),
    );
    const records: Array<[string, StoredRecord]> = [];
    const want: string[] = [];
    const seen = new Set<string>();
    for (const [key, versionText, digest] of msg.keys) {
      seen.add(key);
      const mineRec = mine.get(key);
      const theirVersion = parseVersion(versionText);
      if (!mineRec) {
        want.push(key);
        continue;
      }
      if (digestHex(recordDigest(key, mineRec)) === digest) continue;
      const order = theirVersion ? compareVersions(mineRec.version, theirVersion) : 1;
      if (order >= 0) records.push([key, mineRec]); // mine newer (or a tie of versions: both send)
      if (order <= 0) want.push(key);
    }
    for (const [key, record] of mine) if (!seen.has(key)) records.push([key, record]);
    return { records, want };
  }
}

/** XOR of 16-hex-digit hashes (the combined root of several ranges). */
function xorHashes(hashes: readonly string[]): string {
  let a = 0;
  let b = 0;
  for (const h of hashes) {
    a = (a ^ Number.parseInt(h.slice(0, 8), 16)) >>> 0;
    b = (b ^ Number.parseInt(h.slice(8), 16)) >>> 0;
  }
  return digestHex([a, b]);
}

function checkRange(r: { lo: unknown; hi: unknown }): TokenRange {
  if (!isToken(r.lo) || !isToken(r.hi)) throw new BadMessageError('a range needs lo and hi tokens (0 .. 2^32-1)');
  return { lo: r.lo as number, hi: r.hi as number };
}
