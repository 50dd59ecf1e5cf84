// A cluster with everything on, as the prod overlay runs it: client tokens with roles from a file,
// HTTPS on the API port, mutual TLS between members (certificates made here by openssl), the
// cluster token and an admin token. Roles are enforced and a refusal changes nothing; bad input
// is refused clearly and the node keeps serving; the tokens file and the certificates are
// reloaded without a restart; a peer with no certificate, another CA's or an expired one is
// refused and the log says why; and no token, key or certificate shows in any output.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { Agent, fetch } from 'undici';
import { cliPath, type LocalCluster, type LocalNode } from '../../scripts/lib/local-cluster';
import { type CertFiles, makeCa, makeCert, pemBodies } from '../../scripts/lib/pki';
import { cleanupClusters, FAST_ARGS, logsOf, startCluster } from '../helpers/cluster';
import { eventually } from '../helpers/eventually';

const run = promisify(execFile);

const tok = (what: string) => `${what}-${randomBytes(12).toString('hex')}`;
const READ = tok('rd');
const WRITE = tok('wr');
const ADMIN = tok('ad');
const ADMIN_ENV = tok('adenv');
const CLUSTER = tok('cs');
const NEW_READ = tok('rd2');

const NET = '127.31.1';
const HOSTS = [1, 2, 3].map((i) => `${NET}.${i}`);

let dir: string;
let pki: { ca: { cert: string; key: string }; node: CertFiles; other: CertFiles; expired: CertFiles };
let tokensFile: string;
let cluster: LocalCluster;
let agent: Agent;
/** Every reply body and CLI output of this file, for the leak check at the end. */
const outputs: string[] = [];

const tokensText = (extra = '') => `# roles\nread ${READ}\nwrite ${WRITE}\nadmin ${ADMIN}\n${extra}`;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'qkv-sec-'));
  const ca = makeCa(path.join(dir, 'pki'), 'cluster-ca');
  const otherCa = makeCa(path.join(dir, 'pki'), 'other-ca');
  pki = {
    ca,
    node: makeCert(path.join(dir, 'pki'), ca, 'member', { ips: HOSTS }),
    other: makeCert(path.join(dir, 'pki'), otherCa, 'stranger', { ips: [`${NET}.9`] }),
    expired: makeCert(path.join(dir, 'pki'), ca, 'expired', { ips: [`${NET}.9`], days: -1 }),
  };
  // the node reads its own copies: the reload test replaces them
  for (const f of ['member.crt', 'member.key']) copyFileSync(path.join(dir, 'pki', f), path.join(dir, f));
  tokensFile = path.join(dir, 'tokens');
  writeFileSync(tokensFile, tokensText());
  cluster = await startCluster(NET, {
    args: [...FAST_ARGS, '--log-level', 'info'],
    env: {
      QUORUMKV_TLS: 'all',
      QUORUMKV_TLS_CERT: path.join(dir, 'member.crt'),
      QUORUMKV_TLS_KEY: path.join(dir, 'member.key'),
      QUORUMKV_TLS_CA: ca.cert,
      QUORUMKV_TOKENS_FILE: tokensFile,
      QUORUMKV_ADMIN_TOKEN: ADMIN_ENV,
      QUORUMKV_ADMIN_FROM_LOOPBACK: 'false',
      QUORUMKV_CLUSTER_SECRET: CLUSTER,
    },
    clientToken: ADMIN,
  });
  agent = new Agent({ connect: { ca: readFileSync(ca.cert) } });
});

afterAll(async () => {
  await agent?.close();
  await cleanupClusters();
  rmSync(dir, { recursive: true, force: true });
});

const n1 = () => cluster.nodes[0] as LocalNode;

/** Test assertions read arbitrary JSON fields. */
// biome-ignore lint/suspicious/noExplicitAny: test assertions read arbitrary JSON fields
type Json = any;

async function call(
  node: LocalNode,
  method: string,
  p: string,
  token?: string,
  body?: unknown,
): Promise<{ status: number; body: Json; headers: Headers }> {
  const res = await fetch(`${node.url}${p}`, {
    method,
    dispatcher: agent,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  outputs.push(text);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: res.status, body: parsed, headers: res.headers as unknown as Headers };
}

/** What one raw connection gets back: TLS (through the CA) or plain TCP. */
function raw(host: string, port: number, bytes: Buffer | string, opts: { tls?: tls.ConnectionOptions } = {}): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = opts.tls
      ? tls.connect({ host, port, ...opts.tls }, () => socket.write(bytes))
      : require('node:net').connect({ host, port }, () => socket.write(bytes));
    const timer = setTimeout(() => socket.destroy(), 5_000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      outputs.push(text);
      resolve(text);
    });
  });
}

async function cli(args: string[], env: Record<string, string>): Promise<{ code: number; out: string }> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('QUORUMKV_'))) as Record<string, string>;
  try {
    const { stdout, stderr } = await run(process.execPath, [cliPath(), ...args], { env: { ...base, ...env }, timeout: 20_000 });
    outputs.push(stdout + stderr);
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    outputs.push(`${e.stdout}${e.stderr}`);
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout}${e.stderr}` };
  }
}

test('each route needs its role; a refusal is 401 or 403 JSON and changes nothing; health stays open', async () => {
  const none = await call(n1(), 'PUT', '/kv/sec-a', undefined, { value: 1 });
  expect(none.status).toBe(401);
  expect(none.headers.get('www-authenticate')).toBe('Bearer realm="quorumkv"');
  expect(none.body.error.message).toContain('write role');
  const reader = await call(n1(), 'PUT', '/kv/sec-a', READ, { value: 1 });
  expect([reader.status, reader.body.error.code, reader.body.error.message]).toEqual([
    403,
    'forbidden',
    "the token's role is read; PUT /kv/<key> needs the write role",
  ]);
  expect((await call(n1(), 'GET', '/kv/sec-a', READ)).status).toBe(404); // nothing was written
  expect((await call(n1(), 'PUT', '/kv/sec-a', WRITE, { value: 1 })).status).toBe(200);
  expect((await call(cluster.nodes[1] as LocalNode, 'GET', '/kv/sec-a', READ)).body.value).toBe(1);
  expect((await call(n1(), 'DELETE', '/kv/sec-a', READ)).status).toBe(403);
  expect((await call(n1(), 'GET', '/kv/sec-a', 'not-a-token-of-this-node')).status).toBe(401);
  expect((await call(n1(), 'GET', '/cluster')).status).toBe(401);
  expect((await call(n1(), 'GET', '/metrics')).status).toBe(401);
  expect((await call(n1(), 'GET', '/cluster', READ)).status).toBe(200);
  for (const p of ['/health', '/health/ready', '/health/startup'])
    expect({ p, s: (await call(n1(), 'GET', p)).status }).toEqual({ p, s: 200 });
  // admin: a write token is not enough; the file's admin token and --admin-token's both are
  expect((await call(n1(), 'POST', '/admin/drain', WRITE)).status).toBe(403);
  expect((await call(n1(), 'GET', '/admin/move', ADMIN)).status).toBe(200);
  expect((await call(n1(), 'GET', '/admin/move', ADMIN_ENV)).status).toBe(200);
  expect((await call(n1(), 'GET', '/health/ready')).body.draining).toBe(false);
});

test('the CLI sends QUORUMKV_TOKEN and checks the node with QUORUMKV_TLS_CA; the probe needs no token', async () => {
  const env = { QUORUMKV_URL: n1().url, QUORUMKV_TLS_CA: pki.ca.cert };
  const put = await cli(['put', 'sec-cli', '"v"'], { ...env, QUORUMKV_TOKEN: WRITE });
  expect(put).toMatchObject({ code: 0, out: expect.stringContaining('"successful_writes"') });
  const denied = await cli(['get', 'sec-cli'], env);
  expect(denied).toMatchObject({ code: 1, out: expect.stringContaining('needs a token with the read role') });
  const status = await cli(['status'], { ...env, QUORUMKV_TOKEN: READ });
  expect(status).toMatchObject({ code: 0, out: expect.stringContaining(`${NET}.3:7000`) });
  const untrusted = await cli(['get', 'sec-cli'], { QUORUMKV_URL: n1().url, QUORUMKV_TOKEN: READ });
  expect(untrusted.code).toBe(1);
  expect(untrusted.out).toMatch(/certificate/i);
  const probe = await run(process.execPath, [path.join(path.dirname(cliPath()), 'probe.js'), 'readiness'], {
    env: { ...process.env, ...env },
    timeout: 10_000,
  });
  expect(probe.stdout).toMatch(/^readiness: ready/);
});

test('bad input: TLS garbage, plain HTTP, a 1 MB token, a token with bad characters; the node keeps serving', async () => {
  const [host, port] = [HOSTS[0] as string, 7000];
  const caOpt = { ca: readFileSync(pki.ca.cert) };
  const garbage = await raw(host, port, randomBytes(300), { tls: caOpt });
  expect(garbage).toMatch(/^HTTP\/1\.1 400 .*"code":"bad_request"/s);
  const plain = await raw(host, port, `GET /kv/a HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${READ}\r\n\r\n`);
  expect(plain).toMatch(/^HTTP\/1\.1 400 .*this port speaks HTTPS \(--tls\); use https:\/\//s);
  const notTls = await raw(host, port, Buffer.from([0x16, 3, 1, 0, 5, 1, 2, 3, 4, 5, 0, 0, 0]));
  // a broken handshake: a TLS alert (record type 0x15), then closed
  expect(notTls === '' || notTls.charCodeAt(0) === 0x15).toBe(true);
  // a header over Node's 16 KiB limit: 431 JSON, read to its end first (else the reply is lost to a reset)
  const bigHeader = (n: number) => `GET /kv/a HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${'a'.repeat(n)}\r\n\r\n`;
  expect(await raw(host, port, bigHeader(64 * 1024), { tls: caOpt })).toMatch(/^HTTP\/1\.1 431 .*"code":"bad_request"/s);
  expect(await raw(host, port, bigHeader(1 << 20), { tls: caOpt })).toMatch(/^HTTP\/1\.1 431 .*"code":"bad_request"/s);
  expect(await raw(host, port, bigHeader(1 << 20))).toMatch(/^HTTP\/1\.1 400 .*speaks HTTPS/s);
  const long = await call(n1(), 'GET', '/kv/a', 'b'.repeat(4000));
  expect([long.status, long.body.error.message]).toEqual([401, expect.stringContaining('longer than')]);
  const bad = await fetch(`${n1().url}/kv/a`, { dispatcher: agent, headers: { authorization: 'Bearer tok{en}"' } });
  const badBody = (await bad.json()) as { error: { message: string } };
  outputs.push(JSON.stringify(badBody));
  expect([bad.status, badBody.error.message]).toEqual([401, expect.stringContaining('not a bearer token')]);
  expect((await call(n1(), 'PUT', '/kv/sec-after', WRITE, { value: 'still serving' })).status).toBe(200);
});

test('the tokens file is reloaded: a new token works, a broken file changes nothing, a removed token stops working', async () => {
  expect((await call(n1(), 'GET', '/cluster', NEW_READ)).status).toBe(401);
  const swap = (text: string) => {
    writeFileSync(`${tokensFile}.new`, text);
    renameSync(`${tokensFile}.new`, tokensFile); // as a Secret update swaps it
  };
  swap(tokensText(`read ${NEW_READ}\n`));
  await eventually(async () => expect((await call(n1(), 'GET', '/cluster', NEW_READ)).status).toBe(200));
  swap(`${tokensText()}reader ${NEW_READ}\n`);
  await eventually(() => expect(n1().logTail.join('\n')).toContain('tokens file not applied, the tokens in use stay'));
  expect((await call(n1(), 'GET', '/cluster', NEW_READ)).status).toBe(200);
  swap(tokensText());
  await eventually(async () => expect((await call(n1(), 'GET', '/cluster', NEW_READ)).status).toBe(401));
});

/** The subject CN of the certificate a fresh TLS connection to host:port is shown. */
function servedCn(host: string, port: number, client?: CertFiles): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect(
      {
        host,
        port,
        ca: readFileSync(pki.ca.cert),
        checkServerIdentity: () => undefined,
        ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}),
      },
      () => {
        resolve(String(s.getPeerCertificate().subject?.CN));
        s.destroy();
      },
    );
    s.on('error', reject);
  });
}

test('a renewed certificate is served by new connections on both ports without a restart', async () => {
  const host = HOSTS[0] as string;
  expect(await servedCn(host, 7000)).toBe('member');
  expect(await servedCn(host, 8000, pki.node)).toBe('member');
  const renewed = makeCert(path.join(dir, 'pki'), pki.ca, 'member-renewed', { ips: HOSTS });
  // the key first, then the certificate: in between, the pair does not match and is not applied
  copyFileSync(renewed.key, path.join(dir, 'member.key'));
  copyFileSync(renewed.cert, path.join(dir, 'member.crt'));
  await eventually(async () => {
    expect(await servedCn(host, 7000)).toBe('member-renewed');
    expect(await servedCn(host, 8000, renewed)).toBe('member-renewed');
  });
  // the members still talk (new connections use the new certificate): a quorum write
  expect((await call(n1(), 'PUT', '/kv/sec-renewed', WRITE, { value: 2 })).status).toBe(200);
});

test('a peer without a certificate, with another CA’s or with an expired one is refused before a message, and logged why', async () => {
  const host = HOSTS[1] as string;
  const hello = Buffer.concat([Buffer.from('QKVN'), Buffer.from([0, 0, 0, 5, 0x10, 0, 1, 0, 1])]);
  const attempts: Array<[CertFiles | undefined, string]> = [
    [undefined, 'it showed no certificate'],
    [pki.other, "its certificate is not signed by this cluster's CA"],
    [pki.expired, 'its certificate has expired'],
  ];
  for (const [cert, why] of attempts) {
    const got = await raw(host, 8000, hello, {
      tls: {
        ca: readFileSync(pki.ca.cert),
        checkServerIdentity: () => undefined,
        ...(cert ? { cert: readFileSync(cert.cert), key: readFileSync(cert.key) } : {}),
      },
    });
    expect({ why, got }).toEqual({ why, got: '' }); // no challenge: nothing it sent was read
    await eventually(() => expect((cluster.nodes[1] as LocalNode).logTail.join('\n')).toContain(`refused an internode connection: ${why}`));
  }
  // a whole member with another CA's certificate: neither side lets the other in, both say why
  const stranger = cluster.addNode(`${NET}.9`, dir);
  stranger.spec.env = {
    ...stranger.spec.env,
    QUORUMKV_TLS_CERT: pki.other.cert,
    QUORUMKV_TLS_KEY: pki.other.key,
    QUORUMKV_TLS_CA: pki.other.ca,
  };
  await stranger.start();
  await eventually(
    () =>
      expect(stranger.logTail.join('\n')).toContain(
        "refused its internode TLS connection: its certificate is not signed by this cluster's CA",
      ),
    {
      timeoutMs: 15_000,
    },
  );
  await stranger.kill('SIGKILL');
  cluster.forget(stranger);
  const members = await call(n1(), 'GET', '/cluster', READ);
  expect(members.body.members.map((m: { id: string }) => m.id)).toEqual(['n1', 'n2', 'n3']);
});

test('no token, key or certificate in any log, reply, /cluster, /metrics or CLI output', async () => {
  for (const p of ['/cluster', '/metrics', '/ring', '/peers', '/admin/move', '/admin/repair', '/nowhere'])
    await call(n1(), 'GET', p, ADMIN);
  await call(n1(), 'GET', '/kv/x', `${READ}x`);
  const logs = cluster.nodes.map((n) => n.logTail.join('\n')).join('\n');
  expect(logs).toContain('"tls":"all"'); // the config printout is in there
  const everything = [logs, ...outputs].join('\n');
  const secrets = {
    READ,
    WRITE,
    ADMIN,
    ADMIN_ENV,
    CLUSTER,
    NEW_READ,
    ...Object.fromEntries(
      pemBodies([pki.node.key, pki.node.cert, pki.other.key, pki.expired.key, pki.ca.key]).map((b, i) => [`pem${i}`, b.slice(0, 40)]),
    ),
  };
  const found = Object.entries(secrets)
    .filter(([, v]) => everything.includes(v))
    .map(([k]) => k);
  expect({ found, logs: found.length > 0 ? logsOf(cluster) : '' }).toEqual({ found: [], logs: '' });
  // and the refusals were counted, by status
  const metrics = await call(n1(), 'GET', '/metrics', READ);
  expect(String(metrics.body ?? outputs.at(-1))).toMatch(/quorumkv_client_refused_total\{status="401"\} [1-9]/);
});

test('a node with TLS on stops cleanly on SIGTERM, plain-HTTP callers and all', async () => {
  await raw(HOSTS[2] as string, 7000, 'GET / HTTP/1.1\r\n\r\n');
  expect(await (cluster.nodes[2] as LocalNode).stop()).toBe(0);
});
