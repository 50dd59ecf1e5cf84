// Small helpers the providers share: host:port formatting, a deterministic order, and DNS errors
// turned into one readable line.

import { isIPv4, isIPv6 } from 'node:net';

/** `host:port`, with an IPv6 literal in brackets so the port stays unambiguous. */
export function hostPort(host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

export function assertPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new Error(`${what} must be an integer in 1..65535, got ${port}`);
}

/** Removes duplicates and sorts IPv4 addresses by their numeric value (127.0.0.2 before 127.0.0.10), then port. */
export function uniqueSorted(addresses: Iterable<string>): string[] {
  return [...new Set(addresses)].sort(compareAddresses);
}

function compareAddresses(a: string, b: string): number {
  const ka = sortKey(a);
  const kb = sortKey(b);
  if (ka.ip !== undefined && kb.ip !== undefined && ka.ip !== kb.ip) return ka.ip - kb.ip;
  if (ka.ip !== undefined && kb.ip !== undefined) return ka.port - kb.port;
  // Anything else (names, IPv6): plain string order is deterministic, which is all that matters.
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortKey(address: string): { ip: number | undefined; port: number } {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon);
  const port = Number(address.slice(colon + 1));
  if (colon < 0 || !isIPv4(host)) return { ip: undefined, port };
  const ip = host.split('.').reduce((sum, octet) => sum * 256 + Number(octet), 0);
  return { ip, port };
}

/** The DNS error code of a failed lookup (ENOTFOUND, ENODATA, ...), if it has one. */
export function dnsCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

/**
 * A name's addresses: its A records, or, when it has none (ENODATA, or an empty answer: the pod
 * has no IPv4 address), its AAAA records. A name that does not exist (ENOTFOUND) is not asked
 * again for AAAA. Rejects with one line saying what each query answered.
 */
export async function resolveAddresses(
  resolver: { resolve4(n: string): Promise<string[]>; resolve6(n: string): Promise<string[]> },
  name: string,
): Promise<string[]> {
  let v4Problem: string;
  try {
    const ips = await resolver.resolve4(name);
    if (ips.length > 0) return ips;
    v4Problem = `A ${name}: no addresses`;
  } catch (err) {
    if (dnsCode(err) !== 'ENODATA') throw new LookupError(describeLookupError('A', name, err), dnsCode(err));
    v4Problem = describeLookupError('A', name, err);
  }
  try {
    const ips = await resolver.resolve6(name);
    if (ips.length > 0) return ips;
    throw new LookupError(`${v4Problem}; AAAA ${name}: no addresses`, 'ENODATA');
  } catch (err) {
    if (err instanceof LookupError) throw err;
    throw new LookupError(`${v4Problem}; ${describeLookupError('AAAA', name, err)}`, dnsCode(err));
  }
}

/** A failed lookup, described (`message`), with the DNS code of the last answer. */
export class LookupError extends Error {
  override name = 'LookupError';
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

const dnsCodeMeaning: Record<string, string> = {
  ENOTFOUND: 'no such name',
  ENODATA: 'the name has no records of this type',
  ETIMEOUT: 'the DNS server did not answer in time',
  ECONNREFUSED: 'the DNS server refused the connection',
  EREFUSED: 'the DNS server refused the query',
  ESERVFAIL: 'the DNS server failed',
};

/** One line for a failed lookup: `A kv.test: ENOTFOUND (no such name)`. */
export function describeLookupError(type: 'A' | 'AAAA' | 'SRV', name: string, err: unknown): string {
  const code = typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
  if (code !== undefined) return `${type} ${name}: ${code}${dnsCodeMeaning[code] ? ` (${dnsCodeMeaning[code]})` : ''}`;
  return `${type} ${name}: ${err instanceof Error ? err.message : String(err)}`;
}
