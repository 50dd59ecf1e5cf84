// Quorum decisions for coordinator-driven reads and writes (Dynamo §4.5). Decides, does nothing.

export type Consistency = 'one' | 'quorum' | 'all';
export const CONSISTENCY_LEVELS: readonly Consistency[] = ['one', 'quorum', 'all'];

/** A strict majority of n replicas. */
export function quorumOf(n: number): number {
  return Math.floor(n / 2) + 1;
}

/** The number of replicas a consistency level asks for, out of n. */
export function replicasFor(level: Consistency, n: number): number {
  switch (level) {
    case 'one':
      return 1;
    case 'quorum':
      return quorumOf(n);
    case 'all':
      return n;
  }
}

export type Outcome = 'pending' | 'ok' | 'failed';

/**
 * A write to `total` replicas that needs `w` acknowledgements: ok once w have acked; failed as
 * soon as too few replicas are left that could still ack.
 */
export function writeOutcome(acks: number, failures: number, total: number, w: number): Outcome {
  if (acks >= w) return 'ok';
  if (total - failures < w) return 'failed';
  return 'pending';
}

export type Operation = 'read' | 'write';

/** Per-request consistency as the client asked for it (raw query-string values). */
export interface ConsistencyParams {
  consistency?: string | undefined;
  r?: string | undefined;
  w?: string | undefined;
}

/**
 * How many replicas must answer an operation, from `?consistency=` or `?r=` / `?w=`, or the
 * node's default. Returns the reason when the request asks for something impossible.
 */
export function requiredReplicas(
  op: Operation,
  params: ConsistencyParams,
  n: number,
  defaultRequired: number,
): { required: number } | { error: string } {
  const own = op === 'read' ? 'r' : 'w';
  const other = op === 'read' ? 'w' : 'r';
  if (params[other] !== undefined) {
    return { error: `${other} applies to ${op === 'read' ? 'writes' : 'reads'}; a ${op} takes ${own} or consistency` };
  }
  const count = params[own];
  if (params.consistency !== undefined && count !== undefined) {
    return { error: `give either consistency or ${own}, not both` };
  }
  if (params.consistency !== undefined) {
    const level = params.consistency as Consistency;
    if (!CONSISTENCY_LEVELS.includes(level)) {
      return { error: `consistency must be one of ${CONSISTENCY_LEVELS.join(', ')}; got ${JSON.stringify(params.consistency)}` };
    }
    return { required: replicasFor(level, n) };
  }
  if (count !== undefined) {
    const value = /^[0-9]{1,4}$/.test(count) ? Number(count) : Number.NaN;
    if (!(value >= 1 && value <= n)) {
      return { error: `${own} must be an integer from 1 to ${n} (the replication factor); got ${JSON.stringify(count)}` };
    }
    return { required: value };
  }
  return { required: defaultRequired };
}
