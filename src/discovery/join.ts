// Join through one well-known address (`--join http://quorumkv:8080`), often a load-balanced
// Service: whoever answers there is a member, and the gossip that follows finds the rest.

import { isIPv4, isIPv6 } from 'node:net';
import { describeLookupError, hostPort, uniqueSorted } from './address';
import type { Candidates, Discovery } from './discovery';
import type { Resolver } from './resolver';

const URL_SHAPE = 'join URL must look like http://host:port or host:port';
const AUTHORITY = /^(?:(?<scheme>[A-Za-z][A-Za-z0-9+.-]*):\/\/)?(?<host>\[[^\]]*\]|[^/:[\]@?#\s]+)(?::(?<port>[0-9]{1,5}))?\/?$/;
const HOSTNAME = /^(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/**
 * `http://host:port`, `http://host` (port 80) or `host:port`, each with or without a trailing
 * slash; host is a DNS name, an IPv4 address or a bracketed IPv6 address (returned without brackets).
 */
export function parseJoinUrl(url: string): { host: string; port: number } {
  const text = url.trim();
  const m = AUTHORITY.exec(text);
  const scheme = m?.groups?.scheme;
  let host = m?.groups?.host;
  const portText = m?.groups?.port;
  if (!m || host === undefined) throw new Error(`${URL_SHAPE}, got "${url}" (no path, query or user info)`);
  // The URL only names a member's API address (peers are then reached on their internode port),
  // so https:// is as good as http:// (a node with --tls client|all is given as https://); the
  // scheme chooses the default port.
  const lower = scheme?.toLowerCase();
  if (lower !== undefined && lower !== 'http' && lower !== 'https')
    throw new Error(`${URL_SHAPE}, got "${url}": only http:// and https:// are supported`);
  if (scheme === undefined && portText === undefined) throw new Error(`${URL_SHAPE}, got "${url}": without http:// the port is required`);
  if (host.startsWith('[')) {
    host = host.slice(1, -1);
    if (!isIPv6(host)) throw new Error(`${URL_SHAPE}, got "${url}": [${host}] is not an IPv6 address`);
  } else if (!isIPv4(host) && !HOSTNAME.test(host)) {
    throw new Error(`${URL_SHAPE}, got "${url}": "${host}" is not a host name or IPv4 address`);
  }
  const port = portText === undefined ? (lower === 'https' ? 443 : 80) : Number(portText);
  if (port < 1 || port > 65_535) throw new Error(`${URL_SHAPE}, got "${url}": port ${port} is not in 1..65535`);
  return { host, port };
}

export interface JoinDiscoveryOptions {
  url: string;
  /** Without one, the name goes to the HTTP client unresolved. */
  resolver?: Resolver;
}

export class JoinDiscovery implements Discovery {
  readonly name = 'join';
  readonly host: string;
  readonly port: number;
  private readonly resolver: Resolver | undefined;

  constructor(opts: JoinDiscoveryOptions) {
    const { host, port } = parseJoinUrl(opts.url);
    this.host = host;
    this.port = port;
    this.resolver = opts.resolver;
  }

  async candidates(): Promise<Candidates> {
    const unresolved = hostPort(this.host, this.port);
    if (this.resolver === undefined || isIPv4(this.host) || isIPv6(this.host)) return { addresses: [unresolved], problems: [] };
    try {
      const ips = await this.resolver.resolve4(this.host);
      if (ips.length > 0) return { addresses: uniqueSorted(ips.map((ip) => hostPort(ip, this.port))), problems: [] };
      return { addresses: [unresolved], problems: [`A ${this.host}: no addresses; trying ${unresolved} unresolved`] };
    } catch (err) {
      // The HTTP client resolves names itself (getaddrinfo, /etc/hosts, search domains), so it may
      // still reach a name our DNS query could not: try it rather than give up.
      return { addresses: [unresolved], problems: [`${describeLookupError('A', this.host, err)}; trying ${unresolved} unresolved`] };
    }
  }
}
