// The production Transport: JSON over HTTP/1.1 to the peer's /internal/<type> route, on undici
// keep-alive pools (measured here: axios cost 4x the CPU per call; see README "Why undici").
// Every call carries a deadline; a peer that is hung (SIGSTOP) or partitioned costs at most that.

import { Agent, request, errors as undiciErrors } from 'undici';
import type { Message, ReplyOf } from '../core/messages';
import { type Transport, TransportError } from './transport';

export const CLUSTER_TOKEN_HEADER = 'x-quorumkv-cluster-token';

export interface HttpTransportOptions {
  /** Sent with every call when set; peers with a secret refuse calls without it. */
  clusterSecret?: string | undefined;
  /** Open connections kept per peer (bounds the in-flight calls to one peer). */
  connectionsPerPeer?: number;
}

const NETWORK_CODES: Record<string, 'refused' | 'unreachable'> = {
  ECONNREFUSED: 'refused',
  EHOSTUNREACH: 'unreachable',
  ENETUNREACH: 'unreachable',
  ECONNRESET: 'unreachable',
  EPIPE: 'unreachable',
  ENOTFOUND: 'unreachable',
  EAI_AGAIN: 'unreachable',
  UND_ERR_SOCKET: 'unreachable',
  UND_ERR_CLOSED: 'unreachable',
};

function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code in NETWORK_CODES) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

export class HttpTransport implements Transport {
  private readonly agent: Agent;
  private readonly headers: Record<string, string>;

  constructor(options: HttpTransportOptions = {}) {
    this.agent = new Agent({
      connections: options.connectionsPerPeer ?? 64,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 60_000,
    });
    this.headers = { 'content-type': 'application/json' };
    if (options.clusterSecret) this.headers[CLUSTER_TOKEN_HEADER] = options.clusterSecret;
  }

  async send<M extends Message>(to: string, msg: M, timeoutMs: number): Promise<ReplyOf<M>> {
    const signal = AbortSignal.timeout(Math.max(1, timeoutMs));
    try {
      const res = await request(`http://${to}/internal/${msg.type}`, {
        dispatcher: this.agent,
        method: 'POST',
        headers: this.headers,
        body: JSON.stringify(msg),
        signal,
      });
      const text = await res.body.text();
      if (res.statusCode !== 200) {
        let detail = text.slice(0, 300);
        try {
          detail = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? detail;
        } catch {}
        throw new TransportError('rejected', `${to} answered ${res.statusCode}: ${detail}`);
      }
      return JSON.parse(text) as ReplyOf<M>;
    } catch (err) {
      if (err instanceof TransportError) throw err;
      if (signal.aborted || err instanceof undiciErrors.RequestAbortedError) {
        throw new TransportError('timeout', `no reply from ${to} within ${timeoutMs} ms`);
      }
      const code = errorCode(err);
      if (code) throw new TransportError(NETWORK_CODES[code] as 'refused' | 'unreachable', `${to}: ${code}`);
      throw new TransportError('unreachable', `${to}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}
