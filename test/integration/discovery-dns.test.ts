// Discovery against a real DNS server: dnsmasq on 127.0.0.1:15353 (this file's port), answering
// for kv.test from a hosts file the tests rewrite as pods come and go.

import { createSocket } from 'node:dgram';
import { type DnsServer, type HostsEntry, startDnsmasq } from '../../scripts/lib/dnsmasq';
import { createResolver, DnsDiscovery, JoinDiscovery, type Resolver, StatefulSetDiscovery } from '../../src/discovery';

const DNS_PORT = 15353;

// Three pods behind the headless service `quorumkv.kv.test`, each with its own name as well, and
// a load-balanced Service with one ClusterIP.
const baseHosts: HostsEntry[] = [
  { ip: '127.0.1.1', names: ['quorumkv.kv.test', 'kv-0.quorumkv.kv.test'] },
  { ip: '127.0.1.2', names: ['quorumkv.kv.test', 'kv-1.quorumkv.kv.test'] },
  { ip: '127.0.1.10', names: ['quorumkv.kv.test', 'kv-2.quorumkv.kv.test'] },
  { ip: '127.0.9.9', names: ['quorumkv-lb.kv.test'] },
];

// StatefulSet pod names for podName quorumkv-<i>, service quorumkv, namespace default, cluster domain kv.test.
const podName = (i: number) => `quorumkv-${i}.quorumkv.default.svc.kv.test`;
const pod = (i: number): HostsEntry => ({ ip: `127.0.2.${i + 1}`, names: [podName(i)] });

let dns: DnsServer;
let resolver: Resolver;

beforeAll(async () => {
  dns = await startDnsmasq({
    port: DNS_PORT,
    domain: 'kv.test',
    hosts: baseHosts,
    srv: [
      { name: '_kv._tcp.quorumkv.kv.test', target: 'kv-0.quorumkv.kv.test', port: 7001 },
      { name: '_kv._tcp.quorumkv.kv.test', target: 'kv-1.quorumkv.kv.test', port: 7002 },
      { name: '_kv._tcp.quorumkv.kv.test', target: 'kv-2.quorumkv.kv.test', port: 7003 },
      { name: '_gone._tcp.quorumkv.kv.test', target: 'kv-9.quorumkv.kv.test', port: 7009 },
    ],
  });
  resolver = createResolver(dns.address, 1_000);
});

// Every test starts from the same records, whatever the one before it added.
beforeEach(() => dns.setHosts(baseHosts));

afterAll(() => dns?.stop());

test('a headless service name gives every pod address at the given port, in address order', async () => {
  const result = await new DnsDiscovery({ name: 'quorumkv.kv.test', port: 7000, resolver }).candidates();
  expect(result).toEqual({ addresses: ['127.0.1.1:7000', '127.0.1.2:7000', '127.0.1.10:7000'], problems: [] });
});

test('SRV records give each target address at its own port', async () => {
  const result = await new DnsDiscovery({ name: '_kv._tcp.quorumkv.kv.test', port: 1, resolver }).candidates();
  expect(result).toEqual({ addresses: ['127.0.1.1:7001', '127.0.1.2:7002', '127.0.1.10:7003'], problems: [] });
});

test('an SRV target with no address is reported, not returned', async () => {
  const result = await new DnsDiscovery({ name: '_gone._tcp.quorumkv.kv.test', port: 1, resolver }).candidates();
  expect(result).toEqual({
    addresses: [],
    problems: ['A kv-9.quorumkv.kv.test: ENOTFOUND (no such name) (target of SRV _gone._tcp.quorumkv.kv.test)'],
  });
});

test('an unknown name gives no addresses and a problem, and does not throw', async () => {
  await expect(new DnsDiscovery({ name: 'nobody.kv.test', port: 7000, resolver }).candidates()).resolves.toEqual({
    addresses: [],
    problems: ['A nobody.kv.test: ENOTFOUND (no such name)'],
  });
  await expect(new DnsDiscovery({ name: '_kv._tcp.nobody.kv.test', port: 7000, resolver }).candidates()).resolves.toEqual({
    addresses: [],
    problems: ['SRV _kv._tcp.nobody.kv.test: ENOTFOUND (no such name)'],
  });
});

test('StatefulSet pods are found as they are created, and counted as they come and go', async () => {
  const discovery = new StatefulSetDiscovery({
    podName: 'quorumkv-0',
    replicas: 3,
    service: 'quorumkv',
    namespace: 'default',
    clusterDomain: 'kv.test',
    port: 7000,
    resolver,
  });
  expect(discovery.podNames()).toEqual([podName(0), podName(1), podName(2)]);
  expect(await discovery.podsThatExist()).toBe(0);

  // The controller creates pods in order; pod 0 is this one.
  await dns.setHosts([...baseHosts, pod(0)]);
  expect(await discovery.podsThatExist()).toBe(1);
  expect(await discovery.candidates()).toEqual({
    addresses: [],
    problems: [`A ${podName(1)}: ENOTFOUND (no such name)`, `A ${podName(2)}: ENOTFOUND (no such name)`],
  });

  await dns.setHosts([...baseHosts, pod(0), pod(1)]);
  expect(await discovery.podsThatExist()).toBe(2);
  expect(await discovery.candidates()).toEqual({ addresses: ['127.0.2.2:7000'], problems: [`A ${podName(2)}: ENOTFOUND (no such name)`] });

  await dns.setHosts([...baseHosts, pod(0), pod(1), pod(2)]);
  expect(await discovery.podsThatExist()).toBe(3);
  expect(await discovery.candidates()).toEqual({ addresses: ['127.0.2.2:7000', '127.0.2.3:7000'], problems: [] });

  // Pod 1 deleted (rescheduling): its name disappears until the new pod is created.
  await dns.setHosts([...baseHosts, pod(0), pod(2)]);
  expect(await discovery.podsThatExist()).toBe(2);
  expect(await discovery.candidates()).toEqual({ addresses: ['127.0.2.3:7000'], problems: [`A ${podName(1)}: ENOTFOUND (no such name)`] });
});

test('a join URL naming a service resolves to its ClusterIP; an unknown one is passed on unresolved', async () => {
  expect(await new JoinDiscovery({ url: 'http://quorumkv-lb.kv.test:8080/', resolver }).candidates()).toEqual({
    addresses: ['127.0.9.9:8080'],
    problems: [],
  });
  expect(await new JoinDiscovery({ url: 'quorumkv.kv.test:8080', resolver }).candidates()).toEqual({
    addresses: ['127.0.1.1:8080', '127.0.1.2:8080', '127.0.1.10:8080'],
    problems: [],
  });
  expect(await new JoinDiscovery({ url: 'http://missing.kv.test:8080', resolver }).candidates()).toEqual({
    addresses: ['missing.kv.test:8080'],
    problems: ['A missing.kv.test: ENOTFOUND (no such name); trying missing.kv.test:8080 unresolved'],
  });
});

test('a DNS server that never answers gives timeouts as problems, all pods looked up at once', async () => {
  // A UDP socket that reads queries and never replies: a DNS server that hangs.
  const silent = createSocket('udp4');
  silent.on('message', () => {});
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
  try {
    const timeoutMs = 100;
    const hung = createResolver(`127.0.0.1:${silent.address().port}`, timeoutMs);
    const discovery = new StatefulSetDiscovery({
      podName: 'quorumkv-0',
      replicas: 5,
      service: 'quorumkv',
      namespace: 'default',
      clusterDomain: 'kv.test',
      port: 7000,
      resolver: hung,
    });
    const started = Date.now();
    const result = await discovery.candidates();
    const elapsedMs = Date.now() - started;
    expect(result.addresses).toEqual([]);
    expect(result.problems).toEqual([1, 2, 3, 4].map((i) => `A ${podName(i)}: ETIMEOUT (the DNS server did not answer in time)`));
    // One lookup of two tries takes about 800 ms here (c-ares 1.34 waits at least ~250 ms on the
    // first try and twice that on the retry); four names one after another would take over 3 s.
    expect(elapsedMs).toBeLessThan(2_000);
  } finally {
    silent.close();
  }
});
