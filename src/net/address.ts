// Where a member's internode port is. Members know each other by their API address (the one
// discovery finds, clients use and /cluster shows); the internode port is at the same distance from
// the API port on every member, so one number turns any member's API address into its peer address.

/** `host:port` or `[v6]:port` into its parts (the host without brackets). */
export function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  if (i <= 0) throw new Error(`${JSON.stringify(address)} is not host:port`);
  let host = address.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const port = Number(address.slice(i + 1));
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${JSON.stringify(address)} has no valid port`);
  return { host, port };
}

/** `host:port`, bracketing an IPv6 host. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The internode address of the member whose API address is given, `distance` ports away. */
export function internodeAddress(apiAddress: string, distance: number): string {
  const { host, port } = splitHostPort(apiAddress);
  const peerPort = port + distance;
  if (peerPort < 1 || peerPort > 65535) throw new Error(`no internode port for ${apiAddress} (${port} + ${distance} is out of range)`);
  return joinHostPort(host, peerPort);
}
