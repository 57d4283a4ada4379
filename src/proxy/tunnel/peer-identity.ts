// The SPIFFE identity check both tunnel ends apply after the chain has been verified against
// the trust bundle: an X.509-SVID carries exactly one URI SAN (SPIFFE X.509-SVID spec, section
// 2), of this mesh's trust domain, and only weft's own caller shapes are accepted, spelled
// canonically: spiffe://<td>/node/<dns-label> or spiffe://<td>/svc/<dns-label>. Anything else
// (the admin identity, dot segments, empty segments, percent-encoding, upper case, a query or
// anything after the name) is refused: a policy could read such a URI as someone else.
import type { PeerCertificate } from 'node:tls';
import { parseSpiffeId, type SpiffeKind, uriSans } from '../../api/spiffe.js';

export type PeerIdentityResult = { ok: true; spiffeId: string } | { ok: false; reason: string };

/** Which identities may stand at the other end: callers are nodes or services; servers, nodes. */
export type PeerKind = Extract<SpiffeKind, 'node' | 'svc'>;

const CALLERS: readonly PeerKind[] = ['node', 'svc'];

/** The peer's SPIFFE ID if its certificate is a canonical SVID of `trustDomain` of `kinds`. */
export function peerSpiffeId(
  cert: PeerCertificate | undefined,
  trustDomain: string,
  kinds: readonly PeerKind[] = CALLERS,
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
  if (!id.startsWith(prefix)) {
    return { ok: false, reason: `${id} is not in trust domain ${trustDomain}` };
  }
  const accepted = `only spiffe://${trustDomain}/${kinds.map((k) => `${k}/<name>`).join(' or ')} are accepted (the name one lowercase DNS label, nothing after it)`;
  const parsed = parseSpiffeId(id);
  // parseSpiffeId matches the whole URI, so a parsed ID rebuilt is the same string; the
  // comparison keeps that true should the parser ever become lenient.
  if (parsed === undefined || `${prefix}${parsed.kind}/${parsed.name}` !== id) {
    if (parsed?.kind === 'controlplane') {
      return { ok: false, reason: `${id} is a controlplane identity: ${accepted}` };
    }
    return { ok: false, reason: `${id} is not a canonical weft identity: ${accepted}` };
  }
  if (!(kinds as readonly string[]).includes(parsed.kind)) {
    const article = parsed.kind === 'admin' ? 'an' : 'a';
    return { ok: false, reason: `${id} is ${article} ${parsed.kind} identity: ${accepted}` };
  }
  return { ok: true, spiffeId: id };
}
