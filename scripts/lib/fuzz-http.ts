// Campaign A of `npm run fuzz`: hostile HTTP requests. Each case is built from its own dice (see
// ./fuzz-random.ts) as raw bytes: a category (key, path, method, header, body, query, raw, slow),
// the bytes to send, in parts for a slow client, and what a correct server owes it. Building is
// pure; ../fuzz.ts sends the cases and judges the replies with `judgeReplies`.
//
// Every /kv PUT or DELETE targets a key of its own (`fz-<seed>-<index>-` and the hostile part), so
// afterwards the campaign can tell exactly which keys a refused request must not have stored.

import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { isKvPath } from '../../src/api/kv';
import { ALNUM, Dice, jsonValue, unicodeText } from './fuzz-random';
import type { Part, Reply } from './raw-http';

export const HTTP_CATEGORIES = ['key', 'path', 'method', 'header', 'body', 'query', 'raw', 'slow'] as const;
export type HttpCategory = (typeof HTTP_CATEGORIES)[number];

export interface HttpCase {
  index: number;
  category: HttpCategory;
  /** Which node (index into the cluster's nodes) it goes to. */
  node: number;
  /** What is hostile about it, for the summary and a violation's report. */
  what: string;
  method: string;
  target: string;
  parts: Part[];
  /** The whole request is sent: the server owes it a reply (else the client gives up first). */
  complete: boolean;
  /** The bytes stop before the request's end: the server must not act on it (nor store anything). */
  unfinished: boolean;
  hangUpAfterMs?: number;
  /** A PUT or DELETE on /kv: the key the node decodes from the path (undefined when it cannot). */
  write?: { key: string | undefined; ttl: boolean };
}

/** What a generator returns: the request as bytes, and whether it is whole. */
interface Shaped {
  what: string;
  method: string;
  target: string;
  parts: Part[];
  complete: boolean;
  unfinished?: boolean;
  hangUpAfterMs?: number;
}

interface Context {
  d: Dice;
  /** The prefix of this case's own key: `fz-<seed>-<index>-`. */
  key: string;
  /** The Host header a client would send. */
  host: string;
}

/** Case `index` of the run seeded `seed`, for a cluster whose API addresses are `apis` (host:port). */
export function httpCase(seed: number, index: number, apis: readonly string[]): HttpCase {
  const d = Dice.forCase(seed, 'http', index);
  const node = index % apis.length;
  const category = d.pick(HTTP_CATEGORIES);
  const shaped = GENERATORS[category]({ d, key: `fz-${seed}-${index}-`, host: apis[node] as string });
  const isWrite = (shaped.method === 'PUT' || shaped.method === 'DELETE') && isKvPath(shaped.target);
  return {
    index,
    category,
    node,
    ...shaped,
    unfinished: shaped.unfinished ?? false,
    ...(isWrite ? { write: { key: keyOfTarget(shaped.target), ttl: /[?&]ttl=/.test(shaped.target) } } : {}),
  };
}

/**
 * The key a node decodes from a /kv request target, by the README's rule: everything after "/kv/"
 * up to the query, one trailing "/" allowed, percent-decoded. Undefined when there is none.
 */
export function keyOfTarget(target: string): string | undefined {
  const q = target.indexOf('?');
  let raw = (q < 0 ? target : target.slice(0, q)).slice(4);
  if (raw.endsWith('/')) raw = raw.slice(0, -1);
  if (raw === '' || raw.includes('/')) return undefined;
  try {
    return raw.includes('%') ? decodeURIComponent(raw) : raw;
  } catch {
    return undefined;
  }
}

// ---- requests as bytes ------------------------------------------------------------------------------

interface Request {
  method: string;
  target: string;
  headers: Array<[string, string]>;
  body?: Buffer | undefined;
  /** Content-Length added for the body (default), chunked in pieces of these sizes, or the body as is. */
  framing: 'length' | 'raw' | { chunks: number[] };
}

function baseRequest(c: Context, method: string, target: string, body?: Buffer | string): Request {
  const headers: Array<[string, string]> = [
    ['Host', c.host],
    ['Connection', 'close'],
  ];
  if (body !== undefined) headers.push(['Content-Type', 'application/json']);
  return { method, target, headers, body: body === undefined ? undefined : bytesOf(body), framing: 'length' };
}

/** A body given as text is UTF-8. (The head is written byte for byte: a character of it is the byte it names, latin1.) */
function bytesOf(s: Buffer | string): Buffer {
  return typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
}

function findHeader(r: Request, name: string): number {
  return r.headers.findIndex(([n]) => n.toLowerCase() === name.toLowerCase());
}

function setHeader(r: Request, name: string, value: string): void {
  removeHeader(r, name);
  r.headers.push([name, value]);
}

function removeHeader(r: Request, name: string): void {
  r.headers = r.headers.filter(([n]) => n.toLowerCase() !== name.toLowerCase());
}

function encodeRequest(r: Request): Buffer {
  const headers = [...r.headers];
  let body = r.body ?? Buffer.alloc(0);
  if (r.body !== undefined && r.framing === 'length' && findHeader(r, 'content-length') < 0) {
    headers.push(['Content-Length', String(r.body.length)]);
  }
  if (typeof r.framing === 'object') {
    if (findHeader(r, 'transfer-encoding') < 0) headers.push(['Transfer-Encoding', 'chunked']);
    body = chunked(body, r.framing.chunks);
  }
  const head = `${r.method} ${r.target} HTTP/1.1\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/** `body` in chunked transfer coding, in pieces of the given sizes (the rest in one), then the last chunk. */
function chunked(body: Buffer, sizes: number[]): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (const size of [...sizes, body.length]) {
    if (at >= body.length) break;
    const piece = body.subarray(at, at + Math.max(1, size));
    out.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n'));
    at += piece.length;
  }
  out.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(out);
}

function whole(what: string, r: Request): Shaped {
  return { what, method: r.method, target: r.target, parts: [{ bytes: encodeRequest(r) }], complete: true };
}

/** A client that sends the first `keep` bytes of a request whose end it never sends, and goes away. */
function cutShort(what: string, r: Request, keep: number, hangUpAfterMs: number): Shaped {
  const bytes = encodeRequest(r);
  // with framing written by hand (`raw`) the end of the request is whatever the server makes of it
  const unfinished = r.framing !== 'raw';
  return {
    what,
    method: r.method,
    target: r.target,
    parts: [{ bytes: bytes.subarray(0, keep) }],
    complete: false,
    unfinished,
    hangUpAfterMs,
  };
}

// ---- destructive routes -------------------------------------------------------------------------

/**
 * The admin routes take requests from loopback, where the fuzzer is: a POST to decommission or
 * drain would really take a node out of service (and removenode would, naming a member). Those
 * requests are sent as GETs instead; removenode bodies never name a member (see adminBody).
 */
function defused(method: string, target: string): string {
  const path = target.replace(/^[a-z]+:\/\/[^/]*/i, '').split('?')[0] as string;
  return method === 'POST' && /^\/admin\/(decommission|drain)\/?$/i.test(path) ? 'GET' : method;
}

/** A body for an admin POST: well-formed or not, it never names a member (n1, n2, n3). */
function adminBody(d: Dice): string {
  return d.pick([
    '{}',
    '{"range":"1:2"}',
    '{"range":"x"}',
    `{"id":"fz-${d.int(0, 1e6)}"}`,
    '{"id":"n9","force":true}',
    '{"id":""}',
    '{"id":7}',
    '[]',
    '{"range":"4294967296:1"}',
  ]);
}

// ---- values and keys ------------------------------------------------------------------------------

function valueBody(d: Dice): string {
  return JSON.stringify({ value: jsonValue(d) });
}

/** What was tried, and the hostile part of a key (after a prefix of `prefixBytes`) as it goes in the path. */
function hostileKey(d: Dice, prefixBytes: number): [string, string] {
  return d.weighted<() => [string, string]>([
    [3, () => ['plain', d.text(d.int(1, 16), ALNUM)]],
    [3, () => ['random bytes percent-encoded', percentEncoded(d.bytes(d.int(1, 40)), d.chance(0.5))]],
    [3, () => ['unicode percent-encoded', encodeURIComponent(unicodeText(d, d.int(1, 30)))]],
    [
      2,
      () => [
        'lone surrogate or bad UTF-8',
        d.pick(['%ED%A0%80', '%ED%BF%BF', '%ED%B0%80x', '%F0%9F', '%C0%AF', '%FF', '%80', '%F4%90%80%80', '%E0%80%80']),
      ],
    ],
    [2, () => ['over-long', d.chance(0.5) ? 'k'.repeat(d.int(1010, 4000)) : '%E2%82%AC'.repeat(d.int(338, 400))]],
    [1, () => ['exactly 1024 bytes, the limit', 'k'.repeat(1024 - prefixBytes)]],
    [1, () => ['1025 bytes, one over the limit', `${'k'.repeat(1022 - prefixBytes)}%E2%82%AC`]],
    [2, () => ['double slash', d.pick(['a//b', '/', '//', 'a/', 'a/b'])]],
    [2, () => ['dot segment', d.pick(['.', '..', './x', '../x', '%2e%2e', '%2E%2E%2Fx', '..%2F..%2Fetc%2Fpasswd', '.%2e/'])]],
    [1, () => ['encoded slash', d.pick(['a%2Fb', '%2F', '%2f%2f', '%5C'])]],
    [2, () => ['broken percent-encoding', d.pick(['%', '%G1', '%E0%A4%A', '%%', '%2', 'a%'])]],
    [1, () => ['raw bytes above ASCII', d.text(d.int(1, 8), '\x80\x9f\xa0\xc3\xe9\xff')]],
    [2, () => ['special characters', d.pick(['%00', '%20', '+', ';x', '#frag', '%3F', '%25', '%0D%0AX-Injected:%201', '*', '~', '%7F'])]],
  ])();
}

function percentEncoded(bytes: Buffer, upper: boolean): string {
  const hex = bytes.toString('hex').replace(/../g, '%$&');
  return upper ? hex.toUpperCase() : hex;
}

// ---- the categories -------------------------------------------------------------------------------

const GENERATORS: Record<HttpCategory, (c: Context) => Shaped> = {
  key: keyCase,
  path: pathCase,
  method: methodCase,
  header: headerCase,
  body: bodyCase,
  query: queryCase,
  raw: rawCase,
  slow: slowCase,
};

function keyCase(c: Context): Shaped {
  const { d } = c;
  const [what, hostile] = hostileKey(d, c.key.length);
  const kv = d.weighted([
    [8, 'kv'],
    [1, 'KV'],
    [1, 'Kv'],
  ]);
  const trail = d.weighted([
    [8, ''],
    [1, '/'],
    [1, '//'],
  ]);
  const method = d.weighted([
    [5, 'PUT'],
    [2, 'GET'],
    [2, 'DELETE'],
    [1, 'HEAD'],
  ]);
  const target = `/${kv}/${c.key}${hostile}${trail}`;
  return whole(`key: ${what}`, baseRequest(c, method, target, method === 'PUT' ? valueBody(d) : undefined));
}

/** Routes a scanner or a confused client would try, and the real ones spelled every way. */
function routeTarget(c: Context): string {
  const { d } = c;
  const key = `${c.key}r`;
  return d.weighted<() => string>([
    [
      4,
      () =>
        d.pick([
          '/kv',
          '/kv/',
          '/kv?x=1',
          '/kvx',
          '/kv.',
          `//kv/${key}`,
          `/./kv/${key}`,
          `/kv/./${key}`,
          `/kv/../kv/${key}`,
          `/kv%2F${key}`,
          `/%6bv/${key}`,
          `/kv/${key}/b`,
          '/kv//',
          '/KV',
          `/kv;${key}`,
          `/kv\\${key}`,
        ]),
    ],
    [2, () => `/${d.text(d.int(1, 20), `${ALNUM}-._~%`)}${d.chance(0.3) ? `/${d.text(d.int(1, 10), ALNUM)}` : ''}`],
    [2, () => `/internal/${d.pick(['read', 'write', 'hello', 'gossip', d.text(d.int(1, 12), ALNUM)])}`],
    [
      3,
      () =>
        `/${d.pick(['admin', 'ADMIN', 'Admin'])}/${d.pick(['repair', 'move', 'removenode', 'drain', 'decommission', 'x', '', d.text(6, ALNUM)])}${d.pick(['', '/', '?x=1'])}`,
    ],
    [
      2,
      () =>
        d.pick([
          '/health',
          '/health/',
          '/health/startup',
          '/health/ready',
          '/health/x',
          '/HEALTH',
          '/healthz',
          '/health?verbose=1',
          '/health/ready/',
        ]),
    ],
    [2, () => d.pick(['/metrics', '/metrics/', '/metrics?x', '/cluster', '/ring', '/peers', '/ring?x=1', '/cluster/'])],
    [
      1,
      () =>
        d.pick([
          '/',
          '*',
          '/favicon.ico',
          '/.env',
          '/%',
          '/%00',
          '/\x7f',
          `http://${c.host}/health`,
          'http://evil.example/kv/x',
          `/${'a'.repeat(d.int(2000, 20000))}`,
        ]),
    ],
  ])();
}

function pathCase(c: Context): Shaped {
  const { d } = c;
  const target = routeTarget(c);
  const method = defused(
    d.weighted([
      [6, 'GET'],
      [2, 'POST'],
      [2, 'PUT'],
      [1, 'DELETE'],
      [1, 'HEAD'],
      [1, 'OPTIONS'],
      [1, 'PATCH'],
    ]),
    target,
  );
  const body =
    method === 'POST' || method === 'PUT' || method === 'PATCH' ? (target.includes('admin') ? adminBody(d) : valueBody(d)) : undefined;
  return whole(`path: ${method} ${target.length > 60 ? `${target.slice(0, 60)}...` : target}`, baseRequest(c, method, target, body));
}

const NONSENSE_METHODS = ['get', 'G3T', 'BREW', 'M-SEARCH', 'PROPFIND', 'PURGE', 'LINK', 'SEARCH', 'QUERY', 'FOO', 'PUTT', 'DELETEX'];

function methodCase(c: Context): Shaped {
  const { d } = c;
  const method = d.weighted<() => string>([
    [6, () => d.pick(['GET', 'PUT', 'DELETE', 'POST', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'CONNECT'])],
    [3, () => d.pick(NONSENSE_METHODS)],
    [1, () => d.text(d.int(1, 20), "ABCDEFGHIJKLMNOPQRSTUVWXYZ!#$%&'*+-.^_`|~")],
    [1, () => 'X'.repeat(d.int(100, 2000))],
  ])();
  const target = d.chance(0.7) ? `/kv/${c.key}m` : routeTarget(c);
  const withBody = method === 'PUT' || method === 'POST' || method === 'PATCH' || d.chance(0.2);
  const body = withBody ? (target.includes('admin') ? adminBody(d) : valueBody(d)) : undefined;
  const safe = defused(method, target);
  return whole(`method: ${safe.slice(0, 30)}${withBody ? ' with a body' : ''}`, baseRequest(c, safe, target, body));
}

// ---- headers ----------------------------------------------------------------------------------------

/** A change to a request's headers (or framing); returns how many bytes to withhold, if it makes the request incomplete. */
type HeaderMutation = (r: Request, d: Dice) => { withhold: number } | undefined;

const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'APPLICATION/JSON',
  'application/json;charset=UTF-8',
  'application/json; charset="utf-8"',
  'application/json; charset=latin1',
  'application/json; charset=utf-16',
  'application/json; charset=utf-',
  'application/json; charset',
  'application/json;;',
  'application/json; foo=bar; charset=utf-8',
  'application/vnd.api+json',
  'application/merge-patch+json',
  'application/problem+json; charset=utf-8',
  'text/json',
  'text/plain',
  '',
  'application/',
  '*/*',
  'application/json, text/plain',
  'multipart/form-data; boundary=x',
  'application/x-www-form-urlencoded',
];

function compress(encoding: string, body: Buffer): Buffer {
  if (encoding === 'gzip') return gzipSync(body);
  if (encoding === 'deflate') return deflateSync(body);
  return brotliCompressSync(body);
}

const HEADER_MUTATIONS: ReadonlyArray<readonly [number, string, HeaderMutation]> = [
  [4, 'content-type variant', (r, d) => void setHeader(r, 'Content-Type', d.pick(CONTENT_TYPES))],
  [1, 'no content-type', (r) => void removeHeader(r, 'Content-Type')],
  [1, 'two content-types', (r) => void r.headers.push(['Content-Type', 'text/plain'])],
  [
    3,
    'content-encoding, valid',
    (r, d) => {
      const enc = d.pick(['gzip', 'deflate', 'br']);
      r.body = compress(enc, r.body ?? Buffer.from('{"value":1}'));
      setHeader(r, 'Content-Encoding', d.chance(0.2) ? enc.toUpperCase() : enc);
    },
  ],
  [
    3,
    'content-encoding, invalid',
    (r, d) => {
      setHeader(r, 'Content-Encoding', d.pick(['gzip', 'deflate', 'br', 'x-gzip', 'compress', 'zstd', 'gzip, br', '', 'identity, gzip']));
      if (d.chance(0.5)) r.body = d.bytes(d.int(1, 200));
    },
  ],
  [
    2,
    'content-encoding, truncated',
    (r, d) => {
      const enc = d.pick(['gzip', 'deflate', 'br']);
      const packed = compress(enc, r.body ?? Buffer.from('{"value":"truncated"}'));
      r.body = packed.subarray(0, d.int(1, Math.max(1, packed.length - 1)));
      setHeader(r, 'Content-Encoding', enc);
    },
  ],
  [
    1,
    'gzip bomb',
    (r, d) => {
      r.body = gzipSync(`{"value":"${'a'.repeat(d.int(2, 20) * 2 ** 20)}"}`);
      setHeader(r, 'Content-Encoding', 'gzip');
    },
  ],
  [
    2,
    'content-length larger than the body',
    (r, d) => {
      const extra = d.int(1, 100);
      setHeader(r, 'Content-Length', String((r.body?.length ?? 0) + extra));
      return { withhold: 0 };
    },
  ],
  [
    2,
    'content-length smaller than the body',
    (r, d) => {
      r.body ??= Buffer.from('{"value":1}');
      setHeader(r, 'Content-Length', String(d.int(0, r.body.length - 1)));
    },
  ],
  [
    2,
    'content-length invalid',
    (r, d) => {
      const v = d.pick(['-1', 'abc', '1e3', '1 2', '0x10', '12, 13', '+12', '', '99999999999999999999']);
      setHeader(r, 'Content-Length', v);
      if (d.chance(0.3)) r.headers.push(['Content-Length', '1']);
      r.framing = 'raw';
    },
  ],
  [
    3,
    'chunked body',
    (r, d) => {
      r.body ??= Buffer.from('{"value":"chunked"}');
      r.framing = { chunks: Array.from({ length: d.int(1, 6) }, () => d.int(1, 40)) };
    },
  ],
  [
    2,
    'chunked, malformed',
    (r, d) => {
      setHeader(r, 'Transfer-Encoding', 'chunked');
      r.body = Buffer.from(
        d.pick([
          'zz\r\n{"value":1}\r\n0\r\n\r\n',
          'b\r\n{"value":1}0\r\n\r\n',
          'ffffffffffffffffff\r\nx\r\n0\r\n\r\n',
          'b;ext=1\r\n{"value":1}\r\n0\r\nX-Trailer: 1\r\n\r\n',
          '-1\r\nx\r\n0\r\n\r\n',
          'b\n{"value":1}\n0\n\n',
          ' b\r\n{"value":1}\r\n0\r\n\r\n',
        ]),
      );
      r.framing = 'raw';
    },
  ],
  [
    1,
    'chunked, never finished',
    (r) => {
      r.body ??= Buffer.from('{"value":1}');
      r.framing = { chunks: [3] };
      return { withhold: 5 }; // the last chunk ("0\r\n\r\n") never comes
    },
  ],
  [
    2,
    'content-length and transfer-encoding',
    (r, d) => {
      r.body ??= Buffer.from('{"value":1}');
      setHeader(r, 'Content-Length', String(r.body.length));
      setHeader(
        r,
        'Transfer-Encoding',
        d.pick(['chunked', 'CHUNKED', ' chunked', 'gzip, chunked', 'chunked, identity', 'xchunked', 'identity']),
      );
      r.framing = 'raw';
    },
  ],
  [2, 'expect', (r, d) => void setHeader(r, 'Expect', d.pick(['100-continue', '100-Continue', 'foo', '', '100-continue, foo', '200-ok']))],
  [
    2,
    'very long header value',
    (r, d) => void r.headers.push([d.pick(['X-Fuzz', 'User-Agent', 'Accept', 'Cookie']), 'v'.repeat(d.int(4000, 40000))]),
  ],
  [
    1,
    'many headers',
    (r, d) => {
      for (let i = 0, n = d.int(100, 3000); i < n; i++) r.headers.push([`X-F${i}`, String(i)]);
    },
  ],
  [
    1,
    'host variants',
    (r, d) => {
      const v = d.pick(['', 'evil.example', 'a'.repeat(5000), '127.0.0.1:99999', '[::1', 'two, hosts']);
      setHeader(r, 'Host', v);
      if (d.chance(0.3)) r.headers.push(['Host', 'second.example']);
      if (d.chance(0.2)) removeHeader(r, 'Host');
    },
  ],
  [1, 'keep-alive', (r) => void setHeader(r, 'Connection', 'keep-alive')],
  [1, 'upgrade', (r, d) => void r.headers.push(['Upgrade', d.pick(['websocket', 'h2c', 'TLS/1.2'])], ['Connection', 'Upgrade'])],
  [1, 'cluster token', (r, d) => void r.headers.push(['X-Quorumkv-Cluster-Token', d.text(d.int(0, 64), ALNUM)])],
  [
    1,
    'bytes outside ASCII in a header',
    (r, d) => void r.headers.push([d.pick(['X-Fuzz', 'Content-Type']), d.text(d.int(1, 20), '\x80\xa0\xe9\xff\x00\x01\x7f')]),
  ],
];

function headerCase(c: Context): Shaped {
  const { d } = c;
  const base = d.weighted<() => Request>([
    [6, () => baseRequest(c, 'PUT', `/kv/${c.key}h`, valueBody(d))],
    [2, () => baseRequest(c, 'POST', d.pick(['/admin/repair', '/admin/removenode']), adminBody(d))],
    [1, () => baseRequest(c, 'DELETE', `/kv/${c.key}h`)],
    [1, () => baseRequest(c, 'GET', d.pick(['/health', '/cluster', `/kv/${c.key}h`, '/metrics']))],
  ])();
  const names: string[] = [];
  let withhold: number | undefined;
  for (let i = 0, n = d.int(1, 3); i < n; i++) {
    const [, name, mutate] = d.weighted(HEADER_MUTATIONS.map((m) => [m[0], m] as const));
    names.push(name);
    const effect = mutate(base, d);
    if (effect) withhold = Math.max(withhold ?? 0, effect.withhold);
  }
  const what = `header: ${names.join(' + ')}`;
  // mutations compose: one may change the body after another set a Content-Length for the old one,
  // so what the server waits for is read off the final request, not the mutations
  const shortfall = lengthShortfall(base);
  const short = shortfall ?? withhold ?? 0;
  if (short === 0) return whole(what, base);
  return cutShort(what, base, encodeRequest(base).length - (shortfall === undefined ? short : 0), d.int(20, 150));
}

/**
 * Bytes a request promises in its one Content-Length and does not send (0 when it sends them all,
 * or more); undefined when that is not what frames it (chunked, or no single valid Content-Length).
 */
function lengthShortfall(r: Request): number | undefined {
  if (typeof r.framing === 'object' || findHeader(r, 'transfer-encoding') >= 0) return undefined;
  const lengths = r.headers.filter(([n]) => n.toLowerCase() === 'content-length');
  if (lengths.length !== 1) return undefined;
  const text = (lengths[0] as [string, string])[1];
  if (!/^[0-9]+$/.test(text)) return undefined;
  return Math.max(0, Number(text) - (r.body?.length ?? 0));
}

// ---- bodies -----------------------------------------------------------------------------------------

const ONE_MIB = 2 ** 20;

function nestingDepth(d: Dice): number {
  return d.pick([50, 100, 101, 1000, 5000, d.int(2, 5000)]);
}

const BODIES: ReadonlyArray<readonly [number, string, (d: Dice) => string | Buffer]> = [
  [3, 'random JSON value', (d) => JSON.stringify({ value: jsonValue(d, 5) })],
  [
    2,
    'deep array',
    (d) => {
      const n = nestingDepth(d);
      return `{"value":${'['.repeat(n)}${']'.repeat(n)}}`;
    },
  ],
  [
    1,
    'deep object',
    (d) => {
      const n = nestingDepth(d);
      return `{"value":${'{"a":'.repeat(n)}1${'}'.repeat(n)}}`;
    },
  ],
  [
    1,
    'deep nesting, no wrapper',
    (d) => {
      const n = nestingDepth(d);
      return `${'['.repeat(n)}${']'.repeat(n)}`;
    },
  ],
  [1, 'deep nesting, unbalanced', (d) => `{"value":${'['.repeat(nestingDepth(d))}`],
  [
    2,
    'huge number',
    (d) => `{"value":${d.pick(['1e309', '-1e309', '1e400', '1.8e308', '9'.repeat(400), '[1,2,1e999]', '{"a":-1E+309}'])}}`,
  ],
  [2, 'tiny number', (d) => `{"value":${d.pick(['1e-400', '-2e-324', '[1e-999]', `0.${'0'.repeat(400)}1`, '{"a":1e-330}', '1E-400'])}}`],
  [1, '5000-digit integer', (d) => `{"value":${d.pick(['', '-'])}${'7'.repeat(5000)}}`],
  [1, 'edge numbers', (d) => `{"value":${d.pick(['5e-324', '1.7976931348623157e308', '-0', '0e-999', '1E2', '1e-300', '0.0', '-0.0e5'])}}`],
  [2, 'unicode value', (d) => JSON.stringify({ value: unicodeText(d, d.int(1, 200)) })],
  [
    2,
    'escapes and encodings',
    (d) =>
      d.pick<string | Buffer>([
        '{"value":"\\ud800"}',
        '{"value":"\\udfff\\ud800"}',
        '{"value":{"\\ud800":1}}',
        '{"value":"\\u0000"}',
        '\ufeff{"value":1}',
        Buffer.from([0x7b, 0x22, 0x76, 0x61, 0x6c, 0x75, 0x65, 0x22, 0x3a, 0x22, 0xc0, 0xaf, 0xff, 0xfe, 0x22, 0x7d]),
        Buffer.from('{"value":"\xe9"}', 'latin1'),
        Buffer.from('\xff\xfe{\x00"\x00v\x00', 'latin1'),
      ]),
  ],
  [2, 'non-object JSON', (d) => d.pick(['"v"', '1', 'true', 'null', '[]', '[{"value":1}]', ' 1 ', '"\\u0000"', '-0'])],
  [
    2,
    'invalid JSON',
    (d) =>
      d.pick([
        '{"value":}',
        '{"value":1,}',
        "{'value':1}",
        '{"value":1}}',
        '{"value":NaN}',
        '{"value":Infinity}',
        '{"value":undefined}',
        '{"value":1}garbage',
        '{"value":"\\x41"}',
        '{"value" 1}',
        '{value:1}',
        '{"value":01}',
        '{"value":.5}',
        '{"value":"unterminated}',
        '{"value":"tab\there"}',
      ]),
  ],
  [1, 'empty', () => ''],
  [1, 'whitespace', (d) => d.pick(['   ', '\n', '\t\r\n '])],
  [2, 'binary garbage', (d) => d.bytes(d.int(1, 4000))],
  [
    1,
    'fields other than value',
    (d) =>
      d.pick([
        '{"value":1,"extra":2}',
        '{"value":1,"__proto__":{"x":1}}',
        '{"value":1,"value":2}',
        '{"Value":1}',
        '{"constructor":1}',
        '{"__proto__":{"value":1}}',
        '{}',
      ]),
  ],
  [
    1,
    'over the value limit',
    (d) =>
      d.pick([
        () => `{"value":"${'x'.repeat(ONE_MIB + d.int(1, 60_000))}"}`,
        () => `{"value":"${'x'.repeat(ONE_MIB - 2)}"}`,
        () => `{"value":"${'y'.repeat(d.int(ONE_MIB + 70_000, 2.5 * ONE_MIB))}"}`,
        () => `{"value":[${'1,'.repeat(ONE_MIB / 2)}1]}`,
      ])(),
  ],
];

function bodyCase(c: Context): Shaped {
  const { d } = c;
  const [, name, make] = d.weighted(BODIES.map((b) => [b[0], b] as const));
  const r = baseRequest(c, 'PUT', `/kv/${c.key}b`, make(d));
  if (d.chance(0.1)) r.framing = { chunks: [d.int(1, 1000)] };
  return whole(`body: ${name}${typeof r.framing === 'object' ? ' (chunked)' : ''}`, r);
}

// ---- query parameters -------------------------------------------------------------------------------

const QUERIES: ReadonlyArray<readonly [number, string, (d: Dice) => string]> = [
  [
    2,
    'unknown name',
    (d) =>
      `${d.pick(['consistancy', 'x', 'R', 'W', 'TTL', 'Consistency', '__proto__', 'constructor', 'hasOwnProperty', 'r[]', '', d.text(8, ALNUM)])}=${d.pick(['1', 'all', ''])}`,
  ],
  [
    2,
    'duplicate',
    (d) => d.pick(['consistency=all&consistency=one', 'r=1&r=1', 'w=2&w=2', 'ttl=5&ttl=5', 'consistency=all&consistency=all']),
  ],
  [
    3,
    'r or w out of range',
    (d) =>
      `${d.pick(['r', 'w'])}=${d.pick(['0', '4', '-1', '1e0', '01', '2.0', '%202', '+2', '99999', '0x2', '', '%32', '%EF%BC%93', '1%20', 'NaN', 'Infinity', '1', '2', '3'])}`,
  ],
  [
    2,
    'ttl',
    (d) => `ttl=${d.pick(['0', '-1', '1.5', '315360001', '9999999999', '99999999999', 'abc', '', '1e3', '60', '00001', '315360000', '1'])}`,
  ],
  [
    2,
    'consistency',
    (d) =>
      `consistency=${d.pick(['ALL', 'One', 'quorum%20', '', 'any', 'two', 'local_quorum', 'all%00', '%61ll', 'all,one', 'one', 'all'])}`,
  ],
  [1, 'mixed', (d) => d.pick(['consistency=one&w=1', 'consistency=all&r=3', 'r=1&w=1', 'ttl=60&consistency=one', 'ttl=60&r=1'])],
  [1, 'many parameters', (d) => Array.from({ length: d.int(50, 2000) }, (_, i) => `p${i}=x`).join('&')],
  [1, 'long value', (d) => `consistency=${'a'.repeat(d.int(1000, 20000))}`],
  [
    1,
    'syntax',
    (d) =>
      d.pick([
        '',
        '&',
        '&&&',
        '=',
        '==',
        '=all',
        'consistency',
        'consistency=',
        '?',
        'a=%ZZ',
        'consistency=all#x',
        'consistenc%79=all',
        'consistency=%E0%A4%A',
        '%00=1',
        'consistency=all;r=1',
      ]),
  ],
];

function queryCase(c: Context): Shaped {
  const { d } = c;
  const [, name, make] = d.weighted(QUERIES.map((q) => [q[0], q] as const));
  const method = d.weighted([
    [4, 'PUT'],
    [3, 'GET'],
    [2, 'DELETE'],
    [1, 'HEAD'],
  ]);
  const query = make(d);
  const r = baseRequest(c, method, `/kv/${c.key}q?${query}`, method === 'PUT' ? valueBody(d) : undefined);
  return whole(`query: ${name} (${method} ?${query.length > 40 ? `${query.slice(0, 40)}...` : query})`, r);
}

// ---- raw bytes --------------------------------------------------------------------------------------

/** Malformed HTTP as bytes: request lines and headers no client library would send. */
function rawCase(c: Context): Shaped {
  const { d } = c;
  const path = `/kv/${c.key}w`;
  const host = `Host: ${c.host}\r\n`;
  const raw = (what: string, text: string | Buffer, method = 'GET', target = path, complete = true): Shaped => ({
    what: `raw: ${what}`,
    method,
    target,
    parts: [{ bytes: typeof text === 'string' ? Buffer.from(text, 'latin1') : text }],
    complete,
  });
  return d.weighted<() => Shaped>([
    [3, () => raw('random bytes', d.bytes(d.int(1, 3000)), 'GET', '/', false)],
    [
      1,
      () =>
        raw(
          'random bytes after a request line',
          Buffer.concat([Buffer.from(`GET ${path} HTTP/1.1\r\n`), d.bytes(d.int(1, 500))]),
          'GET',
          path,
          false,
        ),
    ],
    [
      4,
      () =>
        raw(
          'broken request line',
          `${d.pick([
            `GET ${path}`,
            `GET  ${path} HTTP/1.1`,
            `GET ${path} HTTP/9.9`,
            `GET ${path} HTTP/2.0`,
            `GET ${path} http/1.1`,
            `GET ${path} HTTP/1.10`,
            `GET ${path} HTTP/01.1`,
            `GET ${path} HTTP/1.1 extra`,
            `GET\t${path}\tHTTP/1.1`,
            ` GET ${path} HTTP/1.1`,
            `GET ${path}  HTTP/1.1`,
            'GET HTTP/1.1',
            `HTTP/1.1 200 OK`,
            `GET ${path}\x00 HTTP/1.1`,
            `GET ${path} HTTP/1.1\r`,
            '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03',
            'PRI * HTTP/2.0\r\n\r\nSM',
          ])}\r\n${host}Connection: close\r\n\r\n`,
        ),
    ],
    [
      1,
      () =>
        raw(
          'bare LF line endings',
          d.pick([`GET ${path} HTTP/1.1\n${host.trim()}\nConnection: close\n\n`, `GET ${path} HTTP/1.1\r\n${host}Connection: close\n\r\n`]),
        ),
    ],
    [1, () => raw('HTTP/0.9 and 1.0', d.pick([`GET ${path}\r\n\r\n`, `GET ${path} HTTP/1.0\r\n\r\n`, `GET /health HTTP/1.0\r\n\r\n`]))],
    [
      4,
      () =>
        raw(
          'header injection',
          `GET ${path} HTTP/1.1\r\n${host}${d.pick([
            'Foo Bar: x\r\n',
            'X-A: a\rb\r\n',
            'X-A: a\nX-Injected: 1\r\n',
            ' folded: continuation\r\n',
            'X-A: a\r\n continued\r\n',
            'NoColon\r\n',
            ': empty name\r\n',
            'X-A: \x00\r\n',
            'X-\x7f: 1\r\n',
            'Content-Length: 5\r\nContent-Length: 6\r\n',
            'Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n',
            'X-A:a\r\n',
            'X-A :a\r\n',
            `X-Long-Name-${'n'.repeat(d.int(100, 20000))}: 1\r\n`,
          ])}Connection: close\r\n\r\n`,
        ),
    ],
    [
      1,
      () => {
        const injected = `GET ${path}\r\nX-Injected: 1 HTTP/1.1\r\n${host}Connection: close\r\n\r\n`;
        return raw('CRLF inside the request target', injected);
      },
    ],
    [
      2,
      () =>
        raw(
          'request smuggling',
          d.pick([
            `POST /health HTTP/1.1\r\n${host}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /metrics HTTP/1.1\r\n${host}\r\n\r\n`,
            `POST /health HTTP/1.1\r\n${host}Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n`,
            `GET /health HTTP/1.1\r\n${host}Content-Length: 27\r\n\r\nGET /cluster HTTP/1.1\r\nX: GET /metrics HTTP/1.1\r\n${host}Connection: close\r\n\r\n`,
            `GET /health HTTP/1.1\r\n${host}Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n`,
          ]),
          'POST',
          '/health',
        ),
    ],
    [
      2,
      () => {
        const n = d.int(2, 4);
        const requests = Array.from({ length: n }, (_, i) => {
          const close = i === n - 1 ? 'Connection: close\r\n' : '';
          return `GET ${d.pick(['/health', path, '/ring', '/nope'])} HTTP/1.1\r\n${host}${close}\r\n`;
        });
        return raw('pipelined requests', requests.join(''));
      },
    ],
    [
      2,
      () =>
        raw(
          'a PUT in odd framing',
          d.pick([
            `PUT ${path}x HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"value":1}`,
            `PUT ${path}x HTTP/1.1\r\n${host}Content-Type: application/json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{"value":1}GARBAGE`,
            `PUT ${path}x HTTP/1.1\r\n${host}Content-Type:application/json\r\nContent-Length:11\r\nConnection: close\r\n\r\n{"value":1}`,
          ]),
          'PUT',
          `${path}x`,
        ),
    ],
  ])();
}

// ---- slow clients -----------------------------------------------------------------------------------

/** A client that sends a request in pieces with pauses, and either finishes it or goes away part-way. */
function slowCase(c: Context): Shaped {
  const { d } = c;
  const r = d.chance(0.6) ? baseRequest(c, 'PUT', `/kv/${c.key}s`, valueBody(d)) : baseRequest(c, 'GET', `/kv/${c.key}s`);
  const bytes = encodeRequest(r);
  const cuts = [...new Set(Array.from({ length: d.int(1, 4) }, () => d.int(1, bytes.length - 1)))].sort((a, b) => a - b);
  const edges = [0, ...cuts, bytes.length];
  const pieces = edges.slice(1).map((end, i) => ({ bytes: bytes.subarray(edges[i] as number, end), delayMs: i === 0 ? 0 : d.int(5, 120) }));
  if (d.chance(0.5)) {
    return { what: `slow: ${pieces.length} pieces, finished`, method: r.method, target: r.target, parts: pieces, complete: true };
  }
  const kept = pieces.slice(0, d.int(1, pieces.length - 1));
  return {
    what: `slow: ${kept.length} of ${pieces.length} pieces, then gone`,
    method: r.method,
    target: r.target,
    parts: kept,
    complete: false,
    unfinished: true,
    hangUpAfterMs: d.int(10, 200),
  };
}

// ---- judging the replies ----------------------------------------------------------------------------

/** Statuses Node's HTTP parser answers by itself, before any route runs. */
const PARSER_STATUSES = new Set([400, 408, 413, 417, 431]);

export interface Judgement {
  /** One problem per reply that breaks a rule; empty when all is well. */
  violations: string[];
  /** Replies that Node's parser wrote itself, without a JSON body (by status). */
  parserAnswered: number[];
}

/** `{"error": {"code": string, "message": string, ...}}`. */
export function isJsonError(body: Buffer): boolean {
  try {
    const e = (JSON.parse(body.toString('utf8')) as { error?: { code?: unknown; message?: unknown } }).error;
    return typeof e?.code === 'string' && typeof e.message === 'string';
  } catch {
    return false;
  }
}

/**
 * The rules for what came back: no status of 500 or more except a 503 with a JSON error; every
 * 4xx with a JSON error (a HEAD reply has no body: its Content-Type must say JSON); a whole request
 * gets a reply. Node's own bodiless parser replies, and a CONNECT closed without a reply (Node
 * does that when nothing listens for CONNECT), are listed apart: `strictParser` makes them violations.
 * A request the node cut off while it was still being sent (`sentAll` false: it answered early,
 * a 413 say, and closed; the reset can take the reply with it) is not owed one.
 */
export function judgeReplies(c: HttpCase, replies: Reply[], sentAll: boolean, strictParser: boolean): Judgement {
  const violations: string[] = [];
  const parserAnswered: number[] = [];
  replies.forEach((reply, i) => {
    const head = i === 0 && c.method === 'HEAD';
    const json = head ? /application\/json/.test(reply.headers['content-type'] ?? '') : isJsonError(reply.body);
    const where = replies.length > 1 ? ` (reply ${i + 1} of ${replies.length})` : '';
    if (reply.status >= 500 && !(reply.status === 503 && json)) {
      violations.push(`status ${reply.status}${where}: ${bodyText(reply)}`);
    } else if (reply.status >= 400 && reply.status < 500 && !json) {
      const byParser = PARSER_STATUSES.has(reply.status) && reply.body.length === 0 && reply.headers['content-type'] === undefined;
      if (byParser) parserAnswered.push(reply.status);
      if (!byParser || strictParser) violations.push(`status ${reply.status} without a JSON error body${where}: ${bodyText(reply)}`);
    }
  });
  if (c.complete && sentAll && replies.length === 0) {
    if (c.method === 'CONNECT') parserAnswered.push(0);
    if (c.method !== 'CONNECT' || strictParser) violations.push('a whole request got no reply');
  }
  return { violations, parserAnswered };
}

function bodyText(reply: Reply): string {
  const text = reply.body.toString('utf8');
  return text === '' ? '(empty body)' : text.length > 300 ? `${text.slice(0, 300)}...` : text;
}
