import fc from 'fast-check';
import { ConfigError, envName, loadConfig, redacted, SETTINGS } from '../../src/config';
import { checkLimits, DEFAULTS, LIMITS, maxRecordBytes, maxRequestFrameBytes } from '../../src/core/defaults';

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('serve configuration', () => {
  test('TLS: off by default; each mode names the files it lacks; a file without a mode is refused', () => {
    expect(loadConfig({ nodeId: 'n1' }, {})).toMatchObject({ tls: 'off', tokensFile: undefined });
    expect(problems(() => loadConfig({ nodeId: 'n1', tls: 'all' }, {}))).toEqual([
      "--tls-cert (QUORUMKV_TLS_CERT): required with --tls all (this node's certificate)",
      '--tls-key (QUORUMKV_TLS_KEY): required with --tls all (its private key)',
      "--tls-ca (QUORUMKV_TLS_CA): required with --tls all (the cluster's CA, which signs every member's certificate)",
    ]);
    expect(problems(() => loadConfig({ nodeId: 'n1', tls: 'client', tlsCert: 'c.pem', tlsKey: 'k.pem' }, {}))).toEqual([]);
    expect(problems(() => loadConfig({ nodeId: 'n1', tlsCert: 'c.pem' }, {}))).toEqual([
      '--tls (QUORUMKV_TLS): is off, yet --tls-cert is set: say where TLS goes (client, internode or all), or drop the file settings',
    ]);
    expect(problems(() => loadConfig({ nodeId: 'n1', tls: 'yes' }, {}))[0]).toContain('must be one of off, client, internode, all');
  });

  test('defaults: N=3, majority quorums, 64 vnodes, 2 s deadline, 1 MiB values, data under ./data/<id>', () => {
    const c = loadConfig({ nodeId: 'n1' }, {});
    expect(c).toMatchObject({
      nodeId: 'n1',
      host: '127.0.0.1',
      port: 8080,
      advertiseAddress: '127.0.0.1:8080',
      dataDir: 'data/n1',
      seeds: [],
      replicationFactor: 3,
      readQuorum: 2,
      writeQuorum: 2,
      vnodes: 64,
      requestTimeoutMs: 2000,
      maxValueBytes: 1048576,
      logLevel: 'info',
    });
  });

  test('a flag wins over QUORUMKV_<FLAG>, which wins over the Kubernetes variables and the default', () => {
    const env = { QUORUMKV_NODE_ID: 'from-env', POD_NAME: 'quorumkv-2', QUORUMKV_PORT: '9000', REPLICATION_FACTOR: '5' };
    expect(loadConfig({ nodeId: 'from-flag' }, env).nodeId).toBe('from-flag');
    expect(loadConfig({}, env).nodeId).toBe('from-env');
    expect(loadConfig({}, { POD_NAME: 'quorumkv-2' }).nodeId).toBe('quorumkv-2');
    expect(loadConfig({}, env).port).toBe(9000);
    const c = loadConfig({}, env);
    expect([c.replicationFactor, c.readQuorum, c.writeQuorum]).toEqual([5, 3, 3]);
  });

  test('quorums follow the replication factor', () => {
    const c = loadConfig({ nodeId: 'a', replicationFactor: '5', readQuorum: '1' }, {});
    expect([c.readQuorum, c.writeQuorum]).toEqual([1, 3]);
  });

  test('a wildcard host advertises $POD_IP, and needs it or --advertise-address', () => {
    expect(loadConfig({ nodeId: 'a', host: '0.0.0.0' }, { POD_IP: '10.1.2.3' }).advertiseAddress).toBe('10.1.2.3:8080');
    expect(loadConfig({ nodeId: 'a', host: '::' }, { POD_IP: 'fd00::7' }).advertiseAddress).toBe('[fd00::7]:8080');
    expect(problems(() => loadConfig({ nodeId: 'a', host: '0.0.0.0' }, {}))).toEqual([
      '--advertise-address (QUORUMKV_ADVERTISE_ADDRESS): required when --host is a wildcard (0.0.0.0) and POD_IP is not set',
    ]);
  });

  test('seeds are a comma list of host:port', () => {
    expect(loadConfig({ nodeId: 'a', seeds: ' kv-0.kv:8080, 10.0.0.2:8080,,[::1]:7000' }, {}).seeds).toEqual([
      'kv-0.kv:8080',
      '10.0.0.2:8080',
      '[::1]:7000',
    ]);
    expect(problems(() => loadConfig({ nodeId: 'a', seeds: 'kv-0.kv' }, {}))[0]).toContain('must be host:port');
    expect(problems(() => loadConfig({ nodeId: 'a', seeds: 'kv-0:70000' }, {}))[0]).toContain('must be host:port');
  });

  test('every problem is reported at once, naming flag, variable and source', () => {
    const p = problems(() =>
      loadConfig({ nodeId: 'a', port: '0', vnodes: 'x' }, { QUORUMKV_LOG_LEVEL: 'loud', QUORUMKV_REQUEST_TIMEOUT_MS: '5' }),
    );
    expect(p).toEqual([
      '--port (QUORUMKV_PORT): from --port: must be an integer from 1 to 65535; got "0"',
      '--vnodes (QUORUMKV_VNODES): from --vnodes: must be an integer from 1 to 1024; got "x"',
      '--request-timeout-ms (QUORUMKV_REQUEST_TIMEOUT_MS): from QUORUMKV_REQUEST_TIMEOUT_MS: must be an integer from 50 to 600000; got "5"',
      '--log-level (QUORUMKV_LOG_LEVEL): from QUORUMKV_LOG_LEVEL: must be one of trace, debug, info, warn, error, fatal, silent; got "loud"',
    ]);
  });

  test('the cluster secret is never echoed in an error', () => {
    const p = problems(() => loadConfig({ nodeId: 'a', clusterSecret: '   ' }, {}));
    expect(p[0]).toContain('(hidden)');
  });

  test('the cluster secret and the admin token take current[,next]; the admin routes trust loopback only when asked', () => {
    const c = loadConfig({ nodeId: 'a', clusterSecret: 'tok-A,tok-B' }, { QUORUMKV_ADMIN_TOKEN: 'adm-1' });
    expect([c.clusterSecret, c.adminToken, c.adminFromLoopback]).toEqual([['tok-A', 'tok-B'], ['adm-1'], false]);
    const none = loadConfig({ nodeId: 'a' }, {});
    expect([none.clusterSecret, none.adminToken, none.adminFromLoopback]).toEqual([undefined, undefined, false]);
    expect(loadConfig({ nodeId: 'a' }, { QUORUMKV_ADMIN_FROM_LOOPBACK: 'true' }).adminFromLoopback).toBe(true);
  });

  test.each([
    ['tok-A,', 'token 2 of 2 is empty'],
    [',tok-A', 'token 1 of 2 is empty'],
    ['', 'the token is empty'],
    ['tok-A,,tok-B', 'token 2 of 3 is empty'],
    ['tok-A, tok-B', 'token 2 of 2 contains whitespace'],
    ['tok-A\n', 'the token contains whitespace'],
    ['tok-A,tok-A', 'lists the same token twice'],
    ['tok-A,tok-B,tok-C', 'holds 3 tokens; at most 2 (current[,next])'],
  ])('the token list %j is refused (%s), naming the setting and never the tokens', (raw, why) => {
    for (const [flag, variable, key] of [
      ['cluster-secret', 'QUORUMKV_CLUSTER_SECRET', 'clusterSecret'],
      ['admin-token', 'QUORUMKV_ADMIN_TOKEN', 'adminToken'],
    ] as const) {
      const fromFlag = problems(() => loadConfig({ nodeId: 'a', [key]: raw }, {}));
      expect(fromFlag).toHaveLength(1);
      const line = fromFlag[0] as string;
      expect(line.startsWith(`--${flag} (${variable}): from --${flag}: must be current[,next]: `)).toBe(true);
      expect(line).toContain(why);
      expect(line.endsWith('; got (hidden)')).toBe(true);
      const fromEnv = problems(() => loadConfig({ nodeId: 'a' }, { [variable]: raw }));
      expect(fromEnv[0]).toContain(`from ${variable}: `);
      for (const l of [...fromFlag, ...fromEnv]) expect(l).not.toMatch(/tok-[ABC]/);
    }
  });

  test('an admin token a bearer header cannot carry is refused at start, naming the setting and never the token', () => {
    const lines = problems(() => loadConfig({ nodeId: 'a', adminToken: 'ok-1,p@ss!word' }, {}));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^--admin-token \(QUORUMKV_ADMIN_TOKEN\): from --admin-token: must be current\[,next\] of bearer tokens/);
    expect(lines[0]).toContain('token 2 of 2 has another character');
    expect(lines[0]).not.toMatch(/p@ss|ok-1/);
    // the cluster secret is an HMAC key, never a header: any characters but whitespace and commas
    expect(loadConfig({ nodeId: 'a', clusterSecret: 'p@ss!word' }, {}).clusterSecret).toEqual(['p@ss!word']);
    expect(loadConfig({ nodeId: 'a', adminToken: 'aB3-._~+/x==' }, {}).adminToken).toEqual(['aB3-._~+/x==']);
  });

  test('the logged config hides every token of every secret list, and shows how many there are', () => {
    const c = loadConfig({ nodeId: 'a', clusterSecret: 'tok-A,tok-B', adminToken: 'adm-1' }, {});
    const shown = redacted(c);
    expect({ clusterSecret: shown.clusterSecret, adminToken: shown.adminToken }).toEqual({
      clusterSecret: ['(hidden)', '(hidden)'],
      adminToken: ['(hidden)'],
    });
    expect(JSON.stringify(shown)).not.toMatch(/tok-|adm-1/);
    expect(redacted(loadConfig({ nodeId: 'a' }, {})).clusterSecret).toBeUndefined();
  });

  test('bad node ids are refused', () => {
    expect(problems(() => loadConfig({ nodeId: 'has space' }, {}))[0]).toContain('--node-id');
    expect(problems(() => loadConfig({ nodeId: '-x' }, {}))[0]).toContain('--node-id');
  });

  test('every setting has a flag, an env name and a default description', () => {
    for (const s of SETTINGS) {
      expect(s.flag).toMatch(/^[a-z][a-z-]+$/);
      expect(envName(s.flag)).toMatch(/^QUORUMKV_[A-Z_]+$/);
      expect(s.defaultText.length).toBeGreaterThan(0);
    }
  });
});

describe('the limits, checked against each other when the config loads (core/defaults.ts)', () => {
  test('at every --max-value-bytes a node accepts, a full batch and the largest record fit in what a peer accepts', () => {
    fc.assert(
      fc.property(fc.integer({ min: LIMITS.minValueBytes, max: LIMITS.maxValueBytes }), (maxValueBytes) => {
        expect(checkLimits({ maxValueBytes, hintWindowMs: DEFAULTS.hintWindowMs, tombstoneGraceMs: DEFAULTS.tombstoneGraceMs })).toEqual(
          [],
        );
        const frame = maxRequestFrameBytes(maxValueBytes);
        expect(LIMITS.maxBatchBytes + LIMITS.internalMessageOverheadBytes).toBeLessThanOrEqual(frame);
        expect(maxRecordBytes(maxValueBytes)).toBeLessThanOrEqual(frame);
      }),
    );
    // the smallest and the largest load
    for (const v of [LIMITS.minValueBytes, LIMITS.maxValueBytes])
      expect(loadConfig({ nodeId: 'n1', maxValueBytes: String(v) }, {}).maxValueBytes).toBe(v);
  });

  test('a hint window not shorter than the tombstone grace is refused, naming the flag and why', () => {
    expect(problems(() => loadConfig({ nodeId: 'n1', hintWindowMs: '86400000', tombstoneGraceMs: '86400000' }, {}))).toEqual([
      '--hint-window-ms (QUORUMKV_HINT_WINDOW_MS): must be shorter than --tombstone-grace-ms (86400000): a hint older than the grace period could bring a purged delete back',
    ]);
  });

  test('the defaults of the settings are the table the simulator reads too', () => {
    const c = loadConfig({ nodeId: 'n1' }, {});
    for (const [key, value] of Object.entries(DEFAULTS)) expect({ key, value: c[key as keyof typeof c] }).toEqual({ key, value });
  });
});
