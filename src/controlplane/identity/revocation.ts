// The Revocation resource for certificates the control plane takes back: one document per
// event (a node deleted, left, replaced, or disallowed a service), named after the node, the
// reason and the time, listing each certificate still valid by serial. Pure.
import type { Revocation, RevocationReason } from '../../api/resources/index.js';
import type { IssuedCert } from './node-record.js';

export function revocationDocument(
  node: string,
  reason: RevocationReason,
  certs: readonly IssuedCert[],
  now: number,
  options: { services?: string[]; attempt?: number } = {},
): Revocation | undefined {
  if (certs.length === 0) return undefined;
  const suffix = options.attempt ? `-${options.attempt}` : '';
  return {
    apiVersion: 'weft/v1',
    kind: 'Revocation',
    metadata: { name: `${node}.${reason}.${now.toString(36)}${suffix}` },
    spec: {
      node,
      reason,
      ...(options.services ? { services: options.services } : {}),
      revokedAt: new Date(now).toISOString(),
      certificates: certs.map((c) => ({
        serial: c.serial,
        notAfter: new Date(c.notAfterMs).toISOString(),
      })),
    },
  };
}

/** How a refusal names why a certificate was revoked. */
export function revocationCause(
  node: string,
  reason: RevocationReason,
  services?: readonly string[],
): string {
  switch (reason) {
    case 'deleted':
      return `node ${node} was removed from the mesh`;
    case 'left':
      return `node ${node} left the mesh`;
    case 'replaced':
      return `node ${node} was replaced by a re-join`;
    case 'disallowed':
      return `node ${node} may no longer serve ${(services ?? []).join(', ') || 'that service'}`;
  }
}
