// POST /internal/<type>: the routes peers call, on node's http module directly rather than
// express. Every client request costs the coordinator one or two of these per replica, so their
// overhead is the cluster's overhead: measured here, express + body-parser took 0.35 ms of CPU
// per internal read, twice an express GET /health; see docs/BENCHMARKS.md for the figures after.

import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../core/log';
import { MESSAGE_TYPES, type Message } from '../core/messages';
import type { Counter } from '../metrics';
import { CLUSTER_TOKEN_HEADER } from '../net/http-transport';
import { BadMessageError } from '../node/errors';
import type { Node } from '../node/node';
import type { ErrorCode } from './errors';

export const INTERNAL_PREFIX = '/internal/';

export interface InternalOptions {
  node: Node;
  log: Logger;
  clusterSecret?: string | undefined;
  maxBodyBytes: number;
  /** Counts requests refused before reaching the node (the same counter the public API uses). */
  rejected: Counter;
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function fail(res: ServerResponse, status: number, code: ErrorCode, message: string): void {
  reply(res, status, { error: { code, message } });
}

export function createInternalHandler(opts: InternalOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const secret = opts.clusterSecret ? Buffer.from(opts.clusterSecret) : undefined;

  return (req, res) => {
    const type = (req.url ?? '').slice(INTERNAL_PREFIX.length).split('?')[0] as Message['type'];
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      return fail(res, 405, 'method_not_allowed', 'internal routes take POST');
    }
    if (secret) {
      const given = Buffer.from(String(req.headers[CLUSTER_TOKEN_HEADER] ?? ''));
      if (given.length !== secret.length || !timingSafeEqual(given, secret)) {
        opts.rejected.inc({ reason: 'unauthorized' });
        req.resume();
        return fail(res, 401, 'unauthorized', `internal routes need the cluster token in the ${CLUSTER_TOKEN_HEADER} header`);
      }
    }
    if (!MESSAGE_TYPES.includes(type)) {
      req.resume();
      return fail(res, 404, 'not_found', `no internal route ${JSON.stringify(type)}`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      if (tooLarge) return;
      size += chunk.length;
      if (size > opts.maxBodyBytes) {
        tooLarge = true;
        opts.rejected.inc({ reason: 'body_too_large' });
        fail(res, 413, 'value_too_large', `internal message exceeds ${opts.maxBodyBytes} bytes`);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (tooLarge) return;
      let msg: Message;
      try {
        msg = JSON.parse(Buffer.concat(chunks, size).toString('utf8')) as Message;
      } catch (err) {
        return fail(res, 400, 'invalid_body', `body is not valid JSON: ${(err as Error).message}`);
      }
      if (typeof msg !== 'object' || msg === null || msg.type !== type)
        return fail(res, 400, 'bad_request', `not a ${JSON.stringify(type)} message`);
      opts.node.handle(msg).then(
        (r) => reply(res, 200, r),
        (err: unknown) => {
          if (err instanceof BadMessageError) return fail(res, 400, 'bad_request', err.message);
          opts.log.error({ err, type }, 'internal request failed');
          fail(res, 500, 'internal', 'internal error; see the node log');
        },
      );
    });
  };
}
