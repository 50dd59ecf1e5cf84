// Peers from one DNS name, as Cassandra's and Consul's cloud providers do: the A records of a
// headless Service (one per pod, ready or not, when the Service sets publishNotReadyAddresses),
// or an SRV name when the port is published too. AAAA records when a name has no A record (IPv6).

import { assertPort, describeLookupError, hostPort, LookupError, resolveAddresses, uniqueSorted } from './address';
import type { Candidates, Discovery } from './discovery';
import type { Resolver } from './resolver';

export interface DnsDiscoveryOptions {
  /** `kv.default.svc.cluster.local` (A records), or `_kv._tcp.kv.default.svc.cluster.local` (SRV). */
  name: string;
  /** Port of every address found by A records; SRV records carry their own. */
  port: number;
  resolver: Resolver;
}

export class DnsDiscovery implements Discovery {
  readonly name = 'dns';
  private readonly opts: DnsDiscoveryOptions;

  constructor(opts: DnsDiscoveryOptions) {
    if (opts.name.length === 0) throw new Error('DNS discovery needs a name to resolve');
    assertPort(opts.port, 'DNS discovery port');
    this.opts = opts;
  }

  candidates(): Promise<Candidates> {
    // An SRV owner name starts with the service label (`_kv._tcp...`); host names never do.
    return this.opts.name.startsWith('_') ? this.fromSrv() : this.fromA();
  }

  /** Every record is a pod (ready or not, with publishNotReadyAddresses): count them. */
  async podsThatExist(): Promise<number> {
    return (await this.candidates()).addresses.length;
  }

  private async fromA(): Promise<Candidates> {
    const { name, port, resolver } = this.opts;
    try {
      const ips = await resolveAddresses(resolver, name);
      return { addresses: uniqueSorted(ips.map((ip) => hostPort(ip, port))), problems: [] };
    } catch (err) {
      return { addresses: [], problems: [err instanceof LookupError ? err.message : describeLookupError('A', name, err)] };
    }
  }

  private async fromSrv(): Promise<Candidates> {
    const { name, resolver } = this.opts;
    let records: Awaited<ReturnType<Resolver['resolveSrv']>>;
    try {
      records = await resolver.resolveSrv(name);
    } catch (err) {
      return { addresses: [], problems: [describeLookupError('SRV', name, err)] };
    }
    const addresses: string[] = [];
    const problems: string[] = [];
    // All targets at once, so the whole round takes one lookup's time, not one per pod.
    await Promise.all(
      records.map(async (srv) => {
        try {
          for (const ip of await resolveAddresses(resolver, srv.name)) addresses.push(hostPort(ip, srv.port));
        } catch (err) {
          problems.push(`${err instanceof LookupError ? err.message : describeLookupError('A', srv.name, err)} (target of SRV ${name})`);
        }
      }),
    );
    return { addresses: uniqueSorted(addresses), problems: problems.sort() };
  }
}
