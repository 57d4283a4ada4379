// A join sent again after its answer was lost: etcd3 retries a Txn whose reply it did not get
// (its global retry policy), so the join's own first commit makes its retry fail its compares,
// and an agent may resend the same request. A used token whose redemption record names this
// host, this CSR and a node record from that very join is answered again with the certificate
// it already got; any other request is refused as before (the token is one-time).
import { createHash } from 'node:crypto';
import type { NodeRecord } from './node-record.js';
import type { TokenRecord } from './tokens.js';

export function csrDigest(csrPem: string): string {
  return createHash('sha256').update(csrPem.trim()).digest('hex');
}

export type Redemption = { outcome: 'answer-again'; certificatePem: string } | { outcome: 'none' };

export function earlierRedemption(
  token: TokenRecord,
  hostname: string,
  digest: string,
  node: NodeRecord | undefined,
): Redemption {
  const same =
    token.usedAtMs !== undefined &&
    token.usedBy === hostname &&
    token.usedFor === digest &&
    token.usedCertificatePem !== undefined &&
    // The node is still the one that join made (not removed, not replaced since).
    node?.tokenId === token.id &&
    node.joinedAtMs === token.usedAtMs;
  return same
    ? { outcome: 'answer-again', certificatePem: token.usedCertificatePem! }
    : { outcome: 'none' };
}
