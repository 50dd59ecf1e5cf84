// Every `quorumkv serve` setting in one table: its flag, its environment fallback
// (QUORUMKV_<FLAG>), its default and why, and its validation. A bad value stops the process with a
// message naming the flag, the variable and what would be valid. README's table is this table.

import { hostname } from 'node:os';
import path from 'node:path';
import { checkLimits, DEFAULTS, LIMITS } from './core/defaults';
import { quorumOf } from './core/quorum';
import { systemClusterDomain } from './discovery/cluster-domain';

export interface ServeConfig {
  nodeId: string;
  host: string;
  port: number;
  internodePort: number;
  advertiseAddress: string;
  dataDir: string;
  seeds: string[];
  discovery: DiscoveryKind;
  expectedReplicas: number | undefined;
  headlessService: string;
  namespace: string;
  clusterDomain: string;
  dnsName: string | undefined;
  dnsServer: string | undefined;
  join: string | undefined;
  gossipIntervalMs: number;
  heartbeatIntervalMs: number;
  phiConvictThreshold: number;
  discoveryIntervalMs: number;
  discoveryMaxIntervalMs: number;
  replicationFactor: number;
  readQuorum: number;
  writeQuorum: number;
  vnodes: number;
  requestTimeoutMs: number;
  readRepair: boolean;
  sloppyQuorum: boolean;
  hintWindowMs: number;
  maxHintsPerNode: number;
  hintDeliveryRate: number;
  antiEntropyIntervalMs: number;
  tombstoneGraceMs: number;
  maxValueBytes: number;
  maxInflightRequests: number;
  idlePollUs: number;
  /** Tokens of the internode handshake, `current[,next]`: the first is proven, any is accepted. */
  clusterSecret: string[] | undefined;
  /** Bearer tokens of /admin/*, same list syntax: any is accepted; the CLI sends the first. */
  adminToken: string[] | undefined;
  adminFromLoopback: boolean;
  /** Client authentication: bearer tokens and their roles, one `<role> <token>` a line; reloaded when it changes. */
  tokensFile: string | undefined;
  /** Where TLS is on: the API port (client), the internode port (internode, mutual), both, or neither. */
  tls: TlsMode;
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  tlsCa: string | undefined;
  logLevel: string;
}

export const TLS_MODES = ['off', 'client', 'internode', 'all'] as const;
export type TlsMode = (typeof TLS_MODES)[number];

/** Whether TLS is on for the API port. */
export const clientTls = (m: TlsMode) => m === 'client' || m === 'all';
/** Whether mutual TLS is on for the internode port. */
export const internodeTls = (m: TlsMode) => m === 'internode' || m === 'all';

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
}

export const DISCOVERY_KINDS = ['static', 'dns', 'statefulset', 'join'] as const;
export type DiscoveryKind = (typeof DISCOVERY_KINDS)[number];

type Raw = string | undefined;
type Parsed = string | number | boolean | string[] | undefined;

interface Setting {
  key: keyof ServeConfig;
  flag: string;
  arg: string;
  description: string;
  /** Shown in --help and README. */
  defaultText: string;
  /** The value when no source gives one; may use settings listed before it. Throws when there is none. */
  fallback: (c: Partial<ServeConfig>, env: Record<string, Raw>) => Parsed;
  /** Parses a raw value; throws Error(message saying what is valid). */
  parse: (raw: string) => Parsed;
  /** Other environment variables consulted after QUORUMKV_<FLAG> (Kubernetes downward API). */
  alsoEnv?: string[];
  /** Hidden from logs (the cluster secret). */
  secret?: boolean;
}

/**
 * The internode port's default distance from the API port: 8080 and 9080, and for a local cluster
 * on one host (8081, 8082, 8083) ports that do not collide with the API ports.
 */
export const INTERNODE_PORT_DISTANCE = 1000;

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):([0-9]{1,5})$/;

function integer(min: number, max: number): (raw: string) => number {
  return (raw) => {
    const n = /^-?[0-9]+$/.test(raw.trim()) ? Number(raw.trim()) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new Error(`must be an integer from ${min} to ${max}`);
    return n;
  };
}

function bool(raw: string): boolean {
  const v = raw.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  throw new Error('must be true or false');
}

function nonEmpty(raw: string): string {
  if (raw.trim() === '') throw new Error('must not be empty');
  return raw.trim();
}

export function parseHostPort(raw: string): string {
  const s = raw.trim();
  const m = HOST_PORT.exec(s);
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65535) throw new Error(`must be host:port (e.g. 10.0.0.7:8080 or kv-0.kv:8080); got ${JSON.stringify(raw)}`);
  return s;
}

/** Tokens a list may hold: the one in use and the one being rotated to. */
export const MAX_TOKENS = 2;

/**
 * A token list `current[,next]` (a rotation holds two for a while). Every element is checked, and
 * no message repeats a token: it could end up in a log.
 */
export function parseTokenList(raw: string): string[] {
  const tokens = raw.split(',');
  const problems: string[] = [];
  for (const [i, t] of tokens.entries()) {
    const which = tokens.length === 1 ? 'the token' : `token ${i + 1} of ${tokens.length}`;
    if (t === '') problems.push(`${which} is empty`);
    else if (/\s/.test(t)) problems.push(`${which} contains whitespace`);
  }
  if (tokens.length > MAX_TOKENS) problems.push(`holds ${tokens.length} tokens; at most ${MAX_TOKENS} (current[,next])`);
  if (problems.length === 0 && new Set(tokens).size !== tokens.length) problems.push('lists the same token twice');
  if (problems.length > 0) {
    throw new Error(`must be current[,next]: tokens without whitespace, separated by one comma; ${problems.join(', ')}`);
  }
  return tokens;
}

/**
 * An admin token list: as parseTokenList, and each token in the characters a bearer token may have
 * (RFC 6750 b64token), else no Authorization header could ever carry it and the routes would be
 * locked to everyone.
 */
export function parseAdminTokenList(raw: string): string[] {
  const tokens = parseTokenList(raw);
  const bad = tokens.map((t, i) => (/^[A-Za-z0-9\-._~+/]+=*$/.test(t) ? -1 : i)).filter((i) => i >= 0);
  if (bad.length > 0) {
    const which = tokens.length === 1 ? 'the token' : `token ${(bad[0] as number) + 1} of ${tokens.length}`;
    throw new Error(
      `must be current[,next] of bearer tokens (letters, digits and - . _ ~ + /, then = padding): ${which} has another character (openssl rand -hex 32 makes one)`,
    );
  }
  return tokens;
}

function hostPortList(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(parseHostPort);
}

export const SETTINGS: readonly Setting[] = [
  {
    key: 'nodeId',
    flag: 'node-id',
    arg: '<id>',
    description: 'Stable node identity; keep it across restarts (a pod name)',
    defaultText: '$POD_NAME, else the hostname',
    fallback: () => hostname(),
    parse: (raw) => {
      const s = nonEmpty(raw);
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(s))
        throw new Error('must be 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit');
      return s;
    },
    alsoEnv: ['POD_NAME'],
  },
  {
    key: 'host',
    flag: 'host',
    arg: '<addr>',
    description: 'Address to listen on',
    defaultText: '127.0.0.1',
    fallback: () => '127.0.0.1',
    parse: nonEmpty,
  },
  {
    key: 'port',
    flag: 'port',
    arg: '<n>',
    description: 'Port for the API and internode routes',
    defaultText: '8080',
    fallback: () => 8080,
    parse: integer(1, 65535),
  },
  {
    key: 'internodePort',
    flag: 'internode-port',
    arg: '<n>',
    description:
      'Port of the node-to-node protocol; members are found by their API address, so every member must use the same distance from --port',
    defaultText: '--port + 1000',
    fallback: (c) => {
      const p = (c.port ?? 8080) + INTERNODE_PORT_DISTANCE;
      if (p > 65535) throw new Error(`--port + ${INTERNODE_PORT_DISTANCE} is over 65535: set it`);
      return p;
    },
    parse: integer(1, 65535),
  },
  {
    key: 'advertiseAddress',
    flag: 'advertise-address',
    arg: '<host:port>',
    description: 'Where peers reach this node',
    defaultText: 'host:port; with a wildcard host, $POD_IP:port',
    fallback: (c, env) => {
      const wildcard = c.host === '0.0.0.0' || c.host === '::';
      const ip = wildcard ? env.POD_IP : c.host;
      if (!ip) throw new Error(`required when --host is a wildcard (${c.host}) and POD_IP is not set`);
      return ip.includes(':') && !ip.startsWith('[') ? `[${ip}]:${c.port}` : `${ip}:${c.port}`;
    },
    parse: parseHostPort,
  },
  {
    key: 'dataDir',
    flag: 'data-dir',
    arg: '<dir>',
    description: 'LMDB data directory',
    defaultText: './data/<node-id>',
    fallback: (c) => path.join('data', c.nodeId ?? 'node'),
    parse: nonEmpty,
  },
  {
    key: 'seeds',
    flag: 'seeds',
    arg: '<host:port,...>',
    description: 'Addresses of cluster members to contact (may include this node)',
    defaultText: 'none (a single-node cluster)',
    fallback: () => [],
    parse: hostPortList,
  },
  {
    key: 'expectedReplicas',
    flag: 'expected-replicas',
    arg: '<n>',
    description: "Members the cluster should have (the StatefulSet's replicas); discovery runs until they are known",
    defaultText: 'none (statefulset discovery needs it)',
    fallback: () => undefined,
    parse: integer(1, 1000),
  },
  {
    key: 'headlessService',
    flag: 'headless-service',
    arg: '<name>',
    description: 'Headless Service of the StatefulSet (statefulset discovery)',
    defaultText: 'quorumkv-headless',
    fallback: () => 'quorumkv-headless',
    parse: nonEmpty,
  },
  {
    key: 'namespace',
    flag: 'namespace',
    arg: '<ns>',
    description: 'Namespace of the pods (statefulset discovery)',
    defaultText: '$POD_NAMESPACE, else default',
    fallback: () => 'default',
    parse: nonEmpty,
    alsoEnv: ['POD_NAMESPACE'],
  },
  {
    key: 'clusterDomain',
    flag: 'cluster-domain',
    arg: '<domain>',
    description: 'Cluster DNS domain (statefulset discovery)',
    defaultText: 'the svc.<domain> search entry of /etc/resolv.conf (a pod has one), else cluster.local',
    fallback: () => systemClusterDomain(),
    parse: nonEmpty,
  },
  {
    key: 'dnsName',
    flag: 'dns-name',
    arg: '<name>',
    description: 'Name whose A records (or SRV records, for a name starting with _) list the pods (dns discovery)',
    defaultText: 'none',
    fallback: () => undefined,
    parse: nonEmpty,
  },
  {
    key: 'dnsServer',
    flag: 'dns-server',
    arg: '<host:port>',
    description: 'DNS server for discovery lookups',
    defaultText: 'the system resolver',
    fallback: () => undefined,
    parse: parseHostPort,
  },
  {
    key: 'join',
    flag: 'join',
    arg: '<url>',
    description: "Any member's URL, e.g. a load-balanced Service (join discovery); gossip teaches the rest",
    defaultText: 'none',
    fallback: () => undefined,
    parse: (raw) => {
      const v = raw.trim();
      if (!/^(https?:\/\/)?[A-Za-z0-9.[\]:-]+(:[0-9]{1,5})?\/?$/.test(v)) throw new Error('must look like http://host:port');
      return v;
    },
  },
  {
    key: 'discovery',
    flag: 'discovery',
    arg: '<kind>',
    description: 'How peers are found: static (--seeds), dns (--dns-name), statefulset (pod names), join (--join URL)',
    defaultText: 'join when --join is given, else static',
    fallback: (c) => (c.join !== undefined ? 'join' : 'static'),
    parse: (raw) => {
      const v = raw.trim();
      if (!(DISCOVERY_KINDS as readonly string[]).includes(v)) throw new Error(`must be one of ${DISCOVERY_KINDS.join(', ')}`);
      return v;
    },
  },
  {
    key: 'gossipIntervalMs',
    flag: 'gossip-interval-ms',
    arg: '<ms>',
    description: 'Pause between gossip rounds (one random peer each)',
    defaultText: `${DEFAULTS.gossipIntervalMs} (Cassandra's)`,
    fallback: () => DEFAULTS.gossipIntervalMs,
    parse: integer(10, 60_000),
  },
  {
    key: 'heartbeatIntervalMs',
    flag: 'heartbeat-interval-ms',
    arg: '<ms>',
    description: "Pause between bumps of this node's heartbeat",
    defaultText: String(DEFAULTS.heartbeatIntervalMs),
    fallback: () => DEFAULTS.heartbeatIntervalMs,
    parse: integer(10, 60_000),
  },
  {
    key: 'phiConvictThreshold',
    flag: 'phi-convict-threshold',
    arg: '<phi>',
    description: 'Failure-detector phi at which a member is marked down (suspect at half)',
    defaultText: `${DEFAULTS.phiConvictThreshold} (Cassandra's)`,
    fallback: () => DEFAULTS.phiConvictThreshold,
    parse: integer(1, 32),
  },
  {
    key: 'discoveryIntervalMs',
    flag: 'discovery-interval-ms',
    arg: '<ms>',
    description: 'First pause between discovery rounds; doubles while peers are missing',
    defaultText: String(DEFAULTS.discoveryIntervalMs),
    fallback: () => DEFAULTS.discoveryIntervalMs,
    parse: integer(10, 600_000),
  },
  {
    key: 'discoveryMaxIntervalMs',
    flag: 'discovery-max-interval-ms',
    arg: '<ms>',
    description: 'Longest pause between discovery rounds (also the re-check period once complete)',
    defaultText: String(DEFAULTS.discoveryMaxIntervalMs),
    fallback: () => DEFAULTS.discoveryMaxIntervalMs,
    parse: integer(10, 3_600_000),
  },
  {
    key: 'replicationFactor',
    flag: 'replication-factor',
    arg: '<n>',
    description: 'Replicas of each key (N)',
    defaultText: String(DEFAULTS.replicationFactor),
    fallback: () => DEFAULTS.replicationFactor,
    parse: integer(1, 15),
    alsoEnv: ['REPLICATION_FACTOR'],
  },
  {
    key: 'readQuorum',
    flag: 'read-quorum',
    arg: '<r>',
    description: 'Replies a read waits for by default (R)',
    defaultText: 'a majority of N',
    fallback: (c) => quorumOf(c.replicationFactor ?? DEFAULTS.replicationFactor),
    parse: integer(1, 15),
  },
  {
    key: 'writeQuorum',
    flag: 'write-quorum',
    arg: '<w>',
    description: 'Acknowledgements a write waits for by default (W)',
    defaultText: 'a majority of N',
    fallback: (c) => quorumOf(c.replicationFactor ?? DEFAULTS.replicationFactor),
    parse: integer(1, 15),
  },
  {
    key: 'vnodes',
    flag: 'vnodes',
    arg: '<n>',
    description: 'Ring tokens per node',
    defaultText: String(DEFAULTS.vnodes),
    fallback: () => DEFAULTS.vnodes,
    parse: integer(1, 1024),
  },
  {
    key: 'requestTimeoutMs',
    flag: 'request-timeout-ms',
    arg: '<ms>',
    description: 'Deadline of a client request, internode calls included',
    defaultText: String(DEFAULTS.requestTimeoutMs),
    fallback: () => DEFAULTS.requestTimeoutMs,
    parse: integer(50, 600_000),
  },
  {
    key: 'readRepair',
    flag: 'read-repair',
    arg: '[bool]',
    description: 'Bring stale replicas up to date when a read meets them',
    defaultText: 'true',
    fallback: () => true,
    parse: bool,
  },
  {
    key: 'sloppyQuorum',
    flag: 'sloppy-quorum',
    arg: '[bool]',
    description:
      'Writes for a down replica go to a substitute node as a hint that counts toward W (quorum reads may then miss them until delivered)',
    defaultText: 'false',
    fallback: () => false,
    parse: bool,
  },
  {
    key: 'hintWindowMs',
    flag: 'hint-window-ms',
    arg: '<ms>',
    description: 'No hints for a replica down longer than this, and none delivered older than this (anti-entropy repairs the rest)',
    defaultText: `${DEFAULTS.hintWindowMs} (3 h, Cassandra's)`,
    fallback: () => DEFAULTS.hintWindowMs,
    parse: integer(1000, 30 * 24 * 3600 * 1000),
  },
  {
    key: 'maxHintsPerNode',
    flag: 'max-hints-per-node',
    arg: '<n>',
    description: 'Hints kept for one replica at most; more are dropped and counted',
    defaultText: String(DEFAULTS.maxHintsPerNode),
    fallback: () => DEFAULTS.maxHintsPerNode,
    parse: integer(0, 100_000_000),
  },
  {
    key: 'hintDeliveryRate',
    flag: 'hint-delivery-rate',
    arg: '<per-second>',
    description: 'Hints delivered per second to one replica that is back',
    defaultText: String(DEFAULTS.hintDeliveryRate),
    fallback: () => DEFAULTS.hintDeliveryRate,
    parse: integer(1, 1_000_000),
  },
  {
    key: 'antiEntropyIntervalMs',
    flag: 'anti-entropy-interval-ms',
    arg: '<ms>',
    description: 'Pause between background anti-entropy passes over every shared range',
    defaultText: `${DEFAULTS.antiEntropyIntervalMs} (10 min)`,
    fallback: () => DEFAULTS.antiEntropyIntervalMs,
    parse: integer(100, 7 * 24 * 3600 * 1000),
  },
  {
    key: 'tombstoneGraceMs',
    flag: 'tombstone-grace-ms',
    arg: '<ms>',
    description: 'Age after which tombstones (and expired values) are purged; must exceed the longest time a replica can miss repair',
    defaultText: `${DEFAULTS.tombstoneGraceMs} (10 days, Cassandra's gc_grace)`,
    fallback: () => DEFAULTS.tombstoneGraceMs,
    parse: integer(1000, 365 * 24 * 3600 * 1000),
  },
  {
    key: 'maxValueBytes',
    flag: 'max-value-bytes',
    arg: '<bytes>',
    description: 'Largest value accepted (its JSON, in bytes)',
    defaultText: `${DEFAULTS.maxValueBytes} (1 MiB)`,
    fallback: () => DEFAULTS.maxValueBytes,
    parse: integer(LIMITS.minValueBytes, LIMITS.maxValueBytes),
  },
  {
    key: 'maxInflightRequests',
    flag: 'max-inflight-requests',
    arg: '<n>',
    description: 'Client requests coordinated at once; more get 503 overloaded',
    defaultText: String(DEFAULTS.maxInflightRequests),
    fallback: () => DEFAULTS.maxInflightRequests,
    parse: integer(1, 1_000_000),
  },
  {
    key: 'idlePollUs',
    flag: 'idle-poll-us',
    arg: '<us>',
    description:
      'After each request or internode frame, keep one CPU polling (at the lowest priority) for this long, so the next message does not ' +
      "wait for an idle virtual CPU to wake (ScyllaDB's --idle-poll-time-us). Costs CPU under light load (it counts against a CPU limit) and stands down while the node is busy; Linux only; 0 turns it off",
    defaultText: `${DEFAULTS.idlePollUs} (off)`,
    fallback: () => DEFAULTS.idlePollUs,
    parse: integer(0, 100_000),
  },
  {
    key: 'clusterSecret',
    flag: 'cluster-secret',
    arg: '<tokens>',
    description:
      'current[,next]: token a member must hold to be let in by the others, proven in the internode handshake (an HMAC; the token never crosses the wire). ' +
      'A node proves the first and accepts a peer proving either, so a rotation A -> B is two rolling restarts: A,B then B,A. Prefer the env var',
    defaultText: 'none (any peer is let in)',
    fallback: () => undefined,
    parse: parseTokenList,
    secret: true,
  },
  {
    key: 'adminToken',
    flag: 'admin-token',
    arg: '<tokens>',
    description:
      'current[,next]: bearer token of the /admin/* routes (Authorization: Bearer <token>; either is accepted, the CLI sends the first). ' +
      'With neither this nor --admin-from-loopback the admin routes refuse every request (403, naming both settings). The cluster secret does not open them',
    defaultText: 'none',
    fallback: () => undefined,
    parse: parseAdminTokenList,
    secret: true,
  },
  {
    key: 'adminFromLoopback',
    flag: 'admin-from-loopback',
    arg: '[bool]',
    description:
      'Let any caller from 127.0.0.0/8 or ::1 use /admin/* without a token (local clusters only: behind a service-mesh sidecar every client comes from loopback)',
    defaultText: 'false',
    fallback: () => false,
    parse: bool,
  },
  {
    key: 'tokensFile',
    flag: 'tokens-file',
    arg: '<file>',
    description:
      'Client authentication: a file of bearer tokens, one "<role> <token>" a line (role read, write or admin; "sha256:<hex>" for a token given by its digest). ' +
      'Every route but /health, /health/ready and /health/startup then needs Authorization: Bearer <token>. Re-read when it changes (a mounted Secret)',
    defaultText: 'none (client routes open)',
    fallback: () => undefined,
    parse: nonEmpty,
  },
  {
    key: 'tls',
    flag: 'tls',
    arg: '<where>',
    description:
      'TLS: client (HTTPS on the API port), internode (mutual TLS between members: a peer must show a certificate of --tls-ca), all, or off. ' +
      'Certificate, key and CA are re-read when their files change',
    defaultText: 'off',
    fallback: () => 'off',
    parse: (raw) => {
      const v = raw.trim();
      if (!(TLS_MODES as readonly string[]).includes(v)) throw new Error(`must be one of ${TLS_MODES.join(', ')}`);
      return v;
    },
  },
  {
    key: 'tlsCert',
    flag: 'tls-cert',
    arg: '<file>',
    description: "This node's certificate (PEM; the chain after it), for the API port and the internode port, as server and as client",
    defaultText: 'none',
    fallback: () => undefined,
    parse: nonEmpty,
  },
  {
    key: 'tlsKey',
    flag: 'tls-key',
    arg: '<file>',
    description: 'The private key of --tls-cert (PEM)',
    defaultText: 'none',
    fallback: () => undefined,
    parse: nonEmpty,
  },
  {
    key: 'tlsCa',
    flag: 'tls-ca',
    arg: '<file>',
    description:
      "The cluster's CA certificate(s) (PEM): a member's certificate must be signed by one (internode TLS); the CLI and probes verify the API with it",
    defaultText: 'none',
    fallback: () => undefined,
    parse: nonEmpty,
  },
  {
    key: 'logLevel',
    flag: 'log-level',
    arg: '<level>',
    description: `Log level: ${LOG_LEVELS.join(', ')}`,
    defaultText: 'info',
    fallback: () => 'info',
    parse: (raw) => {
      if (!LOG_LEVELS.includes(raw.trim())) throw new Error(`must be one of ${LOG_LEVELS.join(', ')}`);
      return raw.trim();
    },
  },
];

export function envName(flag: string): string {
  return `QUORUMKV_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/** Flag values as commander gives them: camelCase keys, strings, undefined when not given. */
export type Flags = Partial<Record<keyof ServeConfig, Raw>>;

/**
 * Resolves every setting: flag, then QUORUMKV_<FLAG>, then the extra env names, then the default.
 * Collects every problem before failing, so one run shows them all.
 */
export function loadConfig(flags: Flags, env: Record<string, Raw>): ServeConfig {
  const problems: string[] = [];
  const values: Partial<Record<keyof ServeConfig, Parsed>> = {};
  for (const s of SETTINGS) {
    const sources: Array<[string, Raw]> = [
      [`--${s.flag}`, flags[s.key]],
      [envName(s.flag), env[envName(s.flag)]],
      ...(s.alsoEnv ?? []).map((e): [string, Raw] => [e, env[e]]),
    ];
    const found = sources.find(([, v]) => v !== undefined);
    try {
      values[s.key] = found ? s.parse(found[1] as string) : s.fallback(values as Partial<ServeConfig>, env);
    } catch (err) {
      const origin = found ? `from ${found[0]}: ` : '';
      const got = found ? `; got ${s.secret ? '(hidden)' : JSON.stringify(found[1])}` : '';
      problems.push(`--${s.flag} (${envName(s.flag)}): ${origin}${(err as Error).message}${got}`);
    }
  }
  const c = values as ServeConfig;
  if (problems.length === 0) problems.push(...discoveryProblems(c));
  for (const [key, flag] of [
    ['readQuorum', 'read-quorum'],
    ['writeQuorum', 'write-quorum'],
  ] as const) {
    if (c[key] > c.replicationFactor) {
      problems.push(`--${flag} (${envName(flag)}): must not exceed --replication-factor (${c.replicationFactor}); got ${c[key]}`);
    }
  }
  if (c.internodePort !== undefined && c.internodePort === c.port) {
    problems.push(`--internode-port (${envName('internode-port')}): must differ from --port (${c.port})`);
  }
  if (c.maxValueBytes !== undefined && c.hintWindowMs !== undefined && c.tombstoneGraceMs !== undefined) {
    for (const p of checkLimits(c)) {
      const flag = (SETTINGS.find((s) => s.key === p.setting) as Setting).flag;
      problems.push(`--${flag} (${envName(flag)}): ${p.message}`);
    }
  }
  problems.push(...tlsProblems(c));
  if (problems.length > 0) throw new ConfigError(problems);
  return c;
}

/** The files each TLS mode needs, and no TLS file without a mode that uses it. */
function tlsProblems(c: ServeConfig): string[] {
  if (c.tls === undefined) return [];
  const out: string[] = [];
  const need = (key: 'tlsCert' | 'tlsKey' | 'tlsCa', flag: string, why: string) => {
    if (c[key] === undefined) out.push(`--${flag} (${envName(flag)}): required with --tls ${c.tls} (${why})`);
  };
  if (c.tls !== 'off') {
    need('tlsCert', 'tls-cert', "this node's certificate");
    need('tlsKey', 'tls-key', 'its private key');
  }
  if (internodeTls(c.tls)) need('tlsCa', 'tls-ca', "the cluster's CA, which signs every member's certificate");
  if (c.tls === 'off') {
    const given = (['tls-cert', 'tls-key', 'tls-ca'] as const).filter(
      (f) => c[f === 'tls-cert' ? 'tlsCert' : f === 'tls-key' ? 'tlsKey' : 'tlsCa'] !== undefined,
    );
    if (given.length > 0)
      out.push(
        `--tls (${envName('tls')}): is off, yet ${given.map((f) => `--${f}`).join(', ')} ${given.length > 1 ? 'are' : 'is'} set: say where TLS goes (client, internode or all), or drop the file settings`,
      );
  }
  return out;
}

/** Settings each discovery kind needs. */
function discoveryProblems(c: ServeConfig): string[] {
  const need = (flag: string, what: string) => `--${flag} (${envName(flag)}): required with --discovery ${c.discovery} (${what})`;
  switch (c.discovery) {
    case 'dns':
      return c.dnsName === undefined ? [need('dns-name', 'the name whose records list the pods')] : [];
    case 'join':
      return c.join === undefined ? [need('join', 'the URL of any member')] : [];
    case 'statefulset': {
      const out: string[] = [];
      if (c.expectedReplicas === undefined) out.push(need('expected-replicas', "the StatefulSet's replicas"));
      if (!/-[0-9]+$/.test(c.nodeId)) {
        out.push(
          `--node-id (${envName('node-id')}): with --discovery statefulset it must be a pod name ending in -<ordinal> (POD_NAME); got ${JSON.stringify(c.nodeId)}`,
        );
      }
      return out;
    }
    case 'static':
      return [];
  }
}

/** The config as it may be logged: every element of every secret setting masked (their count shows). */
export function redacted(c: ServeConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { ...c };
  for (const s of SETTINGS) {
    const v = c[s.key];
    if (s.secret && v !== undefined) out[s.key] = Array.isArray(v) ? v.map(() => '(hidden)') : '(hidden)';
  }
  return out;
}
