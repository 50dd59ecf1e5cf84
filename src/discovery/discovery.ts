// What every way of finding peers has in common. The membership loop asks a Discovery for
// addresses to try, says hello to them, and asks again later; a provider only finds addresses.

export interface Candidates {
  /** host:port strings to try joining now; the host is an IP wherever the provider resolved a name. */
  addresses: string[];
  /** Human-readable reasons some names did not resolve (for logs); never throws for those. */
  problems: string[];
  /**
   * Set when the settings cannot be right: this node's own name, which the provider expects to
   * resolve, does not exist (statefulset: the headless Service, namespace or cluster domain is
   * wrong). The node must then neither start a cluster nor join one, and say this in its startup probe.
   */
  selfProblem?: string;
}

export interface Discovery {
  /** 'static' | 'dns' | 'statefulset' | 'join' */
  readonly name: string;
  /** Never rejects: resolution failures go into `problems`. Must finish within the resolver's timeout. */
  candidates(): Promise<Candidates>;
  /**
   * How many pods of the cluster exist right now (this one included), for the two-phase
   * readiness rule; absent when the provider cannot tell (static seeds, a join URL).
   */
  podsThatExist?(): Promise<number>;
}
