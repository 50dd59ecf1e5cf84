// Invariants inside core (TigerBeetle style): a violated one is a bug, so it throws loudly
// instead of letting the node go on with corrupt state.

export class InvariantError extends Error {
  override name = 'InvariantError';
}

export default function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantError(message);
}
