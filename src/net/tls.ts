// TLS material from files: this node's certificate and key, and the cluster's CA. The API port
// serves HTTPS with the certificate; the internode port runs mutual TLS, where each side shows
// its certificate and checks the other's against the CA.
//
// Members are verified by their certificate's chain to the cluster's CA, not by host name: a
// member is reached at its pod IP, which changes across restarts and which no certificate
// issued ahead of time can name (Cassandra's internode encryption does the same unless
// require_endpoint_verification is set). So the CA must be this cluster's own (a cert-manager CA
// Issuer of its own): whoever holds a certificate it signed is a member. The cluster token's HMAC
// handshake still runs inside the TLS connection (protocol.ts): a second, independent proof, and
// the one that carries the protocol versions.

import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { readBounded } from '../file-watch';

export interface TlsFiles {
  cert: string;
  key: string;
  ca: string | undefined;
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | undefined;
}

export const TLS_SETTINGS = { cert: '--tls-cert', key: '--tls-key', ca: '--tls-ca' } as const;

export function readTlsMaterial(files: TlsFiles): TlsMaterial {
  return {
    cert: readBounded(files.cert, TLS_SETTINGS.cert),
    key: readBounded(files.key, TLS_SETTINGS.key),
    ca: files.ca === undefined ? undefined : readBounded(files.ca, TLS_SETTINGS.ca),
  };
}

/**
 * Checks that the material makes a usable context (PEM that parses, a key that matches the
 * certificate) and says what the certificate is, for the log: subject, issuer, expiry,
 * fingerprint. Never the key or the certificate's body. Throws with the reason otherwise.
 */
export function checkTlsMaterial(m: TlsMaterial): { subject: string; issuer: string; validTo: string; fingerprint256: string } {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(m.cert);
  } catch (err) {
    throw new Error(`${TLS_SETTINGS.cert}: not a PEM certificate (${(err as Error).message})`);
  }
  if (m.ca !== undefined) {
    try {
      new X509Certificate(m.ca);
    } catch (err) {
      throw new Error(`${TLS_SETTINGS.ca}: not a PEM certificate (${(err as Error).message})`);
    }
  }
  try {
    tls.createSecureContext({ cert: m.cert, key: m.key, ...(m.ca ? { ca: m.ca } : {}) });
  } catch (err) {
    const e = err as { code?: string; message: string };
    throw new Error(`${TLS_SETTINGS.key}: does not go with ${TLS_SETTINGS.cert}, or is not a PEM private key (${e.code ?? e.message})`);
  }
  return {
    subject: cert.subject.replace(/\n/g, ', '),
    issuer: cert.issuer.replace(/\n/g, ', '),
    validTo: new Date(cert.validTo).toISOString(),
    fingerprint256: cert.fingerprint256,
  };
}

/** The context a member dials its peers with: its certificate, and the CA it checks theirs against. */
export function clientContext(m: TlsMaterial): tls.SecureContext {
  return tls.createSecureContext({ cert: m.cert, key: m.key, ...(m.ca ? { ca: m.ca } : {}) });
}

/** What the peer's certificate says about why it was not accepted (Node's verification codes). */
export function describeTlsRefusal(code: string | undefined): string {
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return 'its certificate has expired';
    case 'CERT_NOT_YET_VALID':
      return 'its certificate is not valid yet';
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'CERT_SIGNATURE_FAILURE':
      return "its certificate is not signed by this cluster's CA (--tls-ca)";
    case 'NO_CERTIFICATE':
      return 'it showed no certificate';
    default:
      return `its certificate was not accepted (${code ?? 'unknown reason'})`;
  }
}
