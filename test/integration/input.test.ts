// Bad input gets its status and a JSON error, and changes nothing; members must prove the cluster
// token when one is set; the CLI and config validation behave as documented.

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { cliPath, type LocalCluster } from '../../scripts/lib/local-cluster';
import { cleanupClusters, startCluster } from '../helpers/cluster';
import { http, put, type Reply } from '../helpers/http';
import { replicaRecord } from '../helpers/peer';

const run = promisify(execFile);

/** Runs the quorumkv CLI; resolves with its exit code and output (never rejects on exit != 0). */
async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [cliPath(), ...args], { env: { ...process.env, ...env }, timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** A PUT sent byte for byte as given (no body at all when `body` is undefined: no Content-Length either). */
function rawPut(base: string, path: string, headers: Record<string, string>, body: Buffer | undefined): Promise<Reply> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request({ host: u.hostname, port: u.port, method: 'PUT', path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {}
        resolve({ status: res.statusCode ?? 0, body: parsed, text, elapsedMs: performance.now() - started, headers: new Headers() });
      });
    });
    req.on('error', reject);
    if (body === undefined) req.end();
    else req.end(body);
  });
}

async function keysOn(c: LocalCluster): Promise<number[]> {
  return Promise.all(
    c.nodes.map(async (n) => {
      const text = await fetch(`${n.url}/metrics`).then((r) => r.text());
      const m = /^quorumkv_keys (\d+)$/m.exec(text);
      if (!m) throw new Error(`no quorumkv_keys in /metrics of ${n.id}`);
      return Number(m[1]);
    }),
  );
}

describe('bad input', () => {
  let c: LocalCluster;
  beforeAll(async () => {
    c = await startCluster('127.22.1');
  });
  afterAll(cleanupClusters);

  const url = () => c.node('n1').url;
  const kv = (key: string, query = '') => `${url()}/kv/${encodeURIComponent(key)}${query}`;
  const json = { 'content-type': 'application/json' };

  const cases: Array<[string, () => Promise<{ status: number; body: { error?: { code?: string; message?: string } } }>, number, string]> = [
    ['an over-long key (1025 ASCII bytes)', () => http('PUT', kv('k'.repeat(1025)), { json: { value: 1 } }), 400, 'invalid_key'],
    ['an over-long key (1026 bytes of "€")', () => http('PUT', kv('€'.repeat(342)), { json: { value: 1 } }), 400, 'invalid_key'],
    ['a body that is not JSON', () => http('PUT', kv('a'), { body: '{"value": nope', headers: json }), 400, 'invalid_body'],
    ['a body without "value"', () => http('PUT', kv('a'), { json: { valeu: 1 } }), 400, 'invalid_body'],
    ['a body with an unknown field', () => http('PUT', kv('a'), { json: { value: 1, extra: true } }), 400, 'invalid_body'],
    ['a body that is a bare JSON string', () => http('PUT', kv('a'), { body: '"v"', headers: json }), 400, 'invalid_body'],
    ['a value over the limit (1 MiB)', () => http('PUT', kv('a'), { json: { value: 'x'.repeat(1024 * 1024) } }), 413, 'value_too_large'],
    [
      'a body far over the limit',
      () => http('PUT', kv('a'), { body: `{"value":"${'x'.repeat(2 * 1024 * 1024)}"}`, headers: json }),
      413,
      'value_too_large',
    ],
    [
      'a wrong content type',
      () => http('PUT', kv('a'), { body: '{"value":1}', headers: { 'content-type': 'text/plain' } }),
      415,
      'unsupported_media_type',
    ],
    ['no content type', () => http('PUT', kv('a'), { body: '{"value":1}' }), 415, 'unsupported_media_type'],
    ['consistency=bogus on a PUT', () => http('PUT', kv('a', '?consistency=bogus'), { json: { value: 1 } }), 400, 'invalid_parameter'],
    ['consistency=bogus on a GET', () => http('GET', kv('a', '?consistency=bogus')), 400, 'invalid_parameter'],
    ['r=5 when N=3', () => http('GET', kv('a', '?r=5')), 400, 'invalid_parameter'],
    ['w=0', () => http('PUT', kv('a', '?w=0'), { json: { value: 1 } }), 400, 'invalid_parameter'],
    ['r on a write', () => http('PUT', kv('a', '?r=2'), { json: { value: 1 } }), 400, 'invalid_parameter'],
    ['consistency and w together', () => http('PUT', kv('a', '?consistency=one&w=1'), { json: { value: 1 } }), 400, 'invalid_parameter'],
    ['an unknown query parameter', () => http('PUT', kv('a', '?consistancy=all'), { json: { value: 1 } }), 400, 'invalid_parameter'],
    ['an empty key', () => http('PUT', `${url()}/kv/`, { json: { value: 1 } }), 400, 'invalid_key'],
    ['broken percent-encoding in the key', () => http('PUT', `${url()}/kv/%E0%A4%A`, { json: { value: 1 } }), 400, 'invalid_key'],
    ['a POST to a key', () => http('POST', kv('a'), { json: { value: 1 } }), 405, 'method_not_allowed'],
    ['a DELETE with r=', () => http('DELETE', kv('a', '?r=1')), 400, 'invalid_parameter'],
    [
      'a value nested 4,200 deep',
      () => http('PUT', kv('a'), { body: `{"value":${'['.repeat(4200)}${']'.repeat(4200)}}`, headers: json }),
      400,
      'invalid_body',
    ],
    [
      'a number that overflows a double (1e309)',
      () => http('PUT', kv('a'), { body: '{"value":1e309}', headers: json }),
      400,
      'invalid_body',
    ],
    [
      'a number that underflows to 0 (1e-400)',
      () => http('PUT', kv('a'), { body: '{"value":[1e-400]}', headers: json }),
      400,
      'invalid_body',
    ],
    ['a 5,000-digit integer', () => http('PUT', kv('a'), { body: `{"value":${'7'.repeat(5000)}}`, headers: json }), 400, 'invalid_body'],
    [
      'a gzip body that does not decompress',
      () => rawPut(url(), '/kv/a', { ...json, 'content-encoding': 'gzip' }, Buffer.from('not gzip at all')),
      400,
      'invalid_body',
    ],
    [
      'a truncated gzip body',
      () => rawPut(url(), '/kv/a', { ...json, 'content-encoding': 'gzip' }, gzipSync('{"value":1}').subarray(0, 12)),
      400,
      'invalid_body',
    ],
    ['a PUT with no body', () => rawPut(url(), '/kv/a', json, undefined), 400, 'invalid_body'],
  ];

  test.each(cases)('%s gets a JSON error and stores nothing', async (_name, send, status, code) => {
    const res = await send();
    expect({ status: res.status, code: res.body?.error?.code }).toEqual({ status, code });
    expect(typeof res.body.error?.message).toBe('string');
    expect(await keysOn(c)).toEqual([0, 0, 0]);
  });

  test('requests that the HTTP parser of Node refuses get the same JSON error body', async () => {
    const u = new URL(url());
    const raw = (text: string) =>
      new Promise<{ status: number; body: { error?: { code?: string; message?: string } } }>((resolve, reject) => {
        const s = connect(Number(u.port), u.hostname, () => s.write(text));
        let out = '';
        s.on('data', (d: Buffer) => {
          out += d.toString('utf8');
        });
        s.on('close', () =>
          resolve({ status: Number(out.split(' ')[1]), body: JSON.parse(out.slice(out.indexOf('\r\n\r\n') + 4) || 'null') }),
        );
        s.on('error', reject);
      });
    const cases: Array<[string, string, number]> = [
      ['a request line that is not HTTP', 'GARBAGE\r\n\r\n', 400],
      ['an HTTP/1.1 request without Host', 'GET /health HTTP/1.1\r\nConnection: close\r\n\r\n', 400],
      ['CONNECT', 'CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n', 405],
      ['an Upgrade', 'GET /kv/a HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n', 400],
      [
        'a DELETE whose chunked body does not parse (and so is not acted on)',
        'DELETE /kv/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n',
        400,
      ],
      [
        'an admin body that does not decompress',
        'POST /admin/repair HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 8\r\nConnection: close\r\n\r\nnot gzip',
        400,
      ],
      ['headers over 16 KiB', `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
      ['an Expect header other than 100-continue', 'GET /health HTTP/1.1\r\nHost: x\r\nExpect: garbage\r\nConnection: close\r\n\r\n', 417],
      [
        'Content-Length and chunked together',
        'PUT /kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
        400,
      ],
    ];
    for (const [name, text, status] of cases) {
      const r = await raw(text);
      expect({ name, status: r.status, code: r.body?.error?.code, hasMessage: typeof r.body?.error?.message }).toEqual({
        name,
        status,
        code: status === 400 && name.startsWith('an admin') ? 'invalid_body' : 'bad_request',
        hasMessage: 'string',
      });
    }
    expect(await keysOn(c)).toEqual([0, 0, 0]);
    // garbage after a whole request: that request gets its own reply, then the connection closes
    const whole = await raw(
      'PUT /kv/whole HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"value":1}GARBAGE',
    );
    expect({ status: whole.status, value: (whole.body as { value?: unknown })?.value }).toEqual({ status: 200, value: 1 });
    expect((await http('GET', kv('whole', '?consistency=all'))).body.value).toBe(1);
    await http('DELETE', kv('whole', '?consistency=all'));
  });

  test('a 405 says which methods are allowed', async () => {
    const res = await http('PATCH', kv('a'), { json: { value: 1 } });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, PUT, DELETE');
  });

  test("an unknown route is a JSON 404 of its own code, not the missing key's", async () => {
    const res = await http('GET', `${url()}/nope`);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('no_such_route');
  });

  test('each refusal names the real problem', async () => {
    const refusals: Array<[string, Promise<Reply>, number, string, RegExp]> = [
      [
        'a bare JSON string',
        http('PUT', kv('a'), { body: '"v1"', headers: json }),
        400,
        'invalid_body',
        /valid JSON, but a string, not an object.*\{"value": "v1"\}/,
      ],
      [
        'a bare JSON number',
        http('PUT', kv('a'), { body: '42', headers: json }),
        400,
        'invalid_body',
        /valid JSON, but a number, not an object/,
      ],
      ['text that is not JSON', http('PUT', kv('a'), { body: 'v1', headers: json }), 400, 'invalid_body', /not valid JSON/],
      ['JSON content type, no body', rawPut(url(), '/kv/a', json, undefined), 400, 'invalid_body', /body is empty/],
      ['JSON content type, an empty body', rawPut(url(), '/kv/a', json, Buffer.alloc(0)), 400, 'invalid_body', /body is empty/],
      ['no content type and no body', rawPut(url(), '/kv/a', {}, undefined), 400, 'invalid_body', /body is empty/],
      ['a path below a key', http('PUT', `${url()}/kv/a/b`, { json: { value: 1 } }), 404, 'no_such_route', /\/kv\/<key>.*%2F/],
      // an admin route, read by express: the same words for the same mistake
      [
        'an admin body that is a bare string',
        http('POST', `${url()}/admin/removenode`, { body: '"n2"', headers: json }),
        400,
        'invalid_body',
        /valid JSON, but a string, not an object/,
      ],
    ];
    for (const [name, pending, status, code, message] of refusals) {
      const r = await pending;
      expect({
        name,
        status: r.status,
        code: r.body?.error?.code,
        message: message.test(r.body?.error?.message) ? 'names it' : r.body?.error?.message,
      }).toEqual({
        name,
        status,
        code,
        message: 'names it',
      });
    }
    // "application/json;" (an empty parameter) is JSON, as browsers and express take it
    const w = await rawPut(url(), '/kv/semi', { 'content-type': 'application/json;' }, Buffer.from('{"value":1}'));
    expect(w.status).toBe(200);
    await http('DELETE', kv('semi', '?consistency=all'));
  });

  test('every JSON reply ends with a newline, errors included, on the /kv routes and the others', async () => {
    const replies = await Promise.all([
      put(url(), 'nl', 1),
      http('GET', kv('nl')),
      http('GET', kv('missing-nl')),
      http('PUT', kv('a'), { body: '"v1"', headers: json }),
      http('GET', `${url()}/health`),
      http('GET', `${url()}/cluster`),
      http('GET', `${url()}/nope`),
      http('POST', `${url()}/admin/removenode`, { body: '{}', headers: json }),
    ]);
    expect(replies.map((r) => ({ json: r.body !== undefined, newline: r.text.endsWith('}\n') || r.text.endsWith(']\n') }))).toEqual(
      replies.map(() => ({ json: true, newline: true })),
    );
    await http('DELETE', kv('nl', '?consistency=all'));
  });

  test('a key of exactly 1024 bytes, and any JSON value type, are accepted', async () => {
    const key = `${'€'.repeat(341)}k`; // 341 * 3 + 1 = 1024 bytes
    for (const value of [null, false, 0, -1.5, '', 'ü', [], [1, [2]], { a: { b: null } }]) {
      const w = await put(url(), key, value);
      expect({ value, status: w.status }).toEqual({ value, status: 200 });
      const r = await http('GET', kv(key));
      expect(r.body.value).toEqual(value);
    }
  });
});

describe('cluster secret', () => {
  afterEach(cleanupClusters);

  test('members prove the cluster token to each other: a peer without it is refused; a cluster sharing it serves quorum writes', async () => {
    const c = await startCluster('127.22.2', { env: { QUORUMKV_CLUSTER_SECRET: 's3cret-token' } });
    const n1 = c.node('n1');
    const w = await put(n1.url, 'guarded', 1, '?consistency=all');
    expect(w.status).toBe(200);
    expect(w.body.successful_writes).toBe(3);

    await expect(replicaRecord(n1.address, 'guarded')).rejects.toThrow(/token/);
    await expect(replicaRecord(n1.address, 'guarded', 's3cret-tokeN')).rejects.toThrow(/token/);
    expect((await replicaRecord(n1.address, 'guarded', 's3cret-token'))?.value).toBe(1);
    // node-to-node calls are not HTTP routes of the API port
    const viaHttp = await http('POST', `${n1.url}/internal/read`, { json: { type: 'read', key: 'guarded' } });
    expect({ status: viaHttp.status, code: viaHttp.body.error.code }).toEqual({ status: 404, code: 'no_such_route' });
  });
});

describe('the quorumkv CLI', () => {
  afterEach(cleanupClusters);

  test('put, get and delete talk to a node, print its JSON and exit 0, or 1 for a missing key', async () => {
    const c = await startCluster('127.22.3');
    const url = c.node('n2').url;

    const p = await cli(['put', 'cfg', '{"replicas": 3}', '--url', url, '--consistency', 'all']);
    expect(p.code).toBe(0);
    expect(JSON.parse(p.stdout)).toMatchObject({ key: 'cfg', value: { replicas: 3 }, successful_writes: 3 });

    const s = await cli(['put', 'name', 'plain text', '--url', url]);
    expect(JSON.parse(s.stdout).value).toBe('plain text');
    const forced = await cli(['put', 'num', '42', '--string', '--url', url]);
    expect(JSON.parse(forced.stdout).value).toBe('42');

    const g = await cli(['get', 'cfg', '--url', url, '--r', '3']);
    expect(g.code).toBe(0);
    expect(JSON.parse(g.stdout)).toMatchObject({ value: { replicas: 3 }, replicas_responded: 3 });

    const d = await cli(['delete', 'cfg'], { QUORUMKV_URL: url });
    expect(d.code).toBe(0);
    expect(JSON.parse(d.stdout)).toMatchObject({ deleted: true });

    const gone = await cli(['get', 'cfg', '--url', url]);
    expect(gone.code).toBe(1);
    expect(JSON.parse(gone.stderr).error.code).toBe('not_found');
  });

  test('a node that cannot be reached is a clear error and exit 1', async () => {
    const r = await cli(['get', 'x', '--url', 'http://127.22.4.1:7000']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot reach http://127.22.4.1:7000');
  });
});

describe('serve configuration', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'qkv-cfg-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('bad settings stop the process with a message naming each flag and its variable', async () => {
    const r = await cli(['serve', '--data-dir', dir, '--replication-factor', '0', '--seeds', 'not-an-address', '--port', '7001'], {
      QUORUMKV_VNODES: 'many',
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      '--replication-factor (QUORUMKV_REPLICATION_FACTOR): from --replication-factor: must be an integer from 1 to 15; got "0"',
    );
    expect(r.stderr).toContain('--seeds (QUORUMKV_SEEDS)');
    expect(r.stderr).toContain('--vnodes (QUORUMKV_VNODES): from QUORUMKV_VNODES: must be an integer from 1 to 1024; got "many"');
  });

  test('a quorum larger than the replication factor is refused', async () => {
    const r = await cli(['serve', '--data-dir', dir, '--replication-factor', '3', '--write-quorum', '4']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--write-quorum (QUORUMKV_WRITE_QUORUM): must not exceed --replication-factor (3); got 4');
  });

  test('a data directory written by another node id is refused, naming the id it belongs to', async () => {
    const c = await startCluster('127.22.5', { nodes: 1 });
    const owner = c.node('n1');
    await owner.stop();
    const r = await cli(['serve', '--node-id', 'someone-else', '--host', '127.22.5.1', '--port', '7000', '--data-dir', owner.spec.dataDir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('belongs to node "n1"');
    await cleanupClusters();
  });
});
