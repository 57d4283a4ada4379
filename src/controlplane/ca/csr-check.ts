// Checks a CSR before the CA signs anything for it: it parses, its signature verifies with the
// key it carries (proof the caller holds that key), the key is ECDSA P-256, and it asks for
// exactly the one SPIFFE ID the caller is entitled to. Only its public key is used after that.
import { x509 } from '../../api/x509.js';
import { invalidRequest, Refusal } from '../refusal.js';

export async function verifyCsr(csrPem: string, expectedSpiffeId: string): Promise<x509.PublicKey> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw invalidRequest(
      'csr_invalid',
      `the CSR is not a PEM PKCS#10 certificate request: ${(err as Error).message}`,
    );
  }
  const algorithm = csr.publicKey.algorithm as { name?: string; namedCurve?: string };
  if (algorithm.name !== 'ECDSA' || algorithm.namedCurve !== 'P-256') {
    throw invalidRequest('csr_key_type', 'the CSR key must be ECDSA P-256');
  }
  let verified = false;
  try {
    verified = await csr.verify();
  } catch {
    verified = false;
  }
  if (!verified)
    throw new Refusal(
      'csr_signature',
      'the CSR signature does not verify: it must be signed with the key it carries',
    );
  const names = csr.extensions
    .filter(
      (e): e is x509.SubjectAlternativeNameExtension =>
        e instanceof x509.SubjectAlternativeNameExtension,
    )
    .flatMap((e) => e.names.toJSON());
  const asked = names.map((n) => (n.type === 'url' ? n.value : `${n.type}:${n.value}`));
  if (asked.length !== 1 || asked[0] !== expectedSpiffeId) {
    const what = asked.length === 0 ? 'no SAN' : asked.join(', ');
    throw new Refusal(
      'spiffe_id_mismatch',
      `the CSR asks for ${what}, but this caller may only get ${expectedSpiffeId}`,
    );
  }
  return csr.publicKey;
}
