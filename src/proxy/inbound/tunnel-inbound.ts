// The inbound path for connections arriving through the mTLS tunnel (15008): the tunnel
// server has verified the peer's certificate; here each CONNECT is authorized (only ports of
// this host's mesh workloads, then AuthorizationPolicy on the peer's SPIFFE ID) and recorded.
import { parseSpiffeId } from '../../api/spiffe.js';
import { formatAddress } from '../address.js';
import type { MeshState } from '../mesh-state.js';
import type { Telemetry } from '../telemetry.js';
import type { AuthorizeHook, TunnelAccessRecord } from '../tunnel/index.js';
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

export function tunnelAccessRecorder(
  state: MeshState,
  telemetry: Telemetry,
): (r: TunnelAccessRecord) => void {
  return (r) => {
    const peer = parseSpiffeId(r.peer.spiffeId);
    telemetry.completed(
      {
        direction: 'inbound',
        src: formatAddress(r.peer),
        dst: r.target ? formatAddress(r.target) : r.authority,
        src_service: peer?.kind === 'svc' ? peer.name : 'unknown',
        dst_service: (r.target && state.localService(r.target.port)) || 'unknown',
        src_identity: r.peer.spiffeId,
        security: 'mtls',
        bytes_sent: r.bytesToTarget,
        bytes_received: r.bytesFromTarget,
        close_reason: r.reason,
        ...(r.detail ? { error: r.detail } : {}),
      },
      r.durationMs,
    );
  };
}
