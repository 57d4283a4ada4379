// The inbound path for connections arriving through the mTLS tunnel (15008): the tunnel
// server has verified the peer's certificate; here each CONNECT is authorized (only ports of
// this host's mesh workloads, then AuthorizationPolicy on the peer's SPIFFE ID) and recorded
// from its start to its end.
import { parseSpiffeId } from '../../api/spiffe.js';
import { formatAddress } from '../address.js';
import type { MeshState } from '../mesh-state.js';
import type { Telemetry } from '../telemetry.js';
import type { AuthorizeHook, TunnelAccessRecord, TunnelStreamObserver } from '../tunnel/index.js';
import { authorizeL4 } from './authorize.js';

export function tunnelAuthorizer(state: MeshState, telemetry: Telemetry): AuthorizeHook {
  return ({ peer, target }) => {
    const service = state.localService(target.port);
    // The tunnel reaches mesh workloads only: never an open relay to any port of the host.
    if (service === undefined) {
      telemetry.decision('inbound', 'unknown', false);
      return {
        allow: false,
        reason: `no mesh workload listens on port ${target.port} of this host`,
      };
    }
    const decision = authorizeL4(state.authorizationPolicies(service), {
      principal: peer.spiffeId,
      port: target.port,
    });
    telemetry.decision('inbound', service, decision.allow);
    return decision.allow ? { allow: true } : { allow: false, reason: decision.reason };
  };
}

/**
 * One connection record per tunnel stream, opened when the stream arrives and closed with its
 * access record: the labels are fixed at the start, so the open-connections gauge is
 * decremented exactly as it was incremented.
 */
export function tunnelAccessRecorder(state: MeshState, telemetry: Telemetry): TunnelStreamObserver {
  return ({ peer, authority, target }) => {
    const id = parseSpiffeId(peer.spiffeId);
    const record = {
      direction: 'inbound' as const,
      src: formatAddress(peer),
      dst: target ? formatAddress(target) : authority,
      src_service: id?.kind === 'svc' ? id.name : 'unknown',
      dst_service: (target && state.localService(target.port)) || 'unknown',
      src_identity: peer.spiffeId,
      security: 'mtls',
    };
    const started = process.hrtime.bigint();
    telemetry.open(record);
    return (r: TunnelAccessRecord) =>
      telemetry.close(
        {
          ...record,
          bytes_sent: r.bytesToTarget,
          bytes_received: r.bytesFromTarget,
          close_reason: r.reason,
          ...(r.detail ? { error: r.detail } : {}),
        },
        started,
      );
  };
}
