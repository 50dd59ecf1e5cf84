export type { Candidates, Discovery } from './discovery';
export { DnsDiscovery, type DnsDiscoveryOptions } from './dns';
export { JoinDiscovery, type JoinDiscoveryOptions, parseJoinUrl } from './join';
export { createResolver, DEFAULT_DNS_TIMEOUT_MS, type Resolver } from './resolver';
export { StatefulSetDiscovery, type StatefulSetDiscoveryOptions } from './statefulset';
export { StaticDiscovery } from './static';
