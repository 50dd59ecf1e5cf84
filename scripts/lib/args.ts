// Command-line options of the scripts: `--name value`, read from an argv as it is.

export interface ArgReader {
  /** The value after `--name`, or undefined when the option is absent. */
  get(name: string): string | undefined;
  /** A whole number ≥ 0 after `--name`, `fallback` when absent; anything else throws, naming the option. */
  num(name: string, fallback: number): number;
  /** The `--options` given that are not in `known` (a typo would otherwise be ignored silently). */
  unknown(known: readonly string[]): string[];
}

export function argReader(argv: readonly string[]): ArgReader {
  const get = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const num = (name: string, fallback: number) => {
    const v = get(name);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number, got ${JSON.stringify(v)}`);
    return n;
  };
  const unknown = (known: readonly string[]) => argv.filter((a) => a.startsWith('--') && !known.includes(a.slice(2)));
  return { get, num, unknown };
}
