// The SPIFFE identity check both tunnel ends apply after the chain has been verified against
// the trust bundle: an X.509-SVID carries exactly one URI SAN, spiffe://<trust domain>/<path>,
// and only this mesh's trust domain is accepted (SPIFFE X.509-SVID spec, section 2).
import type { PeerCertificate } from 'node:tls';
import { uriSans } from '../../api/spiffe.js';

export type PeerIdentityResult = { ok: true; spiffeId: string } | { ok: false; reason: string };

/** The peer's SPIFFE ID if its certificate is an SVID of `trustDomain`. */
export function peerSpiffeId(
  cert: PeerCertificate | undefined,
  trustDomain: string,
): PeerIdentityResult {
  if (cert === undefined || cert.raw === undefined) {
    return { ok: false, reason: 'no certificate' };
  }
  const uris = uriSans(cert);
  if (uris.length !== 1) {
    return { ok: false, reason: `the certificate has ${uris.length} URI SANs, an SVID has one` };
  }
  const id = uris[0]!;
  const prefix = `spiffe://${trustDomain}/`;
  if (!id.startsWith(prefix) || id.length === prefix.length) {
    return { ok: false, reason: `${id} is not in trust domain ${trustDomain}` };
  }
  return { ok: true, spiffeId: id };
}
