// The production Transport: the internode protocol (./protocol.ts) over persistent TCP connections,
// one per peer for quorum traffic and one for bulk traffic (streaming, anti-entropy, batches), each
// carrying any number of calls at once, matched to their replies by request id.
//
// Costs are per turn of the event loop, not per call: every frame encoded during a turn leaves in
// one socket write (./flush.ts; a lone frame at once), and one timer for the whole transport keeps
// every deadline (./deadlines.ts). A call fails with one of the four kinds of ./transport.ts, at
// the latest at its deadline: `refused` when nothing listens, `unreachable` when the connection
// breaks or cannot be used, `timeout` when no reply came in time (a hung or partitioned peer),
// `rejected` when the peer answered with an error or refused the handshake.

import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { MalformedError, OutBuffer, Reader } from '../core/bytes';
import type { Logger } from '../core/log';
import { MESSAGE_SPECS, type Message, type MessageType, type ReplyOf, replyProblem } from '../core/messages';
import type { Metrics } from '../metrics';
import { splitHostPort } from './address';
import { type InternodeCounters, internodeCounters } from './counters';
import { cancelDeadline, type DeadlineEntry, Deadlines } from './deadlines';
import { FlushScheduler } from './flush';
import { beat } from './idle-poll';
import {
  decodeReplyBody,
  encodeRequestBody,
  Kind,
  MAGIC,
  MIN_PROTOCOL_VERSION,
  NONCE_BYTES,
  PROOF_BYTES,
  PROTOCOL_VERSION,
  proof,
  proofMatchesAny,
  provenToken,
  ROTATION_HINT,
  writeFrame,
} from './protocol';
import { describeTlsRefusal } from './tls';
import { type Transport, TransportError, type TransportFailure } from './transport';
import { FrameSplitter } from './wire';

export interface PeerTransportOptions {
  /** This node's id, told to peers in the handshake (for their logs). */
  nodeId: string;
  /**
   * The cluster tokens, `current[,next]`: this end proves the first and accepts a peer proving any;
   * empty on a cluster without one (then no peer may have one).
   */
  clusterTokens: readonly string[];
  /**
   * The internode address of the node whose API address is given (members are known by their API
   * address). A pure function of it: the transport keeps what it returns.
   */
  peerAddress: (apiAddress: string) => string;
  log: Logger;
  metrics?: Metrics | undefined;
  /** Largest frame accepted from a peer. */
  maxFrameBytes: number;
  /** A connection not ready (connected and handshaken) this long after it was opened is given up. */
  connectTimeoutMs?: number;
  /** Calls waiting for their reply on one connection at most; more fail at once, unsent. */
  maxPendingCalls?: number;
  /** Bytes waiting to be sent on one connection at most; more fail at once, unsent. */
  maxUnsentBytes?: number;
  /** Protocol versions this end speaks (tests of version skew set them). */
  versions?: { min: number; max: number };
  /**
   * Mutual TLS (--tls internode|all): the context a new connection dials with (this node's
   * certificate, the cluster's CA), read at each dial so that a reloaded certificate is used by
   * the next connection. The peer's certificate must chain to the CA; its host name is not checked
   * (members are reached by pod IP: see ./tls.ts).
   */
  tls?: (() => tls.SecureContext) | undefined;
  /** Whether the node has one message or none in hand: only then may a lone frame leave at once (./flush.ts). */
  alone?: () => boolean;
}

/** Node's codes for a certificate that did not verify, and OpenSSL's for a refused TLS handshake. */
function isTlsRefusal(code: string | undefined): boolean {
  return (
    code !== undefined &&
    (code.startsWith('ERR_SSL_') ||
      code.startsWith('CERT_') ||
      code.startsWith('UNABLE_TO_') ||
      code === 'DEPTH_ZERO_SELF_SIGNED_CERT' ||
      code === 'SELF_SIGNED_CERT_IN_CHAIN' ||
      code === 'ERR_TLS_CERT_ALTNAME_INVALID')
  );
}

interface PendingCall {
  readonly type: MessageType;
  readonly resolve: (reply: object) => void;
  readonly reject: (err: TransportError) => void;
  readonly deadline: DeadlineEntry;
}

/** After a peer refused the handshake (version, token), calls to it fail fast for this long rather than reconnect. */
const REFUSAL_HOLD_MS = 2_000;

function failureOf(err: NodeJS.ErrnoException): TransportFailure {
  return err.code === 'ECONNREFUSED' ? 'refused' : 'unreachable';
}

export class PeerTransport implements Transport {
  private readonly connections = new Map<string, PeerConnection>();
  /** peerAddress of each API address met (a pure function of it), so a call does not parse it again. */
  private readonly peerAddresses = new Map<string, string>();
  /** Peers that refused the handshake: the refusal, and until when it stands. */
  private readonly refusals = new Map<string, { error: TransportError; untilMs: number }>();
  readonly deadlines = new Deadlines();
  readonly flusher: FlushScheduler;
  readonly counters: InternodeCounters;
  private closed = false;

  constructor(readonly options: PeerTransportOptions) {
    this.flusher = new FlushScheduler(options.alone);
    const m = options.metrics;
    this.counters = internodeCounters(m, 'out', () => this.connections.size);
  }

  send<M extends Message>(to: string, msg: M, timeoutMs: number): Promise<ReplyOf<M>> {
    if (this.closed) return Promise.reject(new TransportError('unreachable', `${to}: this node is shutting down`));
    const spec = MESSAGE_SPECS[msg.type];
    let peer = this.peerAddresses.get(to);
    if (peer === undefined) {
      try {
        peer = this.options.peerAddress(to);
      } catch (err) {
        return Promise.reject(new TransportError('unreachable', `${to}: ${(err as Error).message}`));
      }
      // members' addresses: a few, but bounded all the same
      if (this.peerAddresses.size >= 1024) this.peerAddresses.clear();
      this.peerAddresses.set(to, peer);
    }
    const refusal = this.refusals.get(peer);
    if (refusal !== undefined) {
      if (refusal.untilMs > performance.now()) return Promise.reject(refusal.error);
      this.refusals.delete(peer);
    }
    const key = spec.bulk ? `${peer} bulk` : peer;
    let conn = this.connections.get(key);
    if (conn === undefined) {
      conn = new PeerConnection(this, peer, to, key);
      this.connections.set(key, conn);
    }
    return conn.call(msg, spec.code, Math.max(1, timeoutMs)) as Promise<ReplyOf<M>>;
  }

  /** A connection ended: later calls open a new one. */
  forget(conn: PeerConnection): void {
    if (this.connections.get(conn.key) === conn) this.connections.delete(conn.key);
  }

  /** The peer refused the handshake: calls to it fail with this error for a while, without reconnecting. */
  hold(peer: string, error: TransportError): void {
    this.refusals.set(peer, { error, untilMs: performance.now() + REFUSAL_HOLD_MS });
  }

  /** Open connections (tests). */
  connectionCount(): number {
    return this.connections.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const c of [...this.connections.values()]) c.fail('unreachable', 'this node is shutting down');
    this.deadlines.clear();
  }
}

class PeerConnection {
  private state: 'connecting' | 'handshaking' | 'ready' | 'closed' = 'connecting';
  private readonly socket: net.Socket;
  private readonly splitter = new FrameSplitter(1024);
  private readonly pending = new Map<number, PendingCall>();
  private readonly out = new OutBuffer();
  /** Frames in `out`. */
  private queued = 0;
  private readonly nonce = randomBytes(NONCE_BYTES);
  private nextId = 1;

  constructor(
    private readonly transport: PeerTransport,
    /** host:port of the peer's internode port. */
    private readonly peer: string,
    /** The peer as its callers know it (its API address), for messages. */
    private readonly label: string,
    readonly key: string,
  ) {
    const { host, port } = splitHostPort(peer);
    const context = transport.options.tls?.();
    const socket =
      context === undefined
        ? net.connect({ host, port, noDelay: true })
        : tls.connect({
            host,
            port,
            secureContext: context,
            // chain to the cluster's CA only: see the tls option
            checkServerIdentity: () => undefined,
            ...(net.isIP(host) === 0 ? { servername: host } : {}),
          });
    if (context !== undefined) socket.setNoDelay(true);
    this.socket = socket;
    socket.setKeepAlive(true, 10_000);
    socket.setTimeout(transport.options.connectTimeoutMs ?? 5_000);
    socket.on('timeout', () => {
      if (this.state !== 'ready')
        this.fail('timeout', `${label}: no connection to ${peer} within ${transport.options.connectTimeoutMs ?? 5_000} ms`);
    });
    socket.on(context === undefined ? 'connect' : 'secureConnect', () => this.onConnect());
    socket.on('data', (chunk: Buffer) => {
      // never crowded: a lone client's write leaves the slower replica's answer to arrive after the
      // next call went out (only the requests this node serves say whether it is busy)
      beat(false);
      this.onData(chunk);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (context !== undefined && isTlsRefusal(err.code)) {
        const message = `${label}: refused its internode TLS connection: ${describeTlsRefusal(err.code)} (${err.code})`;
        if (this.state !== 'closed') transport.options.log.error({ peer: label, address: peer, reason: err.code }, message);
        this.refused(message);
        return;
      }
      this.fail(failureOf(err), `${label}: ${err.code ?? err.message}`);
    });
    socket.on('close', () => this.fail('unreachable', `${label}: connection closed by ${peer}`));
  }

  call(msg: Message, code: number, timeoutMs: number): Promise<object> {
    const opts = this.transport.options;
    if (this.pending.size >= (opts.maxPendingCalls ?? 65_536)) {
      return Promise.reject(new TransportError('unreachable', `${this.label}: ${this.pending.size} calls already wait for it; not sent`));
    }
    if (this.socket.writableLength + this.out.length > (opts.maxUnsentBytes ?? 64 * 2 ** 20)) {
      return Promise.reject(
        new TransportError(
          'unreachable',
          `${this.label}: ${this.socket.writableLength + this.out.length} bytes wait to be sent to it; not sent`,
        ),
      );
    }
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    return new Promise((resolve, reject) => {
      try {
        writeFrame(this.out, Kind.request, id, code, (o) => encodeRequestBody(o, msg));
      } catch (err) {
        reject(new TransportError('rejected', `the ${msg.type} for ${this.label} could not be encoded: ${(err as Error).message}`));
        return;
      }
      this.queued++;
      this.transport.counters.framesSent.inc();
      const deadline = this.transport.deadlines.add(timeoutMs, () => {
        this.pending.delete(id);
        reject(new TransportError('timeout', `no reply from ${this.label} within ${timeoutMs} ms`));
      });
      this.pending.set(id, { type: msg.type, resolve, reject, deadline });
      // before the handshake is done, frames wait in `out`: they leave right after READY
      if (this.state === 'ready') this.transport.flusher.mark(this);
    });
  }

  flush(): number {
    if (this.state !== 'ready' || this.out.length === 0) return 0;
    this.socket.write(this.out.take());
    this.transport.counters.socketWrites.inc();
    const frames = this.queued;
    this.queued = 0;
    return frames;
  }

  private onConnect(): void {
    if (this.state !== 'connecting') return;
    this.state = 'handshaking';
    const v = this.transport.options.versions ?? { min: MIN_PROTOCOL_VERSION, max: PROTOCOL_VERSION };
    const hello = new OutBuffer(64);
    hello.bytes(MAGIC);
    const at = hello.reserve32();
    hello.u8(Kind.hello);
    hello.u16(v.min);
    hello.u16(v.max);
    hello.bytes(this.nonce);
    hello.str(this.transport.options.nodeId, 1);
    hello.patch32(at, hello.length - at - 4);
    this.socket.write(hello.take());
  }

  private onData(chunk: Buffer): void {
    let frames: Buffer[];
    try {
      frames = this.splitter.push(chunk);
    } catch (err) {
      this.protocolError(err);
      return;
    }
    for (const frame of frames) {
      if (this.state === 'closed') return;
      try {
        this.onFrame(frame);
      } catch (err) {
        this.protocolError(err);
        return;
      }
    }
  }

  private protocolError(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.transport.options.log.warn({ peer: this.label, address: this.peer, err: message }, 'internode protocol error: connection closed');
    this.fail('unreachable', `${this.label}: protocol error: ${message}`);
  }

  private onFrame(frame: Buffer): void {
    const r = new Reader(frame);
    const kind = r.u8('kind');
    if (this.state === 'handshaking') {
      this.onHandshake(kind, r);
      return;
    }
    if (kind !== Kind.reply && kind !== Kind.error) throw new MalformedError(`frame kind ${kind} after the handshake`);
    this.transport.counters.framesReceived.inc();
    const id = r.u32('request id');
    const code = r.u8('message code');
    const call = this.pending.get(id);
    if (call === undefined) return; // its deadline passed: nobody waits for it
    this.pending.delete(id);
    cancelDeadline(call.deadline);
    if (code !== MESSAGE_SPECS[call.type].code) {
      call.reject(new TransportError('unreachable', `${this.label}: the reply to a ${call.type} came with message code ${code}`));
      throw new MalformedError(`reply code ${code} does not match the ${call.type} it answers`);
    }
    if (kind === Kind.error) {
      r.u8('error code');
      const message = r.str(2, 'error message');
      call.reject(new TransportError('rejected', `${this.label} refused the ${call.type}: ${message}`));
      return;
    }
    let reply: object;
    try {
      reply = decodeReplyBody(call.type, r);
    } catch (err) {
      call.reject(new TransportError('unreachable', `${this.label}: undecodable ${call.type} reply`));
      throw err;
    }
    const problem = replyProblem(call.type, reply);
    if (problem) call.reject(new TransportError('rejected', `${this.label} sent a malformed reply: ${problem}`));
    else call.resolve(reply);
  }

  private onHandshake(kind: number, r: Reader): void {
    const opts = this.transport.options;
    if (kind === Kind.challenge) {
      const status = r.u8('status');
      const chosen = r.u16('version');
      const theirMin = r.u16('min version');
      const theirMax = r.u16('max version');
      const theirNonce = r.bytes(NONCE_BYTES, 'nonce');
      const theirProof = r.bytes(PROOF_BYTES, 'proof');
      const theirId = r.str(1, 'node id');
      r.done('challenge');
      const v = opts.versions ?? { min: MIN_PROTOCOL_VERSION, max: PROTOCOL_VERSION };
      if (status !== 0 || chosen < v.min || chosen > v.max) {
        const message =
          `${this.label} (${theirId}) speaks internode protocol versions ${theirMin}..${theirMax}, this node ${v.min}..${v.max}: ` +
          'no version in common; upgrade or roll back one of them';
        opts.log.error({ peer: this.label, address: this.peer }, message);
        this.refused(message);
        return;
      }
      if (!proofMatchesAny(theirProof, opts.clusterTokens, 'server', this.nonce, theirNonce)) {
        const message = `${this.label} (${theirId}) does not hold this cluster's token (its handshake proof does not match): check QUORUMKV_CLUSTER_SECRET on both; ${ROTATION_HINT}`;
        opts.log.error({ peer: this.label, address: this.peer }, message);
        // tell the server why, so its log says so too
        const notice = new OutBuffer(128);
        const at = notice.reserve32();
        notice.u8(Kind.refused);
        notice.str(`${opts.nodeId} does not hold the same cluster token (the proof of this node did not match)`, 2);
        notice.patch32(at, notice.length - at - 4);
        this.socket.end(notice.take());
        this.refused(message);
        return;
      }
      const auth = new OutBuffer(64);
      const at = auth.reserve32();
      auth.u8(Kind.auth);
      auth.bytes(proof(provenToken(opts.clusterTokens), 'client', theirNonce, this.nonce));
      auth.patch32(at, auth.length - at - 4);
      this.socket.write(auth.take());
      return;
    }
    if (kind === Kind.ready) {
      r.done('ready');
      this.state = 'ready';
      this.splitter.maxFrameBytes = opts.maxFrameBytes;
      this.socket.setTimeout(0);
      this.transport.counters.opened.inc();
      if (this.out.length > 0) this.transport.flusher.mark(this);
      return;
    }
    if (kind === Kind.refused) {
      const reason = r.str(2, 'reason');
      const message = `${this.label} refused this node's connection: ${reason}`;
      opts.log.error({ peer: this.label, address: this.peer }, message);
      this.refused(message);
      return;
    }
    throw new MalformedError(`frame kind ${kind} during the handshake`);
  }

  private refused(message: string): void {
    this.transport.hold(this.peer, new TransportError('rejected', message));
    this.fail('rejected', message);
  }

  /** Ends the connection; every call still waiting fails with `kind`. */
  fail(kind: TransportFailure, message: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.transport.forget(this);
    this.socket.destroy();
    const calls = [...this.pending.values()];
    this.pending.clear();
    for (const c of calls) {
      cancelDeadline(c.deadline);
      c.reject(new TransportError(kind, message));
    }
  }
}
