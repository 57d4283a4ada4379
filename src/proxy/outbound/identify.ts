// Stage "identify" of the outbound path: who opened the captured connection (a local workload,
// else the node), and the fields every record of this connection starts with.
import { formatAddress } from '../address.js';
import type { CapturedConnection } from '../capture-listener.js';
import type { OpenConnection } from '../records.js';
import type { SourceIdentities, SourceIdentity } from './source-identity.js';

/** What the stages after "identify" know of a captured connection. */
export interface OutboundContext {
  conn: CapturedConnection;
  /** Undefined only when this host holds no certificate at all (never joined). */
  source: SourceIdentity | undefined;
  /** The connection record so far: everything but the destination service. */
  record: Omit<OpenConnection, 'dst_service'>;
}

export function identify(
  conn: CapturedConnection,
  identities: SourceIdentities | undefined,
): OutboundContext {
  const source = identities?.forOwner(conn.owner);
  return {
    conn,
    source,
    record: {
      direction: 'outbound',
      src: conn.source,
      dst: formatAddress(conn.target),
      src_service: source?.service ?? 'unknown',
      ...(source ? { src_identity: source.tunnel.spiffeId } : {}),
      ...(conn.owner
        ? { src_uid: conn.owner.uid, ...(conn.owner.unit ? { src_unit: conn.owner.unit } : {}) }
        : {}),
    },
  };
}
