// The snapshot shaped for the data path: services by name and by virtual IP, the endpoints of
// each service, policies by kind, the trust bundle, the revoked certificate serials. Built once
// per accepted version, so that per-connection lookups are map reads.
import type {
  MeshSpec,
  Revocation,
  Service,
  ServicePort,
  Workload,
} from '../api/resources/index.js';
import type { Snapshot, SnapshotResource } from './snapshot.js';

/** What a view reads of a resource (a worker's copy holds only this: no wire JSON). */
export type ViewResource = Pick<SnapshotResource, 'kind' | 'name' | 'doc'>;

/** What a view is built from: a snapshot, or a worker's copy of one. */
export interface ViewSource extends Pick<Snapshot, 'version' | 'trustBundlePem'> {
  resources: ReadonlyMap<string, ViewResource>;
}

export interface ServiceView {
  name: string;
  /** From 240.240.0.0/16; undefined until the control plane allocated one. */
  vip: string | undefined;
  ports: ServicePort[];
}

export interface EndpointView {
  /** The Workload resource's name (`<node>-<workload>`). */
  workload: string;
  service: string;
  node: string;
  address: string;
  port: number;
  health: 'healthy' | 'unhealthy' | 'unknown';
  weight: number;
  zone: string | undefined;
}

export interface MeshView {
  version: number;
  trustBundlePem: string;
  mesh: MeshSpec | undefined;
  services: ReadonlyMap<string, ServiceView>;
  servicesByVip: ReadonlyMap<string, ServiceView>;
  /** Per service name; a service may have endpoints before its Service resource exists. */
  endpoints: ReadonlyMap<string, readonly EndpointView[]>;
  /** TrafficPolicy, HTTPRoute, AuthorizationPolicy (and kinds this agent does not know), by kind. */
  policies: ReadonlyMap<string, readonly ViewResource[]>;
  /**
   * Serials (canonical: lowercase hex, no leading zeros) of certificates the control plane
   * revoked and that have not expired: the tunnel refuses peers presenting them.
   */
  revokedSerials: ReadonlySet<string>;
}

export function meshView(snapshot: ViewSource, now = Date.now()): MeshView {
  let mesh: MeshSpec | undefined;
  const revokedSerials = new Set<string>();
  const services = new Map<string, ServiceView>();
  const servicesByVip = new Map<string, ServiceView>();
  const endpoints = new Map<string, EndpointView[]>();
  const policies = new Map<string, ViewResource[]>();
  for (const r of snapshot.resources.values()) {
    switch (r.kind) {
      case 'Mesh':
        mesh = (r.doc as unknown as { spec: MeshSpec }).spec;
        break;
      case 'Service': {
        const view = serviceView(r.doc as unknown as Service);
        services.set(view.name, view);
        if (view.vip !== undefined) servicesByVip.set(view.vip, view);
        break;
      }
      case 'Workload': {
        const ep = endpointView(r.doc as unknown as Workload);
        const list = endpoints.get(ep.service);
        if (list) list.push(ep);
        else endpoints.set(ep.service, [ep]);
        break;
      }
      case 'Revocation':
        // An expired certificate is refused by TLS anyway: no need to list it.
        for (const c of (r.doc as unknown as Revocation).spec.certificates)
          if (Date.parse(c.notAfter) > now) revokedSerials.add(c.serial);
        break;
      default: {
        const list = policies.get(r.kind);
        if (list) list.push(r);
        else policies.set(r.kind, [r]);
      }
    }
  }
  // Stable order, so that balancers and dumps do not reshuffle between versions.
  for (const list of endpoints.values()) list.sort((a, b) => a.workload.localeCompare(b.workload));
  return {
    version: snapshot.version,
    trustBundlePem: snapshot.trustBundlePem,
    mesh,
    services,
    servicesByVip,
    endpoints,
    policies,
    revokedSerials,
  };
}

function serviceView(doc: Service): ServiceView {
  return { name: doc.metadata.name, vip: doc.status?.vip, ports: doc.spec.ports };
}

function endpointView(doc: Workload): EndpointView {
  const s = doc.spec;
  return {
    workload: doc.metadata.name,
    service: s.service,
    node: s.node,
    address: s.address,
    port: s.port,
    health: s.health,
    weight: s.weight,
    zone: s.zone,
  };
}
