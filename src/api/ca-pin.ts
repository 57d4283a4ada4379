// The CA pin agents check at join: sha256 (hex) of the CA certificate's SubjectPublicKeyInfo
// DER. Pinning the key, not the certificate, survives re-issuing the CA certificate.
import { createHash, X509Certificate } from 'node:crypto';

export function caPin(caCertPem: string | X509Certificate): string {
  const cert = typeof caCertPem === 'string' ? new X509Certificate(caCertPem) : caCertPem;
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('hex');
}

/** Splits a PEM bundle into its certificates (PEM strings, in order). */
export function splitPemCertificates(pem: string): string[] {
  return (
    pem
      .match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)
      ?.map((c) => `${c}\n`) ?? []
  );
}
