// A simulated network between simulated nodes, implementing the production Transport interface.
// Every message and reply takes a latency drawn from the run's seeded random source (so messages
// reorder), may be dropped, is lost across a partition, finds "connection refused" at a crashed
// node, and waits in the inbox of a paused one. Messages cross as JSON, and each message and reply
// must fit its declared shape (core/messages.ts), as the production transport demands.

import type { Clock, TimerId } from '../core/clock';
import { type Message, messageProblem, type ReplyOf, replyProblem } from '../core/messages';
import type { Random } from '../core/random';
import { type Transport, TransportError } from '../net/transport';
import type { Scheduler } from './scheduler';

/** What the network needs to know about an endpoint. */
export interface Endpoint {
  /** Changes on every restart: replies owed by an earlier incarnation are never delivered. */
  incarnation: number;
  state: 'up' | 'paused' | 'down';
  handle(msg: Message): Promise<unknown>;
  /** Deliveries waiting while paused. */
  inbox: Array<() => void>;
}

export interface NetworkStats {
  /** Bytes of JSON on the wire (requests and replies), by message type. */
  bytes: Record<string, number>;
  sent: number;
  delivered: number;
  dropped: number;
  partitioned: number;
  refused: number;
}

export class SimNetwork {
  private readonly endpoints = new Map<string, Endpoint>();
  /** address -> partition side; messages between different sides are lost. */
  private sides = new Map<string, number>();
  /** `from>to` -> extra one-way latency of that direction, in ms; Infinity: it loses every packet. */
  private readonly links = new Map<string, number>();
  /** Probability that any one message or reply is lost. */
  dropRate = 0;
  /** Messages and replies that broke their declared shapes (node code sending what its peers would refuse). */
  readonly shapeViolations: string[] = [];
  readonly stats: NetworkStats = { bytes: {}, sent: 0, delivered: 0, dropped: 0, partitioned: 0, refused: 0 };

  constructor(
    private readonly scheduler: Scheduler,
    private readonly random: Random,
    /** Called with one line per message when tracing; undefined keeps the hot path free of it. */
    private readonly trace: ((line: string) => void) | undefined,
    /** One-way latency: min + an exponential tail with this mean, in ms. */
    private readonly latency = { minMs: 0.2, meanExtraMs: 1.5 },
  ) {}

  register(address: string, endpoint: Endpoint): void {
    this.endpoints.set(address, endpoint);
  }

  endpoint(address: string): Endpoint | undefined {
    return this.endpoints.get(address);
  }

  /** Splits the addresses into groups; addresses not listed stay in group 0. */
  partition(groups: string[][]): void {
    this.sides = new Map();
    groups.forEach((g, i) => {
      for (const a of g) this.sides.set(a, i);
    });
  }

  heal(): void {
    this.sides = new Map();
  }

  /**
   * One direction of one link gets `extraMs` slower (Infinity: every packet on it is lost; 0: back
   * to normal). For tests that need a message to arrive late on purpose, the random faults never.
   */
  degradeLink(from: string, to: string, extraMs: number): void {
    if (extraMs === 0) this.links.delete(`${from}>${to}`);
    else this.links.set(`${from}>${to}`, extraMs);
  }

  private cut(a: string, b: string): boolean {
    return (this.sides.get(a) ?? 0) !== (this.sides.get(b) ?? 0) || this.links.get(`${a}>${b}`) === Infinity;
  }

  private delay(from: string, to: string): number {
    const u = this.random.next();
    const extra = this.links.size === 0 ? 0 : (this.links.get(`${from}>${to}`) ?? 0);
    return this.latency.minMs + -Math.log(1 - u) * this.latency.meanExtraMs + extra;
  }

  /** Moves one packet from `from` to `to`; false if lost on the way (drop or partition). */
  private lost(from: string, to: string): boolean {
    if (this.cut(from, to)) {
      this.stats.partitioned++;
      return true;
    }
    if (this.dropRate > 0 && this.random.next() < this.dropRate) {
      this.stats.dropped++;
      return true;
    }
    return false;
  }

  /** The Transport a node at `self` uses. Its timers come from its own (simulated) clock. */
  transportFor(self: string, clock: Clock): Transport {
    return {
      send: <M extends Message>(to: string, msg: M, timeoutMs: number): Promise<ReplyOf<M>> =>
        new Promise<ReplyOf<M>>((resolve, reject) => {
          const sender = this.endpoints.get(self);
          const senderIncarnation = sender?.incarnation;
          let settled = false;
          let timer: TimerId | undefined;
          const finish = (fn: () => void) => {
            if (settled) return;
            // a reply that reaches a restarted or crashed sender reaches nobody
            if (this.endpoints.get(self)?.incarnation !== senderIncarnation) return;
            settled = true;
            if (timer !== undefined) clock.cancel(timer);
            fn();
          };
          timer = clock.setTimer(timeoutMs, () => {
            timer = undefined;
            finish(() => reject(new TransportError('timeout', `no reply from ${to} within ${timeoutMs} ms`)));
          });
          this.stats.sent++;
          const wire = JSON.stringify(msg);
          this.count(msg.type, wire.length);
          this.trace?.(`send ${self} -> ${to} ${msg.type} ${summarize(msg)}`);
          if (this.lost(self, to)) return;
          this.scheduler.after(this.delay(self, to), () => {
            const dest = this.endpoints.get(to);
            if (!dest || dest.state === 'down') {
              this.stats.refused++;
              // the RST travels back like any packet
              this.scheduler.after(this.delay(to, self), () => finish(() => reject(new TransportError('refused', `${to}: ECONNREFUSED`))));
              return;
            }
            const deliver = () => {
              this.stats.delivered++;
              const incarnation = dest.incarnation;
              const parsed = JSON.parse(wire) as Message;
              // the production transport refuses what breaks the declared shapes: here that is a bug
              const problem = messageProblem(parsed);
              if (problem) this.shapeViolations.push(`${self} sent ${to} a ${msg.type} that breaks its declared shape: ${problem}`);
              dest.handle(parsed).then(
                (reply) =>
                  this.replyBack(to, self, incarnation, JSON.stringify(reply), (r) =>
                    finish(() => {
                      const parsed = JSON.parse(r);
                      const bad = replyProblem(msg.type, parsed);
                      if (bad)
                        this.shapeViolations.push(
                          `${to} answered ${self}'s ${msg.type} with a reply that breaks its declared shape: ${bad}`,
                        );
                      resolve(parsed as ReplyOf<M>);
                    }),
                  ),
                (err: unknown) => {
                  const text = `${to} answered 400: ${err instanceof Error ? err.message : String(err)}`;
                  this.replyBack(to, self, incarnation, text, (t) => finish(() => reject(new TransportError('rejected', t))));
                },
              );
            };
            if (dest.state === 'paused') dest.inbox.push(deliver);
            else deliver();
          });
        }),
    };
  }

  private count(type: string, bytes: number): void {
    this.stats.bytes[type] = (this.stats.bytes[type] ?? 0) + bytes;
  }

  private replyBack(from: string, to: string, incarnation: number, payload: string, onArrive: (payload: string) => void): void {
    const replier = this.endpoints.get(from);
    if (!replier || replier.incarnation !== incarnation || replier.state === 'down') return; // died before answering
    if (this.lost(from, to)) return;
    this.scheduler.after(this.delay(from, to), () => {
      const dest = this.endpoints.get(to);
      if (!dest || dest.state === 'down') return;
      if (dest.state === 'paused') dest.inbox.push(() => onArrive(payload));
      else onArrive(payload);
    });
  }
}

function summarize(msg: Message): string {
  switch (msg.type) {
    case 'write':
      return `${msg.key} ${msg.record.deleted ? 'tombstone' : JSON.stringify(msg.record.value)} @${msg.record.version.wallMs}.${msg.record.version.counter}.${msg.record.version.nodeId}`;
    case 'read':
      return msg.key;
    case 'hello':
      return `${msg.from.id} gen ${msg.from.generation}`;
    case 'gossip':
      return `${msg.digests.length} digests`;
    case 'gossip-push':
      return `${msg.entries.length} entries`;
    default:
      return '';
  }
}
