// Client authentication (core/client-access.ts, api/tokens.ts): which route needs which role, the
// refusal for each way a credential can be wrong, the tokens file and its problems (named by line,
// never by token), and the registry that keeps only digests.

import { createHash } from 'node:crypto';
import { TokenRegistry } from '../../src/api/tokens';
import { clientAccess, MAX_TOKEN_CHARS, parseTokensFile, roleGrants, routeNeed } from '../../src/core/client-access';

describe('client access', () => {
  test('roles nest: admin can do what write can, write what read can; not the other way', () => {
    expect(roleGrants('admin', 'write')).toBe(true);
    expect(roleGrants('write', 'read')).toBe(true);
    expect(roleGrants('read', 'read')).toBe(true);
    expect(roleGrants('read', 'write')).toBe(false);
    expect(roleGrants('write', 'admin')).toBe(false);
  });

  test('routes: health is open, /kv reads need read and the rest write, /admin admin, everything else read', () => {
    const cases: Array<[string, string, string]> = [
      ['GET', '/health', 'open'],
      ['GET', '/health/ready', 'open'],
      ['GET', '/health/startup', 'open'],
      ['GET', '/health/other', 'read'],
      ['GET', '/kv/a', 'read'],
      ['HEAD', '/kv/a', 'read'],
      ['GET', '/KV/a', 'read'],
      ['PUT', '/kv/a', 'write'],
      ['DELETE', '/kv/a', 'write'],
      ['POST', '/kv/a', 'write'],
      ['POST', '/admin/drain', 'admin'],
      ['GET', '/Admin/move', 'admin'],
      ['GET', '/cluster', 'read'],
      ['GET', '/metrics', 'read'],
      ['GET', '/peers', 'read'],
      ['GET', '/', 'read'],
      ['GET', '/nowhere', 'read'],
    ];
    for (const [method, path, need] of cases) expect({ method, path, need: routeNeed(method, path) }).toEqual({ method, path, need });
  });

  test('no token and a malformed one are 401 with a challenge; an unknown one 401 invalid_token; a small role 403', () => {
    const none = clientAccess('read', 'none', undefined, 'GET /kv/<key>');
    expect(none).toMatchObject({ allowed: false, status: 401, code: 'unauthorized', challenge: 'Bearer realm="quorumkv"' });
    expect(!none.allowed && none.reason).toContain('read role');
    expect(clientAccess('read', 'not-bearer', undefined, 'x')).toMatchObject({
      status: 401,
      challenge: expect.stringContaining('invalid_request'),
    });
    expect(clientAccess('read', 'too-long', undefined, 'x')).toMatchObject({
      status: 401,
      challenge: expect.stringContaining('invalid_token'),
    });
    expect(clientAccess('read', 'bearer', undefined, 'x')).toMatchObject({
      status: 401,
      challenge: expect.stringContaining('invalid_token'),
    });
    const small = clientAccess('write', 'bearer', 'read', 'PUT /kv/<key>');
    expect(small).toMatchObject({ allowed: false, status: 403, code: 'forbidden' });
    expect(!small.allowed && small.reason).toBe("the token's role is read; PUT /kv/<key> needs the write role");
    expect(clientAccess('write', 'bearer', 'admin', 'x')).toEqual({ allowed: true });
  });

  test('a tokens file: roles and tokens or digests, comments; every problem by line, no token in any message', () => {
    const digest = createHash('sha256').update('hashed-token').digest('hex');
    const ok = parseTokensFile(`# readers\nread tok-r1\n\nwrite  tok-w1\r\nadmin sha256:${digest.toUpperCase()}\n`);
    expect(ok.problems).toEqual([]);
    expect(ok.entries).toEqual([
      { role: 'read', token: 'tok-r1' },
      { role: 'write', token: 'tok-w1' },
      { role: 'admin', sha256: digest },
    ]);
    const secret = 'SeCrEt-value';
    const bad = parseTokensFile(
      [`reader ${secret}`, `read ${secret} extra`, `read ${secret}!`, 'write sha256:abc', `read ${'a'.repeat(MAX_TOKEN_CHARS + 1)}`].join(
        '\n',
      ),
    );
    expect(bad.entries).toEqual([]);
    expect(bad.problems.map((p) => p.slice(0, 7))).toEqual(['line 1:', 'line 2:', 'line 3:', 'line 4:', 'line 5:']);
    for (const p of bad.problems) expect(p).not.toContain(secret);
  });

  test('the registry knows roles by digest only: file tokens, digests and --admin-token (as admin)', () => {
    const r = new TokenRegistry(['adm-1']);
    r.setFileEntries([
      { role: 'read', token: 'tok-r' },
      { role: 'write', sha256: createHash('sha256').update('tok-w').digest('hex') },
      { role: 'admin', token: 'tok-r' }, // the same token twice: the higher role wins
    ]);
    expect(r.roleOf('adm-1')).toBe('admin');
    expect(r.roleOf('tok-w')).toBe('write');
    expect(r.roleOf('tok-r')).toBe('admin');
    expect(r.roleOf('nope')).toBeUndefined();
    expect(r.counts()).toEqual({ read: 1, write: 1, admin: 2 });
    expect(JSON.stringify(r)).not.toMatch(/tok-r|tok-w|adm-1/);
    r.setFileEntries([]);
    expect(r.roleOf('tok-w')).toBeUndefined();
    expect(r.hasAdmin()).toBe(true);
  });
});
