// HTTP/1.1 by hand over a TCP socket, for the fuzzer: a request is whatever bytes we choose (broken
// request lines, mismatched lengths, header injection), sent in parts with pauses if we like, and
// the reply is parsed from the raw bytes, so nothing a client library would refuse or repair
// stands between the fuzzer and the server.

import net from 'node:net';

/** Bytes to send, after waiting `delayMs` (a slow client). */
export interface Part {
  bytes: Buffer;
  delayMs?: number;
}

export interface ExchangeOptions {
  /** The whole exchange ends by this time, whatever the server does. */
  deadlineMs: number;
  /** Go away this long after the last part instead of waiting for a reply (a client that gives up). */
  hangUpAfterMs?: number | undefined;
  /** Once a whole reply is in, wait this long for more before ending (the server may keep the connection). */
  idleAfterReplyMs: number;
  /** The method of the request, for framing its reply (a reply to HEAD has no body). */
  method: string;
}

export interface Exchange {
  received: Buffer;
  /** How it ended: the server closed, we hung up, the server went quiet after replying, or the deadline. */
  end: 'server-closed' | 'hung-up' | 'idle' | 'deadline';
  /** A socket error (ECONNRESET, EPIPE, ECONNREFUSED...), if any. */
  error?: string;
  /** Every part was handed to the kernel before the end (false: the node closed while we were still sending). */
  sentAll: boolean;
}

export interface Reply {
  status: number;
  /** Header names lower-cased; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
}

/** Sends `parts` to host:port and collects whatever comes back, within `deadlineMs`. */
export function exchange(host: string, port: number, parts: Part[], opts: ExchangeOptions): Promise<Exchange> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const timers: NodeJS.Timeout[] = [];
    let error: string | undefined;
    let idle: NodeJS.Timeout | undefined;
    let settled = false;
    let sentAll = false;
    const socket = net.connect({ host, port });
    const finish = (end: Exchange['end']) => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      clearTimeout(idle);
      socket.destroy();
      resolve({ received: Buffer.concat(chunks), end, sentAll, ...(error !== undefined ? { error } : {}) });
    };
    const later = (ms: number, fn: () => void) => timers.push(setTimeout(fn, ms));
    later(opts.deadlineMs, () => finish('deadline'));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error ??= err.code ?? err.message;
    });
    socket.on('close', () => finish('server-closed'));
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (opts.hangUpAfterMs !== undefined) return;
      clearTimeout(idle);
      if (hasFinalReply(Buffer.concat(chunks), opts.method)) idle = setTimeout(() => finish('idle'), opts.idleAfterReplyMs);
    });
    socket.on('connect', () => {
      let at = 0;
      parts.forEach((part, i) => {
        at += part.delayMs ?? 0;
        const last = i === parts.length - 1;
        later(at, () => {
          if (!socket.destroyed) socket.write(part.bytes, (err) => (sentAll = last && !err));
        });
      });
      if (opts.hangUpAfterMs !== undefined) later(at + opts.hangUpAfterMs, () => finish('hung-up'));
    });
  });
}

function hasFinalReply(bytes: Buffer, method: string): boolean {
  return parseReplies(bytes, method, false).length > 0;
}

const HEADER_END = Buffer.from('\r\n\r\n');
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: [^\r\n]*)?$/;

/**
 * The whole replies in `bytes`, in order, interim (1xx) replies skipped. A reply without a length
 * runs to the end of the stream, so it counts only once the server has closed (`atEnd`). Bytes
 * that are not a reply end the list (the caller sees fewer replies than it expected).
 */
export function parseReplies(bytes: Buffer, method: string, atEnd: boolean): Reply[] {
  const replies: Reply[] = [];
  let at = 0;
  while (at < bytes.length) {
    const headEnd = bytes.indexOf(HEADER_END, at);
    if (headEnd < 0) break;
    const [statusLine = '', ...lines] = bytes.toString('latin1', at, headEnd).split('\r\n');
    const m = STATUS_LINE.exec(statusLine);
    if (!m) break;
    const status = Number(m[1]);
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    at = headEnd + HEADER_END.length;
    if (status < 200) continue;
    // only the first reply answers our request; any later one answers bytes the server read as another
    const bodiless = (replies.length === 0 && method === 'HEAD') || status === 204 || status === 304;
    const body = bodiless ? { bytes: Buffer.alloc(0), next: at } : readBody(bytes, at, headers, atEnd);
    if (body === undefined) break;
    replies.push({ status, headers, body: body.bytes });
    at = body.next;
  }
  return replies;
}

/** The body that starts at `at`, framed by chunked encoding, Content-Length, or the end of the stream. */
function readBody(bytes: Buffer, at: number, headers: Record<string, string>, atEnd: boolean): { bytes: Buffer; next: number } | undefined {
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) return readChunked(bytes, at);
  const length = headers['content-length'];
  if (length !== undefined) {
    const n = Number(length);
    if (!Number.isSafeInteger(n) || n < 0 || at + n > bytes.length) return undefined;
    return { bytes: bytes.subarray(at, at + n), next: at + n };
  }
  return atEnd ? { bytes: bytes.subarray(at), next: bytes.length } : undefined;
}

function readChunked(bytes: Buffer, start: number): { bytes: Buffer; next: number } | undefined {
  const parts: Buffer[] = [];
  let at = start;
  for (;;) {
    const lineEnd = bytes.indexOf('\r\n', at);
    if (lineEnd < 0) return undefined;
    const size = Number.parseInt(bytes.toString('latin1', at, lineEnd), 16);
    if (!Number.isSafeInteger(size) || size < 0) return undefined;
    at = lineEnd + 2;
    if (size === 0) {
      // trailers, then the empty line that ends the body
      const end = bytes.indexOf('\r\n', at);
      if (end < 0) return undefined;
      if (end === at) return { bytes: Buffer.concat(parts), next: at + 2 };
      const trailersEnd = bytes.indexOf(HEADER_END, at);
      return trailersEnd < 0 ? undefined : { bytes: Buffer.concat(parts), next: trailersEnd + HEADER_END.length };
    }
    if (at + size + 2 > bytes.length) return undefined;
    parts.push(bytes.subarray(at, at + size));
    at += size + 2;
  }
}

/** `bytes` as printable text: ASCII as is, everything else escaped, cut to `max` characters. */
export function printable(bytes: Buffer, max = 400): string {
  let out = '';
  for (const b of bytes.subarray(0, max)) {
    if (b === 0x0d) out += '\\r';
    else if (b === 0x0a) out += '\\n';
    else if (b === 0x5c) out += '\\\\';
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return bytes.length > max ? `${out}... (${bytes.length} bytes)` : out;
}
