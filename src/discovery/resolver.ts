// The two DNS questions discovery asks, behind an interface so unit tests can answer them from a
// table and integration tests from a real server (test/helpers/dnsmasq.ts).

import { Resolver as DnsResolver } from 'node:dns/promises';
import { isIP, isIPv6 } from 'node:net';

export interface Resolver {
  resolve4(name: string): Promise<string[]>;
  /** AAAA records: a pod of an IPv6-only cluster has no A record. */
  resolve6(name: string): Promise<string[]>;
  resolveSrv(name: string): Promise<Array<{ name: string; port: number; priority: number; weight: number }>>;
}

/**
 * Per try; two tries. Kubernetes' cluster DNS answers in milliseconds, so 2 s means it is not there.
 * c-ares doubles the wait on the retry, so a lookup that gets no answer fails after about
 * 3 × timeoutMs (6 s by default; measured with c-ares 1.34, which also waits at least ~250 ms a try).
 */
export const DEFAULT_DNS_TIMEOUT_MS = 2_000;
const DNS_TRIES = 2;

/**
 * node:dns/promises Resolver; `server` is "ip:port" (e.g. "127.0.0.1:5353") or undefined for the
 * system resolver (the nameservers of /etc/resolv.conf). timeoutMs per try (default 2000), 2 tries.
 *
 * Names are queried as given, without resolv.conf search domains: give fully qualified names
 * (`kv-0.kv.default.svc.cluster.local`), as the StatefulSet provider builds them.
 */
export function createResolver(server?: string, timeoutMs: number = DEFAULT_DNS_TIMEOUT_MS): Resolver {
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new Error(`DNS timeout must be a positive integer of ms, got ${timeoutMs}`);
  const dns = new DnsResolver({ timeout: timeoutMs, tries: DNS_TRIES });
  if (server !== undefined) {
    try {
      dns.setServers([server]);
    } catch (err) {
      throw new Error(`DNS server must look like ip:port (e.g. 127.0.0.1:5353), got "${server}": ${(err as Error).message}`);
    }
  }
  return {
    async resolve4(name) {
      // A seed or join address may already be an IP; asking DNS about it would only fail.
      if (isIP(name) !== 0) return [name];
      // RFC 6761: localhost is loopback without asking anyone; a DNS server (dnsmasq in tests,
      // CoreDNS in a cluster) need not know it, and c-ares does not read /etc/hosts here.
      if (/^localhost\.?$/i.test(name)) return ['127.0.0.1'];
      return dns.resolve4(name);
    },
    async resolve6(name) {
      if (isIPv6(name)) return [name];
      if (/^localhost\.?$/i.test(name)) return ['::1'];
      return dns.resolve6(name);
    },
    resolveSrv(name) {
      return dns.resolveSrv(name);
    },
  };
}
