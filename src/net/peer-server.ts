// The internode port: accepts peers' connections, runs the handshake (./protocol.ts), decodes and
// checks every request against its declared shape, hands it to the node, and sends the replies,
// every reply of one event-loop turn in one socket write (a lone reply at once: ./flush.ts).
//
// What a connection may cost is bounded: before the handshake it may send only small frames and
// must finish within `handshakeTimeoutMs`; after it, frames up to `maxFrameBytes`, and at most
// `maxInflightPerConnection` requests being handled (beyond that the socket is not read until
// half have been answered: TCP pushes back on the peer). A peer that breaks the protocol loses its
// connection, with a log line; nothing it sends can take the process down.

import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { MalformedError, OutBuffer, Reader } from '../core/bytes';
import type { Logger } from '../core/log';
import { type Message, messageProblem } from '../core/messages';
import type { Metrics } from '../metrics';
import { BadMessageError, NotServingError } from '../node/errors';
import { type InternodeCounters, internodeCounters } from './counters';
import { FlushScheduler } from './flush';
import { beat } from './idle-poll';
import {
  decodeRequestBody,
  ErrorCode,
  encodeError,
  encodeReplyBody,
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
  typeOfCode,
  writeFrame,
} from './protocol';
import { describeTlsRefusal, type TlsMaterial } from './tls';
import { FrameSplitter } from './wire';

export interface PeerServerOptions {
  nodeId: string;
  /** The cluster tokens, `current[,next]`: the first is proven to clients, a client proving any is let in; empty when there is none. */
  clusterTokens: readonly string[];
  /** Answers one request (the node's protocol handler). */
  handle: (msg: Message) => Promise<unknown>;
  log: Logger;
  metrics?: Metrics | undefined;
  /** Largest frame a peer may send once it has completed the handshake. */
  maxFrameBytes: number;
  /** This node's API address, for the answer to an HTTP client that came to the wrong port. */
  apiAddress: string;
  handshakeTimeoutMs?: number;
  maxInflightPerConnection?: number;
  maxConnections?: number;
  versions?: { min: number; max: number };
  /**
   * Mutual TLS (--tls internode|all): this node's certificate and key, and the CA a peer's
   * certificate must chain to. A peer that shows none, or one the CA did not sign, or an expired
   * one, is refused right after the TLS handshake, before anything it sends is read, and the log
   * says why.
   */
  tls?: TlsMaterial | undefined;
  /** Whether the node has one message or none in hand: only then may a lone reply leave at once (./flush.ts). */
  alone?: () => boolean;
}

/** Frames before the handshake completes are tiny; a stranger cannot make the node buffer more. */
const HANDSHAKE_MAX_FRAME_BYTES = 1024;

/** Each kind of refusal is logged at most once per this interval (a flood of garbage is counted, not logged line by line). */
const LOG_INTERVAL_MS = 10_000;

export class PeerServer {
  private readonly server: net.Server;
  private readonly connections = new Set<ServerConnection>();
  readonly flusher: FlushScheduler;
  readonly counters: InternodeCounters;
  /** Requests being handled, on every connection. */
  private inHand = 0;
  private readonly refusals: ((reason: string) => void) | undefined;
  /** Per reason: when a refusal was last logged, and how many went unlogged since. */
  private readonly logged = new Map<string, { atMs: number; unlogged: number }>();

  constructor(readonly options: PeerServerOptions) {
    this.flusher = new FlushScheduler(options.alone);
    const m = options.metrics;
    this.counters = internodeCounters(m, 'in', () => this.connections.size);
    const refused = m?.counter(
      'quorumkv_internode_refused_total',
      'Internode connections closed for breaking the protocol or failing the handshake, by reason',
      ['reason'],
    );
    this.refusals = refused ? (reason) => refused.inc({ reason }) : undefined;
    const accept = (socket: net.Socket) => {
      const conn = new ServerConnection(this, socket);
      this.connections.add(conn);
      socket.on('close', () => this.connections.delete(conn));
    };
    const material = options.tls;
    if (material === undefined) {
      this.server = net.createServer({ noDelay: true, pauseOnConnect: false }, accept);
    } else {
      // rejectUnauthorized is off so that the refusal can say why (expired, another CA, none):
      // the check below runs on every connection before a byte of it is read.
      const server = tls.createServer(
        {
          ...tlsContextOptions(material),
          requestCert: true,
          rejectUnauthorized: false,
          handshakeTimeout: options.handshakeTimeoutMs ?? 5_000,
        },
        (socket: tls.TLSSocket) => {
          socket.setNoDelay(true);
          if (!socket.authorized) {
            const shown = Object.keys(socket.getPeerCertificate() ?? {}).length > 0;
            const code = shown ? String(socket.authorizationError ?? '') : 'NO_CERTIFICATE';
            this.refused(
              tlsRefusalKind(code),
              { remote: `${socket.remoteAddress}:${socket.remotePort}`, reason: code },
              `refused an internode connection: ${describeTlsRefusal(code)}`,
              'warn',
            );
            socket.destroy();
            return;
          }
          accept(socket);
        },
      );
      server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
        const plain = err.code === 'ERR_SSL_HTTP_REQUEST' || /wrong version number|http request/i.test(err.message);
        this.refused(
          'tls_handshake',
          { remote: `${socket.remoteAddress}:${socket.remotePort}`, reason: err.code ?? err.message },
          plain
            ? 'refused an internode connection: it did not start TLS (this port runs mutual TLS: --tls internode|all)'
            : `refused an internode connection: the TLS handshake failed (${err.code ?? err.message})`,
          'warn',
        );
        socket.destroy();
      });
      this.server = server;
    }
    this.server.maxConnections = options.maxConnections ?? 4096;
  }

  /** New certificate, key or CA (the files changed): new connections use them, open ones keep theirs. */
  setTls(m: TlsMaterial): void {
    if (!(this.server instanceof tls.Server)) throw new Error('internode TLS is off: there is no certificate to replace');
    this.server.setSecureContext(tlsContextOptions(m));
  }

  listen(port: number, host: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  address(): net.AddressInfo {
    return this.server.address() as net.AddressInfo;
  }

  /** Connections open now (tests). */
  connectionCount(): number {
    return this.connections.size;
  }

  /** Requests from peers being handled now, on every connection. */
  callsInHand(): number {
    return this.inHand;
  }

  /** A connection took a request (`+1`) or answered one (`-1`). */
  counted(delta: 1 | -1): void {
    this.inHand += delta;
  }

  /** Stops accepting and closes every connection. */
  close(): Promise<void> {
    for (const c of this.connections) c.close();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  refused(reason: string, fields: Record<string, unknown>, message: string, level: 'debug' | 'warn'): void {
    this.refusals?.(reason);
    if (level === 'debug') {
      this.options.log.debug(fields, message);
      return;
    }
    const now = performance.now();
    const last = this.logged.get(reason);
    if (last !== undefined && now - last.atMs < LOG_INTERVAL_MS) {
      last.unlogged++;
      return;
    }
    const suppressed = last?.unlogged ?? 0;
    this.logged.set(reason, { atMs: now, unlogged: 0 });
    this.options.log.warn(suppressed > 0 ? { ...fields, alsoSuppressed: suppressed } : fields, message);
  }
}

/** The refusal's label in metrics and logs (a few kinds: the label set stays bounded). */
function tlsRefusalKind(code: string): string {
  if (code === 'NO_CERTIFICATE') return 'tls_no_certificate';
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return 'tls_certificate_dates';
  return /SIGN|ISSUER|SELF_SIGNED|VERIFY/.test(code) ? 'tls_unknown_ca' : 'tls_certificate';
}

function tlsContextOptions(m: TlsMaterial): tls.SecureContextOptions {
  return { cert: m.cert, key: m.key, ...(m.ca ? { ca: m.ca } : {}) };
}

class ServerConnection {
  private state: 'magic' | 'hello' | 'auth' | 'ready' | 'closed' = 'magic';
  private readonly splitter = new FrameSplitter(HANDSHAKE_MAX_FRAME_BYTES);
  private readonly out = new OutBuffer();
  /** Frames in `out`. */
  private queued = 0;
  private magicSeen = Buffer.alloc(0);
  private clientNonce = Buffer.alloc(0);
  private readonly nonce = randomBytes(NONCE_BYTES);
  private peerId = '?';
  private inflight = 0;
  private paused = false;
  private readonly remote: string;

  constructor(
    private readonly server: PeerServer,
    private readonly socket: net.Socket,
  ) {
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.setKeepAlive(true, 10_000);
    socket.setTimeout(server.options.handshakeTimeoutMs ?? 5_000);
    socket.on('timeout', () => {
      if (this.state === 'ready') return;
      server.refused('handshake_timeout', { remote: this.remote }, 'internode connection closed: no handshake in time', 'debug');
      this.close();
    });
    socket.on('data', (chunk: Buffer) => {
      this.onData(chunk);
    });
    socket.on('error', () => this.close());
    socket.on('close', () => {
      this.state = 'closed';
    });
  }

  close(): void {
    this.state = 'closed';
    this.socket.destroy();
  }

  /** (A method, not a field test: handling one frame can close the connection under the loop.) */
  private isClosed(): boolean {
    return this.state === 'closed';
  }

  flush(): number {
    if (this.state === 'closed' || this.out.length === 0) return 0;
    this.socket.write(this.out.take());
    this.server.counters.socketWrites.inc();
    const frames = this.queued;
    this.queued = 0;
    return frames;
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    if (this.state === 'magic') {
      this.magicSeen = Buffer.concat([this.magicSeen, chunk]);
      if (this.magicSeen.length < MAGIC.length) {
        if (!MAGIC.subarray(0, this.magicSeen.length).equals(this.magicSeen)) this.stranger();
        return;
      }
      if (!this.magicSeen.subarray(0, MAGIC.length).equals(MAGIC)) {
        this.stranger();
        return;
      }
      chunk = this.magicSeen.subarray(MAGIC.length);
      this.magicSeen = Buffer.alloc(0);
      this.state = 'hello';
    }
    let frames: Buffer[];
    try {
      frames = this.splitter.push(chunk);
    } catch (err) {
      this.protocolError(err);
      return;
    }
    if (frames.length > 0) beat(frames.length > 1);
    for (const frame of frames) {
      if (this.isClosed()) return;
      try {
        this.onFrame(frame);
      } catch (err) {
        this.protocolError(err);
        return;
      }
    }
  }

  /** Whatever connected is not a quorumkv peer. An HTTP client is told where the API is. */
  private stranger(): void {
    const first = this.magicSeen.subarray(0, 16).toString('latin1');
    if (/^[A-Z]{3,7} \//.test(first)) {
      const body = `${JSON.stringify({
        error: {
          code: 'wrong_port',
          message: `this is the internode port of quorumkv node ${this.server.options.nodeId} (node-to-node protocol); its HTTP API is at http://${this.server.options.apiAddress}`,
        },
      })}\n`;
      this.socket.end(
        `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
      this.state = 'closed';
      this.server.refused(
        'not_a_peer',
        { remote: this.remote },
        'an HTTP client came to the internode port: told where the API is',
        'debug',
      );
      return;
    }
    this.server.refused(
      'not_a_peer',
      { remote: this.remote, first: JSON.stringify(first) },
      'internode connection closed: it does not start with the protocol magic',
      'warn',
    );
    this.close();
  }

  private protocolError(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.server.refused(
      'bad_frame',
      { remote: this.remote, peer: this.peerId, err: message },
      'internode protocol error: connection closed',
      'warn',
    );
    this.close();
  }

  private onFrame(frame: Buffer): void {
    const r = new Reader(frame);
    const kind = r.u8('kind');
    if (this.state === 'hello') {
      this.onHello(kind, r);
      return;
    }
    if (this.state === 'auth') {
      this.onAuth(kind, r);
      return;
    }
    if (kind !== Kind.request) throw new MalformedError(`frame kind ${kind} is not a request`);
    this.server.counters.framesReceived.inc();
    const id = r.u32('request id');
    const code = r.u8('message code');
    const type = typeOfCode(code);
    const msg = decodeRequestBody(type, r);
    const problem = messageProblem(msg);
    if (problem) {
      this.replyError(id, code, ErrorCode.badMessage, `malformed ${type}: ${problem}`);
      return;
    }
    this.inflight++;
    this.server.counted(1);
    if (!this.paused && this.inflight >= (this.server.options.maxInflightPerConnection ?? 4096)) {
      this.paused = true;
      this.socket.pause();
    }
    let settled: Promise<unknown>;
    try {
      settled = this.server.options.handle(msg);
    } catch (err) {
      settled = Promise.reject(err);
    }
    settled.then(
      (reply) => {
        this.done();
        if (this.state === 'closed') return;
        try {
          writeFrame(this.out, Kind.reply, id, code, (o) => encodeReplyBody(o, type, reply as object));
          this.queued++;
          this.server.counters.framesSent.inc();
          this.server.flusher.mark(this);
        } catch (err) {
          this.server.options.log.error({ err: String(err), type }, 'internode reply could not be encoded');
          this.replyError(id, code, ErrorCode.internal, 'the reply could not be encoded; see the peer log');
        }
      },
      (err: unknown) => {
        this.done();
        if (err instanceof BadMessageError) return this.replyError(id, code, ErrorCode.badMessage, err.message);
        if (err instanceof NotServingError) return this.replyError(id, code, ErrorCode.unavailable, err.message);
        this.server.options.log.error({ err, type, peer: this.peerId }, 'internode request failed');
        this.replyError(id, code, ErrorCode.internal, `internal error on ${this.server.options.nodeId}; see its log`);
      },
    );
  }

  private done(): void {
    this.inflight--;
    this.server.counted(-1);
    if (this.paused && this.inflight < (this.server.options.maxInflightPerConnection ?? 4096) / 2) {
      this.paused = false;
      if (this.state !== 'closed') this.socket.resume();
    }
  }

  private replyError(id: number, code: number, errorCode: number, message: string): void {
    if (this.state === 'closed') return;
    writeFrame(this.out, Kind.error, id, code, (o) => encodeError(o, errorCode, message));
    this.queued++;
    this.server.counters.framesSent.inc();
    this.server.flusher.mark(this);
  }

  private onHello(kind: number, r: Reader): void {
    if (kind !== Kind.hello) throw new MalformedError(`expected the handshake's hello, got frame kind ${kind}`);
    const theirMin = r.u16('min version');
    const theirMax = r.u16('max version');
    this.clientNonce = Buffer.from(r.bytes(NONCE_BYTES, 'nonce'));
    this.peerId = r.str(1, 'node id');
    r.done('hello');
    const opts = this.server.options;
    const v = opts.versions ?? { min: MIN_PROTOCOL_VERSION, max: PROTOCOL_VERSION };
    const chosen = Math.min(theirMax, v.max);
    const ok = chosen >= Math.max(theirMin, v.min);
    const reply = new OutBuffer(128);
    const at = reply.reserve32();
    reply.u8(Kind.challenge);
    reply.u8(ok ? 0 : 1);
    reply.u16(ok ? chosen : v.max);
    reply.u16(v.min);
    reply.u16(v.max);
    reply.bytes(this.nonce);
    reply.bytes(proof(provenToken(opts.clusterTokens), 'server', this.clientNonce, this.nonce));
    reply.str(opts.nodeId, 1);
    reply.patch32(at, reply.length - at - 4);
    if (!ok) {
      this.socket.end(reply.take());
      this.state = 'closed';
      this.server.refused(
        'version',
        { remote: this.remote, peer: this.peerId },
        `refused peer ${this.peerId}: it speaks internode protocol versions ${theirMin}..${theirMax}, this node ${v.min}..${v.max}; upgrade or roll back one of them`,
        'warn',
      );
      return;
    }
    this.socket.write(reply.take());
    this.state = 'auth';
  }

  private onAuth(kind: number, r: Reader): void {
    if (kind === Kind.refused) {
      const reason = r.str(2, 'reason');
      this.server.refused(
        'peer_refused',
        { remote: this.remote, peer: this.peerId },
        `peer ${this.peerId} refused this node: ${reason}`,
        'warn',
      );
      this.close();
      return;
    }
    if (kind !== Kind.auth) throw new MalformedError(`expected the handshake's auth, got frame kind ${kind}`);
    const given = r.bytes(PROOF_BYTES, 'proof');
    r.done('auth');
    const opts = this.server.options;
    const reply = new OutBuffer(128);
    const at = reply.reserve32();
    if (!proofMatchesAny(given, opts.clusterTokens, 'client', this.nonce, this.clientNonce)) {
      reply.u8(Kind.refused);
      reply.str(`the cluster token differs from ${opts.nodeId}'s (check QUORUMKV_CLUSTER_SECRET on both; ${ROTATION_HINT})`, 2);
      reply.patch32(at, reply.length - at - 4);
      this.socket.end(reply.take());
      this.state = 'closed';
      this.server.refused(
        'token',
        { remote: this.remote, peer: this.peerId },
        `refused peer ${this.peerId}: it does not hold this cluster's token`,
        'warn',
      );
      return;
    }
    reply.u8(Kind.ready);
    reply.patch32(at, reply.length - at - 4);
    this.socket.write(reply.take());
    this.state = 'ready';
    this.splitter.maxFrameBytes = opts.maxFrameBytes;
    this.socket.setTimeout(0);
    this.server.counters.opened.inc();
  }
}
