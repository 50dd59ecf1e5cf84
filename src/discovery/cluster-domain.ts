// The cluster DNS domain, as a pod can read it about itself. kubelet writes every pod's
// /etc/resolv.conf with the search path `<namespace>.svc.<domain> svc.<domain> <domain>`
// (ClusterFirst DNS policy), so the domain is whatever follows `svc.` in the search entry that
// starts with it. Reading it, rather than assuming cluster.local, keeps statefulset discovery right
// on clusters set up with another domain, where the assumed names resolve to nothing and each pod
// would otherwise find no peer.

import { readFileSync } from 'node:fs';

/** Used when neither the setting nor the resolver configuration names one (Kubernetes' default). */
export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';
export const RESOLV_CONF = '/etc/resolv.conf';

/**
 * The domain in a resolv.conf text: `svc.<domain>` among the search entries (the last `search`
 * line counts, as for the libc resolver). Undefined when there is none (not a pod, or a pod with
 * another DNS policy).
 */
export function clusterDomainFromResolvConf(text: string): string | undefined {
  let search: string[] = [];
  for (const line of text.split('\n')) {
    const words = line
      .replace(/[#;].*$/, '')
      .trim()
      .split(/\s+/);
    if (words[0] === 'search' || words[0] === 'domain') search = words.slice(1);
  }
  for (const entry of search) {
    const name = entry.replace(/\.$/, '').toLowerCase();
    if (name.startsWith('svc.') && name.length > 'svc.'.length) return name.slice('svc.'.length);
  }
  return undefined;
}

/** The domain this machine's resolver configuration names, else cluster.local. */
export function systemClusterDomain(file = RESOLV_CONF): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return DEFAULT_CLUSTER_DOMAIN;
  }
  return clusterDomainFromResolvConf(text) ?? DEFAULT_CLUSTER_DOMAIN;
}
