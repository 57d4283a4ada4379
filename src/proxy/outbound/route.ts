// Stage "route" of the outbound path: what a captured connection's original destination means
// to the mesh. A service's virtual IP and port, or the address and port of one of its known
// endpoints, is the mesh's; anything else is external and follows the Mesh's outbound policy.
// A VIP exists only in the mesh: a port its service does not declare has nowhere to go, and
// says so (no_such_port, counted under the service) rather than passing as external.

import type { ServicePort } from '../../api/resources/index.js';
import type { EndpointView, MeshView, ServiceView } from '../../controlplane-client/mesh-view.js';
import type { SocketAddress } from '../../native/socket-ops.js';

export type OutboundRoute =
  | { kind: 'service'; service: ServiceView; port: ServicePort; via: 'vip' | 'endpoint' }
  | { kind: 'no_such_port'; service: ServiceView; reason: string }
  | { kind: 'passthrough' }
  | { kind: 'refuse'; reason: string };

/** Index of endpoint "address:port" -> service, built once per snapshot version. */
export type EndpointIndex = ReadonlyMap<string, { service: ServiceView; port: ServicePort }>;

/** A service's entries of the index, kept by the endpoint list they came from (see below). */
export type EndpointIndexParts = WeakMap<
  readonly EndpointView[],
  { service: ServiceView; entries: [string, EndpointIndexEntry][] }
>;

type EndpointIndexEntry = { service: ServiceView; port: ServicePort };

/**
 * `parts` keeps each service's entries across versions: a list that did not change (a worker's
 * views keep it, nextMeshView) is not walked again, so a version of a mesh with 10,000
 * endpoints makes no key strings but those of the services that changed.
 */
export function buildEndpointIndex(
  view: MeshView,
  parts: EndpointIndexParts = new WeakMap(),
): EndpointIndex {
  const index = new Map<string, EndpointIndexEntry>();
  for (const [name, endpoints] of view.endpoints) {
    const service = view.services.get(name);
    if (!service) continue;
    let part = parts.get(endpoints);
    if (part?.service !== service) {
      const entries: [string, EndpointIndexEntry][] = [];
      for (const ep of endpoints) {
        const port = service.ports.find((p) => p.targetPort === ep.port);
        if (port) entries.push([`${ep.address}|${ep.port}`, { service, port }]);
      }
      part = { service, entries };
      parts.set(endpoints, part);
    }
    for (const [key, entry] of part.entries) index.set(key, entry);
  }
  return index;
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
