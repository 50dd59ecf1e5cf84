// Peers of a StatefulSet pod, named rather than listed: pod i of StatefulSet `base` behind the
// governing headless Service is `${base}-${i}.${service}.${namespace}.svc.${clusterDomain}`. Each
// name resolves once its pod exists, ready or not (publishNotReadyAddresses), so a pod can count
// the pods created so far and find them before any of them is ready, as the seed design does
// with gethostbyname. A pod without an IPv4 address (an IPv6-only cluster) is found by its AAAA
// record.
//
// This pod's own name must resolve too: it is the proof that the settings name the StatefulSet's
// real headless Service, namespace and cluster domain. When they do not, every sibling's name
// fails as well, and a pod that took that for "no peer exists yet" would start a cluster of its
// own, pass its probes and serve behind the client Service beside the others, each alone. So an
// own name that does not exist is reported (`selfProblem`): the node does not start or join a
// cluster, and its startup probe fails saying which setting to check.

import { assertPort, describeLookupError, dnsCode, hostPort, LookupError, resolveAddresses } from './address';
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
  /** Usually `cluster.local`; a pod reads it from its resolv.conf (cluster-domain.ts). */
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

  /** This pod's own DNS name. */
  selfName(): string {
    const { service, namespace, clusterDomain } = this.opts;
    return `${this.base}-${this.ordinal}.${service}.${namespace}.svc.${clusterDomain}`;
  }

  async candidates(): Promise<Candidates> {
    const others = this.podNames().filter((_, i) => i !== this.ordinal);
    const [self, ...results] = await Promise.all([this.lookup(this.selfName()), ...others.map((name) => this.lookup(name))]);
    const addresses: string[] = [];
    const problems: string[] = [];
    // Ordinal order: deterministic, and pod 0, the usual first member, comes first.
    for (const r of results) {
      if (r.ip !== undefined) addresses.push(hostPort(r.ip, this.opts.port));
      else problems.push(r.problem);
    }
    const selfProblem = self?.ip === undefined && self?.missing ? this.describeMissingSelf(self.problem) : undefined;
    return selfProblem === undefined ? { addresses, problems } : { addresses, problems, selfProblem };
  }

  /** What to check when this pod's own name does not exist: the settings it is built from. */
  private describeMissingSelf(problem: string): string {
    const { service, namespace, clusterDomain } = this.opts;
    return (
      `this pod's own DNS name does not exist (${problem}): --headless-service (QUORUMKV_HEADLESS_SERVICE) ` +
      `"${service}" must be the StatefulSet's spec.serviceName, a headless Service in namespace "${namespace}" ` +
      `(--namespace, POD_NAMESPACE), and --cluster-domain (QUORUMKV_CLUSTER_DOMAIN) "${clusterDomain}" the cluster's DNS domain`
    );
  }

  /** How many of the `replicas` pod names (this pod's included) resolve right now, i.e. how many pods exist. */
  async podsThatExist(): Promise<number> {
    const results = await Promise.all(this.podNames().map((name) => this.lookup(name)));
    return results.filter((r) => r.ip !== undefined).length;
  }

  /**
   * The pod's address; or the problem, and whether DNS answered that the name has no address
   * (`missing`: no such name, or no records), as opposed to not answering at all.
   */
  private async lookup(
    name: string,
  ): Promise<{ ip: string; problem?: undefined; missing?: undefined } | { ip?: undefined; problem: string; missing: boolean }> {
    try {
      const [ip] = await resolveAddresses(this.opts.resolver, name);
      if (ip === undefined) return { problem: `A ${name}: no addresses`, missing: true };
      return { ip };
    } catch (err) {
      // Most often ENOTFOUND: the pod has not been created yet.
      const code = dnsCode(err);
      const problem = err instanceof LookupError ? err.message : describeLookupError('A', name, err);
      return { problem, missing: code === 'ENOTFOUND' || code === 'ENODATA' };
    }
  }
}
