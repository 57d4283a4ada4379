// Certificate facts the agent needs about what it holds: which SPIFFE ID, which serial, valid
// when, and whether a key belongs to a certificate. Keys and CSRs come from ../api/csr.ts.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { splitPemCertificates } from '../api/ca-pin.js';
import { spiffeIdOfCertificate } from '../api/spiffe.js';
import { WeftError } from '../errors.js';

export interface CertInfo {
  /** The certificate's SPIFFE ID, or '' when it has none. */
  spiffeId: string;
  /** Hex, lowercase. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

/** Reads the first certificate of a PEM chain. */
export function certInfo(pem: string): CertInfo {
  const cert = leafOf(pem);
  return {
    spiffeId: spiffeIdOfCertificate(cert) ?? '',
    serial: cert.serialNumber.toLowerCase(),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
  };
}

/** True when the PEM private key and the chain's first certificate form a pair. */
export function keyMatchesCert(keyPem: string, certPem: string): boolean {
  try {
    return leafOf(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

function leafOf(pem: string): X509Certificate {
  const first = splitPemCertificates(pem)[0];
  if (first === undefined) throw new WeftError('WEFT_E_DENIED', 'no PEM certificate found');
  return new X509Certificate(first);
}
