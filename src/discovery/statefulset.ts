// Peers of a StatefulSet pod, named rather than listed: pod i of StatefulSet `base` behind the
// governing headless Service is `${base}-${i}.${service}.${namespace}.svc.${clusterDomain}`. Each
// name resolves once its pod exists, ready or not (publishNotReadyAddresses), so a pod can count
// the pods created so far and find them before any of them is ready, as the seed design does
// with gethostbyname.

import { assertPort, describeLookupError, hostPort } from './address';
import type { Candidates, Discovery } from './discovery';
import type { Resolver } from './resolver';

export interface StatefulSetDiscoveryOptions {
  /** This pod's name (`$POD_NAME`, e.g. `quorumkv-2`): the StatefulSet's name, a dash, the ordinal. */
  podName: string;
  /** The StatefulSet's spec.replicas. */
  replicas: number;
  /** The governing headless Service (spec.serviceName). */
  service: string;
  namespace: string;
  /** Usually `cluster.local`. */
  clusterDomain: string;
  port: number;
  resolver: Resolver;
}

export class StatefulSetDiscovery implements Discovery {
  readonly name = 'statefulset';
  /** The StatefulSet's name: the pod name without `-<ordinal>`. */
  readonly base: string;
  readonly ordinal: number;
  private readonly opts: StatefulSetDiscoveryOptions;

  constructor(opts: StatefulSetDiscoveryOptions) {
    // No leading zeros: the StatefulSet controller never makes `kv-02`, so such a name is a typo.
    const match = /^(.+)-(0|[1-9][0-9]*)$/.exec(opts.podName);
    if (!match?.[1] || !match[2]) {
      throw new Error(
        `pod name "${opts.podName}" must end in -<ordinal> as StatefulSet pods do (e.g. quorumkv-0); set POD_NAME from metadata.name`,
      );
    }
    if (!Number.isInteger(opts.replicas) || opts.replicas < 1) {
      throw new Error(`StatefulSet replicas must be an integer ≥ 1, got ${opts.replicas}`);
    }
    for (const field of ['service', 'namespace', 'clusterDomain'] as const) {
      if (opts[field].length === 0) throw new Error(`StatefulSet discovery needs a ${field}`);
    }
    assertPort(opts.port, 'StatefulSet discovery port');
    this.base = match[1];
    this.ordinal = Number(match[2]);
    // An ordinal ≥ replicas is allowed: after `kubectl scale` up without updating the replica
    // setting, the new pods still join the first `replicas` ones rather than crash-loop.
    this.opts = opts;
  }

  /** The DNS name of every pod of the StatefulSet, this one included, by ordinal. */
  podNames(): string[] {
    const { replicas, service, namespace, clusterDomain } = this.opts;
    return Array.from({ length: replicas }, (_, i) => `${this.base}-${i}.${service}.${namespace}.svc.${clusterDomain}`);
  }

  async candidates(): Promise<Candidates> {
    const others = this.podNames().filter((_, i) => i !== this.ordinal);
    const results = await Promise.all(others.map((name) => this.lookup(name)));
    const addresses: string[] = [];
    const problems: string[] = [];
    // Ordinal order: deterministic, and pod 0, the usual first member, comes first.
    for (const r of results) {
      if (r.ip !== undefined) addresses.push(hostPort(r.ip, this.opts.port));
      else problems.push(r.problem);
    }
    return { addresses, problems };
  }

  /** How many of the `replicas` pod names (this pod's included) resolve right now, i.e. how many pods exist. */
  async podsThatExist(): Promise<number> {
    const results = await Promise.all(this.podNames().map((name) => this.lookup(name)));
    return results.filter((r) => r.ip !== undefined).length;
  }

  private async lookup(name: string): Promise<{ ip: string; problem?: undefined } | { ip?: undefined; problem: string }> {
    try {
      const [ip] = await this.opts.resolver.resolve4(name);
      if (ip === undefined) return { problem: `A ${name}: no addresses` };
      return { ip };
    } catch (err) {
      // Most often ENOTFOUND: the pod has not been created yet.
      return { problem: describeLookupError('A', name, err) };
    }
  }
}
