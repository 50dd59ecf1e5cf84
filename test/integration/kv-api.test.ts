// The /kv API's replies, byte for byte: a corpus of requests (valid, and bad in every way a client
// can get them wrong) whose raw status, headers and body must stay as recorded in
// kv-api.golden.json. Only what changes from run to run is masked (versions, TTL timestamps).
// Regenerate deliberately with UPDATE_GOLDEN=1 and review the diff.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { LocalCluster } from '../../scripts/lib/local-cluster';
import { cleanupClusters, startCluster } from '../helpers/cluster';

interface Case {
  name: string;
  method: string;
  /** Raw request target, sent as is (no normalization of its percent-encoding). */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

interface Recorded {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const JSON_TYPE = { 'content-type': 'application/json' };
const put = (name: string, p: string, value: unknown, headers: Record<string, string> = JSON_TYPE): Case => ({
  name,
  method: 'PUT',
  path: p,
  headers,
  body: JSON.stringify({ value }),
});

const CASES: Case[] = [
  put('a put', '/kv/g1', 'v1'),
  { name: 'a read', method: 'GET', path: '/kv/g1' },
  { name: 'a read at consistency=all', method: 'GET', path: '/kv/g1?consistency=all' },
  { name: 'a read at r=1', method: 'GET', path: '/kv/g1?r=1' },
  { name: 'a read at r=3', method: 'GET', path: '/kv/g1?r=3' },
  { name: 'a head', method: 'HEAD', path: '/kv/g1' },
  put('a put of nested JSON at w=3', '/kv/g2?w=3', { a: [1, 2.5, { b: null }], s: 'é"\\\n', t: true }),
  { name: 'its read', method: 'GET', path: '/kv/g2' },
  { name: 'a read with a body, which is ignored', method: 'GET', path: '/kv/g2', headers: JSON_TYPE, body: '{"value":1}' },
  put('a put at consistency=one', '/kv/g3?consistency=one', 42),
  put('a put with a ttl', '/kv/g4?ttl=100', 'short-lived'),
  { name: 'a read of a value with a ttl', method: 'GET', path: '/kv/g4' },
  { name: 'a delete', method: 'DELETE', path: '/kv/g1' },
  { name: 'a read of a deleted key', method: 'GET', path: '/kv/g1' },
  { name: 'a delete at w=3', method: 'DELETE', path: '/kv/g3?w=3' },
  { name: 'a read of a missing key', method: 'GET', path: '/kv/missing' },
  { name: 'a head of a missing key', method: 'HEAD', path: '/kv/missing' },
  put('a put with charset=utf-8', '/kv/g5', 'ü', { 'content-type': 'application/json; charset=utf-8' }),
  put('a content type with an empty parameter', '/kv/g6', 'semi', { 'content-type': 'application/json;' }),
  put('a key with an encoded slash', '/kv/a%2Fb', 1),
  { name: 'its read', method: 'GET', path: '/kv/a%2Fb' },
  put('a key in percent-encoded UTF-8', '/kv/%E2%82%AC%20x', 'euro'),
  { name: 'its read', method: 'GET', path: '/kv/%E2%82%AC%20x' },
  put('a key with characters a path allows', "/kv/user:42@x!$&'()*+,;=-._~", null),
  put('a key of exactly 1024 bytes', `/kv/${'k'.repeat(1024)}`, []),
  {
    name: 'a gzip-encoded body',
    method: 'PUT',
    path: '/kv/gz',
    headers: { ...JSON_TYPE, 'content-encoding': 'gzip' },
    body: gzipSync('{"value":"zipped"}'),
  },
  {
    name: 'a chunked body',
    method: 'PUT',
    path: '/kv/chunked',
    headers: { ...JSON_TYPE, 'transfer-encoding': 'chunked' },
    body: '{"value":7}',
  },
  // bad input
  put('an over-long key (1025 bytes)', `/kv/${'k'.repeat(1025)}`, 1),
  put('an empty key', '/kv/', 1),
  { name: 'an empty key, GET', method: 'GET', path: '/kv/' },
  { name: 'no key at all', method: 'GET', path: '/kv' },
  put('broken percent-encoding', '/kv/%E0%A4%A', 1),
  put('a percent-encoded lone surrogate', '/kv/%ED%A0%80', 1),
  { name: 'a body that is not JSON', method: 'PUT', path: '/kv/a', headers: JSON_TYPE, body: '{"value": nope' },
  { name: 'a body without value', method: 'PUT', path: '/kv/a', headers: JSON_TYPE, body: '{"valeu":1}' },
  { name: 'a body with an unknown field', method: 'PUT', path: '/kv/a', headers: JSON_TYPE, body: '{"value":1,"extra":true}' },
  { name: 'a body that is an array', method: 'PUT', path: '/kv/a', headers: JSON_TYPE, body: '[1]' },
  { name: 'a body that is null', method: 'PUT', path: '/kv/a', headers: JSON_TYPE, body: 'null' },
  { name: 'a body that is a bare string', method: 'PUT', path: '/kv/a', headers: JSON_TYPE, body: '"v1"' },
  { name: 'a body that is a bare number', method: 'PUT', path: '/kv/a', headers: JSON_TYPE, body: '42' },
  { name: 'an empty body', method: 'PUT', path: '/kv/a', headers: { ...JSON_TYPE, 'content-length': '0' }, body: '' },
  { name: 'no body', method: 'PUT', path: '/kv/a', headers: JSON_TYPE },
  { name: 'no body and no content type', method: 'PUT', path: '/kv/a' },
  put('a value over the limit', '/kv/a', 'x'.repeat(1024 * 1024)),
  {
    name: 'a body far over the limit',
    method: 'PUT',
    path: '/kv/a',
    headers: JSON_TYPE,
    body: `{"value":"${'x'.repeat(2 * 1024 * 1024)}"}`,
  },
  { name: 'no content type', method: 'PUT', path: '/kv/a', body: '{"value":1}' },
  put('a text/plain content type', '/kv/a', 1, { 'content-type': 'text/plain' }),
  put('a +json content type', '/kv/a', 1, { 'content-type': 'application/vnd.api+json' }),
  put('a latin1 charset', '/kv/a', 1, { 'content-type': 'application/json; charset=latin1' }),
  put('consistency=bogus on a put', '/kv/a?consistency=bogus', 1),
  { name: 'consistency=bogus on a read', method: 'GET', path: '/kv/a?consistency=bogus' },
  { name: 'an empty consistency', method: 'GET', path: '/kv/a?consistency=' },
  { name: 'r=5 when N=3', method: 'GET', path: '/kv/a?r=5' },
  { name: 'r=abc', method: 'GET', path: '/kv/a?r=abc' },
  put('w=0', '/kv/a?w=0', 1),
  put('r on a write', '/kv/a?r=2', 1),
  put('consistency and w together', '/kv/a?consistency=one&w=1', 1),
  put('an unknown query parameter', '/kv/a?consistancy=all', 1),
  { name: 'a parameter given twice', method: 'GET', path: '/kv/a?consistency=one&consistency=all' },
  { name: 'w on a read', method: 'GET', path: '/kv/a?w=1' },
  { name: 'ttl on a read', method: 'GET', path: '/kv/a?ttl=5' },
  { name: 'r on a delete', method: 'DELETE', path: '/kv/a?r=1' },
  put('ttl=0', '/kv/a?ttl=0', 1),
  put('ttl=abc', '/kv/a?ttl=abc', 1),
  put('a ttl over ten years', '/kv/a?ttl=999999999', 1),
  { name: 'a POST to a key', method: 'POST', path: '/kv/a', headers: JSON_TYPE, body: '{"value":1}' },
  { name: 'a PATCH to a key', method: 'PATCH', path: '/kv/a', headers: JSON_TYPE, body: '{"value":1}' },
  { name: 'an OPTIONS to a key', method: 'OPTIONS', path: '/kv/a' },
  put('a path below a key', '/kv/a/b', 1),
  { name: 'a path below a key, GET', method: 'GET', path: '/kv/a/b' },
  { name: 'an unknown route', method: 'GET', path: '/nope' },
];

/** Masks what differs between runs: versions, and instants derived from the clock. */
function masked(text: string): string {
  return text
    .replace(/"version":"[0-9]+\.[0-9]+@n[0-9]+"/g, '"version":"<version>"')
    .replace(/"(expires_at|expired_at)":"[0-9T:.Z-]+"/g, '"$1":"<instant>"');
}

/** The headers a client can see that the API controls (Date, Keep-Alive and Connection are Node's). */
const KEPT_HEADERS = ['content-type', 'content-length', 'allow', 'etag', 'x-powered-by', 'content-encoding', 'vary', 'cache-control'];

/**
 * `split`: the head is sent first and the body ~20 ms later, so the node reads them apart (a slow
 * client, a body that fills several reads); otherwise both leave in one write, as curl sends a
 * small request. The node takes a body that came with its head from the request's buffer and
 * streams one that did not: the replies must not tell them apart.
 */
function send(base: URL, c: Case, split = false): Promise<Recorded> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: base.hostname, port: base.port, method: c.method, path: c.path, headers: c.headers ?? {}, timeout: 10_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const body = masked(Buffer.concat(chunks).toString('utf8'));
          const headers: Record<string, string> = {};
          for (const h of KEPT_HEADERS) {
            const v = res.headers[h];
            if (v !== undefined) headers[h] = h === 'content-length' ? '<length>' : String(v);
          }
          resolve({ status: res.statusCode ?? 0, headers, body });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${c.name}: no reply within 10 s`)));
    req.on('error', reject);
    if (c.body === undefined) req.end();
    else if (!split) req.end(c.body);
    else {
      const body = c.body;
      // without a length, node's client would switch to chunked encoding: the request would change
      if (!('transfer-encoding' in (c.headers ?? {})) && !('content-length' in (c.headers ?? {})))
        req.setHeader('content-length', Buffer.byteLength(body));
      req.flushHeaders();
      setTimeout(() => req.end(body), 20);
    }
  });
}

const GOLDEN = path.join(__dirname, 'kv-api.golden.json');

describe('the /kv API', () => {
  let c: LocalCluster;
  beforeAll(async () => {
    c = await startCluster('127.22.7');
  });
  afterAll(cleanupClusters);

  test('answers every request of the corpus exactly as recorded', async () => {
    const base = new URL(c.node('n1').url);
    const got: Array<{ name: string; request: string } & Recorded> = [];
    for (const k of CASES) {
      const r = await send(base, k);
      got.push({ name: k.name, request: `${k.method} ${k.path.length > 80 ? `${k.path.slice(0, 80)}...` : k.path}`, ...r });
    }
    if (process.env.UPDATE_GOLDEN === '1') writeFileSync(GOLDEN, `${JSON.stringify(got, null, 1)}\n`);
    if (!existsSync(GOLDEN)) throw new Error(`${GOLDEN} is missing: record it with UPDATE_GOLDEN=1 and review it`);
    const want = JSON.parse(readFileSync(GOLDEN, 'utf8')) as typeof got;
    expect(got).toEqual(want);
  });

  test('answers the same when a body arrives after its head', async () => {
    const base = new URL(c.node('n1').url);
    const golden = JSON.parse(readFileSync(GOLDEN, 'utf8')) as Recorded[];
    let compared = 0;
    for (const [i, k] of CASES.entries()) {
      if (k.body === undefined) continue;
      const r = await send(base, k, true);
      const { status, headers, body } = golden[i] as Recorded;
      expect({ name: k.name, ...r }).toEqual({ name: k.name, status, headers, body });
      compared++;
    }
    expect(compared).toBeGreaterThan(40);
  });
});
