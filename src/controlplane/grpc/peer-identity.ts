// Who is calling: the SPIFFE ID of the client certificate that TLS verified against the CA.
// Node methods (Identity, Sync) accept spiffe://<td>/node/<host> whose certificate is not
// revoked (a deleted node's, or a stolen one of a name that joined again); Admin accepts
// spiffe://<td>/admin/<name>. The caller learns exactly what was missing or wrong.
import type { PeerCertificate } from 'node:tls';
import { canonicalSerial } from '../../api/cert-serial.js';
import { parseSpiffeId, type SpiffeKind, spiffeIdOfCertificate } from '../../api/spiffe.js';
import type { RevocationLookup } from '../identity/revocation-list.js';
import { Refusal, unauthenticated } from '../refusal.js';

/** grpc-js server calls (getAuthContext exists since 1.10; its type is not exported). */
interface HasAuthContext {
  getAuthContext(): { sslPeerCertificate?: PeerCertificate } | null;
}

/** The verified peer's SPIFFE ID; undefined without a certificate the CA vouches for. */
export function peerSpiffeId(call: HasAuthContext): string | undefined {
  const cert = call.getAuthContext()?.sslPeerCertificate;
  return cert === undefined ? undefined : spiffeIdOfCertificate(cert);
}

const NEED: Record<'node' | 'admin', string> = {
  node: 'a node certificate: join with a token first (the agent does it when its config has controlPlane.token)',
  admin:
    'an admin certificate: use the credentials in <data-dir>/admin on the control plane host (--credentials DIR)',
};

function requireKind(call: HasAuthContext, trustDomain: string, kind: 'node' | 'admin'): string {
  const id = peerSpiffeId(call);
  if (id === undefined) {
    throw unauthenticated(
      'no_client_certificate',
      `this call needs ${NEED[kind]}; no valid client certificate was presented (missing, expired, or not issued by this control plane's CA)`,
    );
  }
  const parsed = parseSpiffeId(id);
  if (
    parsed === undefined ||
    parsed.trustDomain !== trustDomain ||
    parsed.kind !== (kind as SpiffeKind)
  ) {
    throw new Refusal(
      'wrong_identity',
      `this call needs ${kind === 'node' ? 'a node' : 'an admin'} identity (spiffe://${trustDomain}/${kind}/...), but the client is ${id}`,
    );
  }
  return parsed.name;
}

/** The calling node's name, or a refusal (no node certificate, or a revoked one). */
export function requireNode(
  call: HasAuthContext,
  trustDomain: string,
  revoked?: RevocationLookup,
): string {
  const name = requireKind(call, trustDomain, 'node');
  const serial = call.getAuthContext()?.sslPeerCertificate?.serialNumber;
  const why = serial === undefined ? undefined : revoked?.why(canonicalSerial(serial));
  if (why !== undefined) {
    throw new Refusal(
      'certificate_revoked',
      `this certificate was revoked (${why}): join again with a new token`,
    );
  }
  return name;
}

/** The calling admin's name, or a refusal. */
export const requireAdmin = (call: HasAuthContext, trustDomain: string): string =>
  requireKind(call, trustDomain, 'admin');
