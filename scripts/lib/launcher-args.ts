// The command line of `npm start` (scripts/cluster.ts): the launcher's own options, and any flag
// of `quorumkv serve`, which every node gets. `npm start -- --replication-factor 2` is what people
// type; `npm start -- -- --replication-factor 2` (the old spelling) still works. Anything else is
// refused with a message, never ignored.

import { SETTINGS } from '../../src/config';

export interface LauncherArgs {
  nodes: number;
  basePort: number;
  /** As given (relative to the working directory); undefined: the repository's ./data. */
  data: string | undefined;
  /** `quorumkv serve` flags for every node, as `--flag value` pairs (a bare boolean flag as `--flag true`). */
  serveArgs: string[];
  /** The serve flags by setting key, for validating them with loadConfig before any node starts. */
  serveFlags: Record<string, string>;
}

const OWN = {
  nodes: 'how many nodes (default 3)',
  'base-port': 'API port of the first node; the others follow (default 8081)',
  data: 'directory holding one data directory per node (default ./data)',
} as const;

/** Serve flags the launcher sets per node: giving them for all nodes at once cannot work. */
const PER_NODE: Record<string, string> = {
  'node-id': 'the launcher names the nodes n1, n2, ...',
  host: 'the local cluster listens on 127.0.0.1',
  port: 'use --base-port: node i listens on base-port + i - 1',
  'internode-port': 'each node uses its API port + 1000',
  'advertise-address': 'each node advertises its own 127.0.0.1:<port>',
  'data-dir': 'use --data: node n<i> keeps its data in <data>/n<i>',
  seeds: 'the nodes are each other’s seeds',
};

export function usage(): string {
  return [
    'usage: npm start -- [launcher options] [quorumkv serve flags]',
    '',
    'launcher options:',
    ...Object.entries(OWN).map(([f, d]) => `  --${f.padEnd(10)} ${d}`),
    '',
    'any flag of `quorumkv serve --help` but --node-id, --host, --port, --internode-port, --advertise-address, --data-dir',
    'and --seeds goes to every node, e.g. npm start -- --replication-factor 2 --log-level debug',
  ].join('\n');
}

/** The closest known flag to a mistyped one, when it is close enough to be a typo. */
function suggestion(name: string): string | undefined {
  const known = [...Object.keys(OWN), ...SETTINGS.map((s) => s.flag).filter((f) => !(f in PER_NODE))];
  let best: { flag: string; d: number } | undefined;
  for (const flag of known) {
    const d = editDistance(name, flag);
    if (best === undefined || d < best.d) best = { flag, d };
  }
  return best !== undefined && best.d <= Math.max(2, Math.floor(name.length / 4)) ? best.flag : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length] as number;
}

function wholeNumber(flag: string, raw: string, min: number, max: number): number {
  const n = /^[0-9]+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(n >= min && n <= max)) throw new Error(`--${flag} must be a whole number from ${min} to ${max}; got ${JSON.stringify(raw)}`);
  return n;
}

/** Reads the launcher's argv (after the script name); throws an Error whose message says what is wrong. */
export function parseLauncherArgs(argv: readonly string[]): LauncherArgs {
  const out: LauncherArgs = { nodes: 3, basePort: 8081, data: undefined, serveArgs: [], serveFlags: {} };
  const settings = new Map(SETTINGS.map((s) => [s.flag, s]));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') continue; // npm start -- -- --flag: the old spelling
    if (!arg.startsWith('--') || arg === '--') throw new Error(`unexpected argument ${JSON.stringify(arg)}: options are --name value`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const inline = eq < 0 ? undefined : arg.slice(eq + 1);
    const next = argv[i + 1];
    const setting = settings.get(name);
    const optionalValue = setting?.arg.startsWith('[') === true;
    const takesNext = inline === undefined && next !== undefined && !(optionalValue && next.startsWith('--'));
    let value: string | undefined = inline;
    if (value === undefined && takesNext) {
      value = next;
      i++;
    }
    if (name in OWN) {
      if (value === undefined) throw new Error(`--${name} needs a value: ${OWN[name as keyof typeof OWN]}`);
      if (name === 'nodes') out.nodes = wholeNumber(name, value, 1, 15);
      else if (name === 'base-port') out.basePort = wholeNumber(name, value, 1, 65535 - 16);
      else out.data = value;
      continue;
    }
    if (name in PER_NODE) throw new Error(`--${name} is set by the launcher for each node (${PER_NODE[name]})`);
    if (setting === undefined) {
      const near = suggestion(name);
      throw new Error(`unknown option --${name}${near ? ` (did you mean --${near}?)` : ''}`);
    }
    if (value === undefined) {
      if (!optionalValue) throw new Error(`--${name} needs a value ${setting.arg}`);
      value = 'true';
    }
    out.serveArgs.push(`--${name}`, value);
    out.serveFlags[setting.key] = value;
  }
  return out;
}
