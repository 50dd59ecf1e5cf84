// Every `quorumkv serve` setting in one table: its flag, its environment fallback
// (QUORUMKV_<FLAG>), its default and why, and its validation. A bad value stops the process with a
// message naming the flag, the variable and what would be valid. README's table is this table.

import { hostname } from 'node:os';
import path from 'node:path';
import { quorumOf } from './core/quorum';

export interface ServeConfig {
  nodeId: string;
  host: string;
  port: number;
  advertiseAddress: string;
  dataDir: string;
  seeds: string[];
  replicationFactor: number;
  readQuorum: number;
  writeQuorum: number;
  vnodes: number;
  requestTimeoutMs: number;
  seedRetryMs: number;
  maxValueBytes: number;
  maxInflightRequests: number;
  clusterSecret: string | undefined;
  logLevel: string;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
}

type Raw = string | undefined;
type Parsed = string | number | string[] | undefined;

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

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):([0-9]{1,5})$/;

function integer(min: number, max: number): (raw: string) => number {
  return (raw) => {
    const n = /^-?[0-9]+$/.test(raw.trim()) ? Number(raw.trim()) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new Error(`must be an integer from ${min} to ${max}`);
    return n;
  };
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
    key: 'replicationFactor',
    flag: 'replication-factor',
    arg: '<n>',
    description: 'Replicas of each key (N)',
    defaultText: '3',
    fallback: () => 3,
    parse: integer(1, 15),
    alsoEnv: ['REPLICATION_FACTOR'],
  },
  {
    key: 'readQuorum',
    flag: 'read-quorum',
    arg: '<r>',
    description: 'Replies a read waits for by default (R)',
    defaultText: 'a majority of N',
    fallback: (c) => quorumOf(c.replicationFactor ?? 3),
    parse: integer(1, 15),
  },
  {
    key: 'writeQuorum',
    flag: 'write-quorum',
    arg: '<w>',
    description: 'Acknowledgements a write waits for by default (W)',
    defaultText: 'a majority of N',
    fallback: (c) => quorumOf(c.replicationFactor ?? 3),
    parse: integer(1, 15),
  },
  {
    key: 'vnodes',
    flag: 'vnodes',
    arg: '<n>',
    description: 'Ring tokens per node',
    defaultText: '64',
    fallback: () => 64,
    parse: integer(1, 1024),
  },
  {
    key: 'requestTimeoutMs',
    flag: 'request-timeout-ms',
    arg: '<ms>',
    description: 'Deadline of a client request, internode calls included',
    defaultText: '2000',
    fallback: () => 2000,
    parse: integer(50, 600_000),
  },
  {
    key: 'seedRetryMs',
    flag: 'seed-retry-ms',
    arg: '<ms>',
    description: 'Pause between hellos to seeds not yet reached',
    defaultText: '1000',
    fallback: () => 1000,
    parse: integer(10, 600_000),
  },
  {
    key: 'maxValueBytes',
    flag: 'max-value-bytes',
    arg: '<bytes>',
    description: 'Largest value accepted (its JSON, in bytes)',
    defaultText: '1048576 (1 MiB)',
    fallback: () => 1024 * 1024,
    parse: integer(1, 64 * 1024 * 1024),
  },
  {
    key: 'maxInflightRequests',
    flag: 'max-inflight-requests',
    arg: '<n>',
    description: 'Client requests coordinated at once; more get 503 overloaded',
    defaultText: '1024',
    fallback: () => 1024,
    parse: integer(1, 1_000_000),
  },
  {
    key: 'clusterSecret',
    flag: 'cluster-secret',
    arg: '<token>',
    description: 'Token peers must present on /internal routes (prefer the env var)',
    defaultText: 'none (internal routes open)',
    fallback: () => undefined,
    parse: nonEmpty,
    secret: true,
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
  for (const [key, flag] of [
    ['readQuorum', 'read-quorum'],
    ['writeQuorum', 'write-quorum'],
  ] as const) {
    if (c[key] > c.replicationFactor) {
      problems.push(`--${flag} (${envName(flag)}): must not exceed --replication-factor (${c.replicationFactor}); got ${c[key]}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return c;
}

/** The config as it may be logged (secret masked). */
export function redacted(c: ServeConfig): Record<string, unknown> {
  return { ...c, clusterSecret: c.clusterSecret ? '(set)' : undefined };
}
