// Network partitions between real processes on loopback, with iptables (scripts/chaos.ts).
//
// On loopback every connection leaves from 127.0.0.1 whatever address the process listens on (the
// nodes do not bind their outgoing sockets), so a rule `-s <node A> -d <node B>` never matches: a
// node's packets are told apart by the user it runs as instead (iptables' owner match, which only
// works on the OUTPUT chain, where loopback packets are made). Every rule lives in one chain of our
// own, hooked into OUTPUT, so healing is one step: flush the chain, unhook it, delete it.

import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
/** Waits this long for the xtables lock that other iptables users may hold. */
const LOCK_WAIT_S = '10';

/** The iptables binary, or undefined: PATH first, then the sbin directories a non-login PATH lacks. */
export function findIptables(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const p = path.join(dir, 'iptables');
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** One node's place in a partition: the address it listens on and the uid its process runs as. */
export interface Endpoint {
  id: string;
  host: string;
  uid: number;
}

/**
 * How a node is cut off from the others:
 *   - isolate: no packet between it and the others, either way;
 *   - cut-out: its own requests to the others are lost; theirs reach it and its answers get back
 *     (it hears everyone, so every failure detector keeps it alive: a gray failure);
 *   - cut-in:  the others' requests to it are lost; its own reach them.
 * Answers on a connection go to the asker's source address, 127.0.0.1, so a rule on the requester's
 * packets to the other's address cuts exactly the connections that requester opens.
 */
export type PartitionShape = 'isolate' | 'cut-out' | 'cut-in';
export const PARTITION_SHAPES: readonly PartitionShape[] = ['isolate', 'cut-out', 'cut-in'];

/** The rules (arguments after `-A <chain>`) that cut `target` off from `others`. */
export function partitionRules(shape: PartitionShape, target: Endpoint, others: Endpoint[]): string[][] {
  const from = (a: Endpoint, b: Endpoint) => ['-m', 'owner', '--uid-owner', String(a.uid), '-d', b.host, '-j', 'DROP'];
  const out = others.map((o) => from(target, o));
  const inward = others.map((o) => from(o, target));
  if (shape === 'isolate') return [...out, ...inward];
  return shape === 'cut-out' ? out : inward;
}

export class PartitionChain {
  private hooked = false;

  constructor(
    readonly chain: string,
    private readonly bin: string,
  ) {}

  private iptables(args: string[]): Promise<unknown> {
    return run(this.bin, ['-w', LOCK_WAIT_S, ...args], { timeout: 20_000 });
  }

  /**
   * Whether this process may change the rules: creates the chain and deletes it again (after
   * removing one a killed earlier run left behind). Resolves to the reason when it may not.
   */
  async probe(): Promise<string | undefined> {
    this.healSync();
    try {
      await this.iptables(['-N', this.chain]);
      await this.iptables(['-X', this.chain]);
      return undefined;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      return (e.stderr || e.message).trim().split('\n')[0];
    }
  }

  /** Creates the chain with `rules`, and hooks it first into OUTPUT. */
  async apply(rules: string[][]): Promise<void> {
    await this.iptables(['-N', this.chain]);
    this.hooked = true; // from here on, heal() has something to undo
    for (const r of rules) await this.iptables(['-A', this.chain, ...r]);
    await this.iptables(['-I', 'OUTPUT', '-j', this.chain]);
  }

  /**
   * Removes every trace of the chain; harmless when there is none. Synchronous on purpose: it must
   * also run from signal and exit handlers, where nothing asynchronous gets to finish.
   */
  healSync(): void {
    const quiet = (args: string[]) => {
      try {
        execFileSync(this.bin, ['-w', LOCK_WAIT_S, ...args], { stdio: 'ignore', timeout: 20_000 });
        return true;
      } catch {
        return false;
      }
    };
    quiet(['-F', this.chain]);
    // hooked once per apply; the bound guards against a rule that cannot be deleted
    for (let i = 0; i < 8 && quiet(['-D', 'OUTPUT', '-j', this.chain]); i++) {}
    quiet(['-X', this.chain]);
    this.hooked = false;
  }

  /** Whether rules of this chain may be in place. */
  get active(): boolean {
    return this.hooked;
  }

  /** `iptables -S` of the chain and of OUTPUT, for the record; '' when the chain does not exist. */
  async listing(): Promise<string> {
    try {
      const { stdout } = (await run(this.bin, ['-w', LOCK_WAIT_S, '-S'], { timeout: 20_000 })) as { stdout: string };
      return stdout
        .split('\n')
        .filter((l) => l.includes(this.chain))
        .join('\n');
    } catch {
      return '';
    }
  }
}
