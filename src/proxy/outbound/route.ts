// Stage "route" of the outbound path: what a captured connection's original destination means
// to the mesh. A service's virtual IP and port, or the address and port of one of its known
// endpoints, is the mesh's; anything else is external and follows the Mesh's outbound policy.
// A VIP exists only in the mesh: a port its service does not declare has nowhere to go, and
// says so (no_such_port, counted under the service) rather than passing as external.

import type { ServicePort } from '../../api/resources/index.js';
import type { MeshView, ServiceView } from '../../controlplane-client/mesh-view.js';
import type { SocketAddress } from '../../native/socket-ops.js';
import { LiveEndpointIndex } from './endpoint-index.js';

export type OutboundRoute =
  | { kind: 'service'; service: ServiceView; port: ServicePort; via: 'vip' | 'endpoint' }
  | { kind: 'no_such_port'; service: ServiceView; reason: string }
  | { kind: 'passthrough' }
  | { kind: 'refuse'; reason: string };

/** Index of endpoint "address:port" -> service, built once per snapshot version. */
export type EndpointIndex = ReadonlyMap<string, { service: ServiceView; port: ServicePort }>;

export function buildEndpointIndex(view: MeshView): EndpointIndex {
  const index = new LiveEndpointIndex();
  index.update(view);
  return index.map;
}

export function routeOutbound(
  view: MeshView,
  endpoints: EndpointIndex,
  dst: SocketAddress,
): OutboundRoute {
  const byVip = view.servicesByVip.get(dst.address);
  if (byVip) {
    const port = byVip.ports.find((p) => p.port === dst.port);
    if (!port) {
      const declared = byVip.ports.map((p) => p.port).join(', ');
      return {
        kind: 'no_such_port',
        service: byVip,
        reason: `service ${byVip.name} has no port ${dst.port} (it declares ${declared})`,
      };
    }
    return { kind: 'service', service: byVip, port, via: 'vip' };
  }
  const known = endpoints.get(`${dst.address}|${dst.port}`);
  if (known) return { kind: 'service', ...known, via: 'endpoint' };
  if (view.mesh?.outboundPolicy === 'refuse') {
    return {
      kind: 'refuse',
      reason: 'destination is not in the mesh and the outbound policy is refuse',
    };
  }
  return { kind: 'passthrough' };
}
