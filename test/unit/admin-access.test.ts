// Who may use /admin/* (core/admin-access.ts): a bearer token, or loopback when that is asked for;
// 401 with a challenge when no token came, 403 when it is wrong or nothing could let it in.

import { adminAccess, isLoopback, parseAuthorization } from '../../src/core/admin-access';

describe('the admin access rule', () => {
  test('loopback is 127.0.0.0/8 and ::1, also IPv4-mapped; nothing else', () => {
    for (const a of ['127.0.0.1', '127.0.0.6', '127.255.3.9', '::1', '::ffff:127.0.0.6'])
      expect({ a, loop: isLoopback(a) }).toEqual({ a, loop: true });
    for (const a of [undefined, '', '10.0.0.7', '128.0.0.1', '::ffff:10.0.0.7', '::2', '127.evil.example', '1127.0.0.1', 'fe80::1'])
      expect({ a, loop: isLoopback(a) }).toEqual({ a, loop: false });
  });

  test('an Authorization header is a bearer token (scheme in any case), nothing, or something else', () => {
    expect(parseAuthorization(undefined)).toEqual({ kind: 'none' });
    expect(parseAuthorization('  ')).toEqual({ kind: 'none' });
    expect(parseAuthorization('Bearer abc-123')).toEqual({ kind: 'bearer', token: 'abc-123' });
    expect(parseAuthorization('bearer a.b~c+/=')).toEqual({ kind: 'bearer', token: 'a.b~c+/=' });
    for (const h of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer ', 'Bearer a b', 'Token abc', 'abc']) {
      expect({ h, c: parseAuthorization(h) }).toEqual({ h, c: { kind: 'not-bearer' } });
    }
  });

  const outside = '10.0.0.7';
  const sidecar = '127.0.0.6'; // Istio's inbound source address

  test('with a token configured: the right one is let in; none is 401 with a challenge; a wrong one is 403', () => {
    const policy = { tokens: true, fromLoopback: false };
    expect(adminAccess(policy, { remoteAddress: outside, credential: 'bearer', tokenMatches: true })).toEqual({
      allowed: true,
      via: 'token',
    });
    const none = adminAccess(policy, { remoteAddress: outside, credential: 'none', tokenMatches: false });
    expect(none).toMatchObject({ allowed: false, status: 401, code: 'unauthorized', challenge: true });
    expect(adminAccess(policy, { remoteAddress: outside, credential: 'not-bearer', tokenMatches: false })).toMatchObject({
      status: 401,
      challenge: true,
    });
    const wrong = adminAccess(policy, { remoteAddress: outside, credential: 'bearer', tokenMatches: false });
    expect(wrong).toMatchObject({ allowed: false, status: 403, code: 'forbidden', challenge: false });
    expect(!wrong.allowed && wrong.reason).toContain('QUORUMKV_ADMIN_TOKEN');
  });

  test('loopback is not trusted unless asked for: a sidecar-delivered request without a token is refused', () => {
    expect(
      adminAccess({ tokens: true, fromLoopback: false }, { remoteAddress: sidecar, credential: 'none', tokenMatches: false }),
    ).toMatchObject({
      allowed: false,
      status: 401,
    });
    expect(adminAccess({ tokens: true, fromLoopback: true }, { remoteAddress: sidecar, credential: 'none', tokenMatches: false })).toEqual({
      allowed: true,
      via: 'loopback',
    });
    // opted in, without a token: loopback only; anyone else is told which setting would let them in
    const fromOutside = adminAccess(
      { tokens: false, fromLoopback: true },
      { remoteAddress: outside, credential: 'bearer', tokenMatches: false },
    );
    expect(fromOutside).toMatchObject({ allowed: false, status: 403 });
    expect(!fromOutside.allowed && fromOutside.reason).toContain('--admin-token (QUORUMKV_ADMIN_TOKEN)');
  });

  test('with neither a token nor loopback trust, every request is refused with 403 naming both settings', () => {
    for (const remoteAddress of [outside, sidecar, '127.0.0.1']) {
      for (const credential of ['none', 'not-bearer', 'bearer'] as const) {
        const v = adminAccess({ tokens: false, fromLoopback: false }, { remoteAddress, credential, tokenMatches: false });
        expect(v).toMatchObject({ allowed: false, status: 403, code: 'forbidden', challenge: false });
        expect(!v.allowed && v.reason).toMatch(
          /disabled.*--admin-token \(QUORUMKV_ADMIN_TOKEN\).*--admin-from-loopback \(QUORUMKV_ADMIN_FROM_LOOPBACK=true\)/,
        );
      }
    }
  });
});
