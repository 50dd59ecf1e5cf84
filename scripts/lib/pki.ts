// Certificates for tests and the StatefulSet simulator, made with the real `openssl` (Debian's
// openssl package): a cluster CA, member certificates it signs (EC P-256: fast to make), and the
// bad ones a member must refuse (another CA's, an expired one). What cert-manager's CA Issuer
// does in a cluster (k8s/overlays/prod/certificates.yaml).

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface CertFiles {
  cert: string;
  key: string;
  /** The CA that signed it. */
  ca: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
}

/** A CA: a self-signed certificate and its key, in `dir/<name>.crt` and `dir/<name>.key`. */
export function makeCa(dir: string, name = 'ca'): { cert: string; key: string } {
  mkdirSync(dir, { recursive: true });
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`], dir);
  openssl(['req', '-x509', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-days', '30', '-out', `${name}.crt`], dir);
  return { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
}

/**
 * A certificate signed by `ca` for `name`, valid for `days` (negative: it expired that long ago),
 * for server and client use, naming `ips` and `dnsNames` (localhost is always one).
 */
export function makeCert(
  dir: string,
  ca: { cert: string; key: string },
  name: string,
  opts: { ips?: string[]; dnsNames?: string[]; days?: number } = {},
): CertFiles {
  mkdirSync(dir, { recursive: true });
  const san = [...['localhost', ...(opts.dnsNames ?? [])].map((d) => `DNS:${d}`), ...(opts.ips ?? []).map((ip) => `IP:${ip}`)].join(',');
  writeFileSync(
    path.join(dir, `${name}.ext`),
    `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n`,
  );
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`], dir);
  openssl(['req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`], dir);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      ca.cert,
      '-CAkey',
      ca.key,
      '-CAcreateserial',
      '-days',
      String(opts.days ?? 30),
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    ],
    dir,
  );
  return { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`), ca: ca.cert };
}

/** The PEM text of each file, for the checks that no output holds any of it. */
export function pemBodies(files: string[]): string[] {
  return files.map((f) =>
    readFileSync(f, 'utf8')
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('-----'))
      .join(''),
  );
}
