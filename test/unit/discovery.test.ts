import {
  createResolver,
  DnsDiscovery,
  JoinDiscovery,
  parseJoinUrl,
  type Resolver,
  StatefulSetDiscovery,
  StaticDiscovery,
} from '../../src/discovery';
import { clusterDomainFromResolvConf, DEFAULT_CLUSTER_DOMAIN, systemClusterDomain } from '../../src/discovery/cluster-domain';

/** An error shaped like node:dns's (code and message). */
function dnsError(code: string, syscall: string, name: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${syscall} ${code} ${name}`), { code, syscall, hostname: name });
}

/**
 * Answers from tables; any other name is ENOTFOUND, as a real server says, and a name with AAAA
 * records only is ENODATA for A. Records every query.
 */
function fakeResolver(
  a: Record<string, string[] | Error>,
  srv: Record<string, Array<{ name: string; port: number; priority?: number; weight?: number }>> = {},
  aaaa: Record<string, string[]> = {},
): Resolver & { queries: string[] } {
  const queries: string[] = [];
  return {
    queries,
    async resolve4(name) {
      queries.push(`A ${name}`);
      const answer = a[name];
      if (answer instanceof Error) throw answer;
      if (answer === undefined && aaaa[name]) throw dnsError('ENODATA', 'queryA', name);
      if (answer === undefined) throw dnsError('ENOTFOUND', 'queryA', name);
      return [...answer];
    },
    async resolve6(name) {
      queries.push(`AAAA ${name}`);
      const answer = aaaa[name];
      if (answer === undefined) throw dnsError(a[name] === undefined ? 'ENOTFOUND' : 'ENODATA', 'queryAaaa', name);
      return [...answer];
    },
    async resolveSrv(name) {
      queries.push(`SRV ${name}`);
      const answer = srv[name];
      if (answer === undefined) throw dnsError('ENOTFOUND', 'querySrv', name);
      return answer.map((r) => ({ priority: 0, weight: 10, ...r }));
    },
  };
}

const statefulSet = (podName: string, resolver: Resolver = fakeResolver({})) =>
  new StatefulSetDiscovery({
    podName,
    replicas: 3,
    service: 'quorumkv',
    namespace: 'db',
    clusterDomain: 'cluster.local',
    port: 8080,
    resolver,
  });

describe('StaticDiscovery', () => {
  test('returns the seeds exactly as given, and a copy the caller cannot change', async () => {
    const seeds = ['127.0.0.1:8081', 'kv-1.example:8082'];
    const discovery = new StaticDiscovery(seeds);
    seeds.push('127.0.0.1:9999');
    const first = await discovery.candidates();
    expect(discovery.name).toBe('static');
    expect(first).toEqual({ addresses: ['127.0.0.1:8081', 'kv-1.example:8082'], problems: [] });
    first.addresses.pop();
    expect((await discovery.candidates()).addresses).toEqual(['127.0.0.1:8081', 'kv-1.example:8082']);
  });
});

describe('StatefulSetDiscovery', () => {
  test('quorumkv-2 with 3 replicas names pods 0, 1 and 2 under the headless service', () => {
    const discovery = statefulSet('quorumkv-2');
    expect(discovery.name).toBe('statefulset');
    expect(discovery.base).toBe('quorumkv');
    expect(discovery.ordinal).toBe(2);
    expect(discovery.podNames()).toEqual([
      'quorumkv-0.quorumkv.db.svc.cluster.local',
      'quorumkv-1.quorumkv.db.svc.cluster.local',
      'quorumkv-2.quorumkv.db.svc.cluster.local',
    ]);
  });

  test('a StatefulSet name that itself has dashes keeps them', () => {
    expect(statefulSet('my-kv-store-10').podNames()[0]).toBe('my-kv-store-0.quorumkv.db.svc.cluster.local');
  });

  test.each(['quorumkv', 'quorumkv-', '-2', 'quorumkv-x', 'quorumkv-02', ''])(
    'pod name %j without a -<ordinal> suffix is refused',
    (podName) => {
      expect(() => statefulSet(podName)).toThrow(/must end in -<ordinal> as StatefulSet pods do/);
    },
  );

  test('bad replicas or port are refused with the value named', () => {
    const opts = {
      podName: 'kv-0',
      replicas: 3,
      service: 's',
      namespace: 'n',
      clusterDomain: 'cluster.local',
      port: 8080,
      resolver: fakeResolver({}),
    };
    expect(() => new StatefulSetDiscovery({ ...opts, replicas: 0 })).toThrow('replicas must be an integer ≥ 1, got 0');
    expect(() => new StatefulSetDiscovery({ ...opts, port: 70_000 })).toThrow('port must be an integer in 1..65535, got 70000');
    expect(() => new StatefulSetDiscovery({ ...opts, namespace: '' })).toThrow('needs a namespace');
  });

  test('candidates are the other pods that exist, in ordinal order, never its own address', async () => {
    const resolver = fakeResolver({
      'quorumkv-0.quorumkv.db.svc.cluster.local': ['10.0.0.7'],
      'quorumkv-1.quorumkv.db.svc.cluster.local': ['10.0.0.5', '10.0.0.9'],
      'quorumkv-2.quorumkv.db.svc.cluster.local': ['10.0.0.6'],
    });
    const result = await statefulSet('quorumkv-1', resolver).candidates();
    expect(result).toEqual({ addresses: ['10.0.0.7:8080', '10.0.0.6:8080'], problems: [] });
    // its own name is looked up once, as the check that the settings are right, never as a candidate
    expect(resolver.queries.filter((q) => q === 'A quorumkv-1.quorumkv.db.svc.cluster.local')).toHaveLength(1);
  });

  test('a pod whose own name does not exist reports it, naming the settings to check', async () => {
    // The headless Service was renamed (a namePrefix) but the setting was not: no name resolves.
    const resolver = fakeResolver({ 'prod-quorumkv-0.prod-quorumkv-headless.db.svc.cluster.local': ['10.0.0.7'] });
    const result = await statefulSet('quorumkv-1', resolver).candidates();
    expect(result.addresses).toEqual([]);
    expect(result.selfProblem).toBe(
      "this pod's own DNS name does not exist (A quorumkv-1.quorumkv.db.svc.cluster.local: ENOTFOUND (no such name)): " +
        '--headless-service (QUORUMKV_HEADLESS_SERVICE) "quorumkv" must be the StatefulSet\'s spec.serviceName, a headless ' +
        'Service in namespace "db" (--namespace, POD_NAMESPACE), and --cluster-domain (QUORUMKV_CLUSTER_DOMAIN) "cluster.local" the cluster\'s DNS domain',
    );
  });

  test('a DNS server that does not answer for its own name is not taken for a wrong setting', async () => {
    const own = 'quorumkv-0.quorumkv.db.svc.cluster.local';
    const resolver = fakeResolver({ [own]: dnsError('ETIMEOUT', 'queryA', own) });
    expect((await statefulSet('quorumkv-0', resolver).candidates()).selfProblem).toBeUndefined();
  });

  test('a pod with no IPv4 address is found by its AAAA record, in brackets', async () => {
    const resolver = fakeResolver(
      { 'quorumkv-0.quorumkv.db.svc.cluster.local': ['10.0.0.7'] },
      {},
      { 'quorumkv-1.quorumkv.db.svc.cluster.local': ['fd00::5'], 'quorumkv-2.quorumkv.db.svc.cluster.local': ['fd00::6'] },
    );
    const discovery = statefulSet('quorumkv-2', resolver);
    expect(await discovery.candidates()).toEqual({ addresses: ['10.0.0.7:8080', '[fd00::5]:8080'], problems: [] });
    expect(await discovery.podsThatExist()).toBe(3);
    // A name that does not exist is not asked again for AAAA.
    expect(resolver.queries).not.toContain('AAAA quorumkv-0.quorumkv.db.svc.cluster.local');
    const none = fakeResolver({});
    await statefulSet('quorumkv-2', none).candidates();
    expect(none.queries.filter((q) => q.startsWith('AAAA'))).toEqual([]);
  });

  test('a pod not created yet is skipped with a problem, and podsThatExist counts the rest (own included)', async () => {
    const resolver = fakeResolver({
      'quorumkv-0.quorumkv.db.svc.cluster.local': ['10.0.0.7'],
      'quorumkv-1.quorumkv.db.svc.cluster.local': dnsError('ETIMEOUT', 'queryA', 'quorumkv-1.quorumkv.db.svc.cluster.local'),
      'quorumkv-2.quorumkv.db.svc.cluster.local': ['10.0.0.6'],
    });
    const discovery = statefulSet('quorumkv-2', resolver);
    expect(await discovery.candidates()).toEqual({
      addresses: ['10.0.0.7:8080'],
      problems: ['A quorumkv-1.quorumkv.db.svc.cluster.local: ETIMEOUT (the DNS server did not answer in time)'],
    });
    expect(await discovery.podsThatExist()).toBe(2);
    expect(await statefulSet('quorumkv-2', fakeResolver({})).podsThatExist()).toBe(0);
  });
});

describe('DnsDiscovery', () => {
  test('a name with AAAA records only gives its IPv6 addresses', async () => {
    const resolver = fakeResolver({}, {}, { 'kv.test': ['fd00::2', 'fd00::1'] });
    const result = await new DnsDiscovery({ name: 'kv.test', port: 7000, resolver }).candidates();
    expect(result).toEqual({ addresses: ['[fd00::1]:7000', '[fd00::2]:7000'], problems: [] });
    expect(resolver.queries).toEqual(['A kv.test', 'AAAA kv.test']);
  });

  test('A records become ip:port, without duplicates, in numeric address order', async () => {
    const resolver = fakeResolver({ 'kv.test': ['127.0.0.10', '127.0.0.2', '127.0.0.3', '127.0.0.2'] });
    const result = await new DnsDiscovery({ name: 'kv.test', port: 7000, resolver }).candidates();
    expect(result).toEqual({ addresses: ['127.0.0.2:7000', '127.0.0.3:7000', '127.0.0.10:7000'], problems: [] });
    expect(resolver.queries).toEqual(['A kv.test']);
  });

  test('an SRV name is resolved to its targets and each target to ip:<SRV port>', async () => {
    const resolver = fakeResolver(
      { 'kv-0.kv.test': ['127.0.0.2'], 'kv-1.kv.test': ['127.0.0.3'], 'kv-2.kv.test': ['127.0.0.2'] },
      {
        '_kv._tcp.kv.test': [
          { name: 'kv-1.kv.test', port: 8080 },
          { name: 'kv-0.kv.test', port: 8080 },
          { name: 'kv-2.kv.test', port: 8080 }, // same address and port as kv-0: listed once
          { name: 'kv-2.kv.test', port: 9090 },
        ],
      },
    );
    const result = await new DnsDiscovery({ name: '_kv._tcp.kv.test', port: 1, resolver }).candidates();
    expect(result).toEqual({ addresses: ['127.0.0.2:8080', '127.0.0.2:9090', '127.0.0.3:8080'], problems: [] });
  });

  test('an SRV target without an address is left out and reported', async () => {
    const resolver = fakeResolver(
      { 'kv-0.kv.test': ['127.0.0.2'] },
      {
        '_kv._tcp.kv.test': [
          { name: 'kv-0.kv.test', port: 8080 },
          { name: 'kv-9.kv.test', port: 8080 },
        ],
      },
    );
    const result = await new DnsDiscovery({ name: '_kv._tcp.kv.test', port: 8080, resolver }).candidates();
    expect(result).toEqual({
      addresses: ['127.0.0.2:8080'],
      problems: ['A kv-9.kv.test: ENOTFOUND (no such name) (target of SRV _kv._tcp.kv.test)'],
    });
  });

  test.each([
    ['ENOTFOUND', 'no such name', ''],
    // no A record: the AAAA records are asked for too (none here either)
    ['ENODATA', 'the name has no records of this type', '; AAAA kv.test: ENODATA (the name has no records of this type)'],
    ['ETIMEOUT', 'the DNS server did not answer in time', ''],
  ])('%s becomes an empty list and a problem, never a rejection', async (code, meaning, aaaa) => {
    const resolver = fakeResolver({ 'kv.test': dnsError(code, 'queryA', 'kv.test') });
    await expect(new DnsDiscovery({ name: 'kv.test', port: 7000, resolver }).candidates()).resolves.toEqual({
      addresses: [],
      problems: [`A kv.test: ${code} (${meaning})${aaaa}`],
    });
    await expect(new DnsDiscovery({ name: '_kv._tcp.nothing.test', port: 7000, resolver }).candidates()).resolves.toEqual({
      addresses: [],
      problems: ['SRV _kv._tcp.nothing.test: ENOTFOUND (no such name)'],
    });
  });

  test('a resolver that throws synchronously is a problem too', async () => {
    const resolver: Resolver = {
      resolve4: () => {
        throw new Error('resolver broke');
      },
      resolve6: async () => [],
      resolveSrv: async () => [],
    };
    await expect(new DnsDiscovery({ name: 'kv.test', port: 7000, resolver }).candidates()).resolves.toEqual({
      addresses: [],
      problems: ['A kv.test: resolver broke'],
    });
  });
});

describe('parseJoinUrl', () => {
  test.each([
    ['http://quorumkv:8080', 'quorumkv', 8080],
    ['http://quorumkv:8080/', 'quorumkv', 8080],
    ['http://quorumkv', 'quorumkv', 80],
    ['http://quorumkv/', 'quorumkv', 80],
    ['HTTP://quorumkv.db.svc.cluster.local.:8080', 'quorumkv.db.svc.cluster.local.', 8080],
    ['quorumkv:8080', 'quorumkv', 8080],
    ['quorumkv:8080/', 'quorumkv', 8080],
    ['10.1.2.3:7000', '10.1.2.3', 7000],
    ['http://[::1]:7000', '::1', 7000],
    ['  http://kv:8080\n', 'kv', 8080],
    ['https://quorumkv:8443', 'quorumkv', 8443],
    ['https://quorumkv', 'quorumkv', 443],
  ])('%j is host %j port %j', (url, host, port) => {
    expect(parseJoinUrl(url)).toEqual({ host, port });
  });

  test.each([
    ['', /join URL must look like http:\/\/host:port/],
    ['quorumkv', /without http:\/\/ the port is required/],
    ['ftp://quorumkv:8443', /only http:\/\/ and https:\/\/ are supported/],
    ['http://quorumkv:8080/join', /no path, query or user info/],
    ['http://quorumkv:8080?x=1', /no path, query or user info/],
    ['http://user@quorumkv:8080', /no path, query or user info/],
    ['http://quorumkv:0', /port 0 is not in 1..65535/],
    ['http://quorumkv:99999', /port 99999 is not in 1..65535/],
    ['http://quorumkv:port', /join URL must look like/],
    ['http://kv_1:8080', /"kv_1" is not a host name/],
    ['http://[nope]:8080', /\[nope\] is not an IPv6 address/],
    ['http://:8080', /join URL must look like/],
  ])('%j is refused', (url, message) => {
    expect(() => parseJoinUrl(url)).toThrow(message);
  });
});

describe('JoinDiscovery', () => {
  test('without a resolver the name goes to the HTTP client as given', async () => {
    const discovery = new JoinDiscovery({ url: 'http://quorumkv:8080/' });
    expect(discovery.name).toBe('join');
    expect(await discovery.candidates()).toEqual({ addresses: ['quorumkv:8080'], problems: [] });
  });

  test('with a resolver every address of the name is tried', async () => {
    const resolver = fakeResolver({ quorumkv: ['10.0.0.9', '10.0.0.3'] });
    expect(await new JoinDiscovery({ url: 'quorumkv:8080', resolver }).candidates()).toEqual({
      addresses: ['10.0.0.3:8080', '10.0.0.9:8080'],
      problems: [],
    });
  });

  test('an IP is used without a query; IPv6 keeps its brackets', async () => {
    const resolver = fakeResolver({});
    expect(await new JoinDiscovery({ url: 'http://10.0.0.3:7000', resolver }).candidates()).toEqual({
      addresses: ['10.0.0.3:7000'],
      problems: [],
    });
    expect(await new JoinDiscovery({ url: 'http://[fd00::1]:7000', resolver }).candidates()).toEqual({
      addresses: ['[fd00::1]:7000'],
      problems: [],
    });
    expect(resolver.queries).toEqual([]);
  });

  test('a name that does not resolve falls back to host:port unresolved, with a problem', async () => {
    expect(await new JoinDiscovery({ url: 'http://quorumkv:8080', resolver: fakeResolver({}) }).candidates()).toEqual({
      addresses: ['quorumkv:8080'],
      problems: ['A quorumkv: ENOTFOUND (no such name); trying quorumkv:8080 unresolved'],
    });
  });

  test('a garbage URL is refused when the provider is built, not at the first round', () => {
    expect(() => new JoinDiscovery({ url: 'ftp://x' })).toThrow('join URL must look like http://host:port');
  });
});

describe('createResolver', () => {
  test('an IP literal and localhost are answered without asking the server', async () => {
    // Nothing listens on port 1: a query would fail with ECONNREFUSED.
    const resolver = createResolver('127.0.0.1:1', 200);
    expect(await resolver.resolve4('127.0.0.5')).toEqual(['127.0.0.5']);
    expect(await resolver.resolve4('localhost')).toEqual(['127.0.0.1']);
    expect(await createResolver().resolve4('10.1.2.3')).toEqual(['10.1.2.3']);
  });

  test('a server that is not ip:port, or a timeout that is not positive, is refused', () => {
    expect(() => createResolver('dns.example:53')).toThrow('DNS server must look like ip:port (e.g. 127.0.0.1:5353), got "dns.example:53"');
    expect(() => createResolver(undefined, 0)).toThrow('DNS timeout must be a positive integer of ms, got 0');
  });
});

describe("the cluster domain, from a pod's resolv.conf", () => {
  test('is what follows svc. in the search path kubelet writes', () => {
    const pod = 'search db.svc.k8s.example.com svc.k8s.example.com k8s.example.com\nnameserver 10.96.0.10\noptions ndots:5\n';
    expect(clusterDomainFromResolvConf(pod)).toBe('k8s.example.com');
    expect(clusterDomainFromResolvConf('search quorumkv.svc.cluster.local svc.cluster.local cluster.local\n')).toBe('cluster.local');
  });

  test('the last search line counts; comments and trailing dots are ignored', () => {
    expect(clusterDomainFromResolvConf('search svc.old.local\n# search svc.commented.local\nsearch a.example svc.new.local.\n')).toBe(
      'new.local',
    );
  });

  test('is undefined off Kubernetes, and the system default is then cluster.local', () => {
    expect(clusterDomainFromResolvConf('nameserver 10.255.255.53\n')).toBeUndefined();
    expect(clusterDomainFromResolvConf('search svc\nsearch example.com\n')).toBeUndefined();
    expect(systemClusterDomain('/nonexistent/resolv.conf')).toBe(DEFAULT_CLUSTER_DOMAIN);
  });
});
