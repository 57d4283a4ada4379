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
  for (const list of endpoints.values()) list.sort(byWorkload);
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

/** One resource a version set or removed: what it was (undefined: new) and is (undefined: gone). */
export interface ResourceChange {
  before: ViewResource | undefined;
  after: ViewResource | undefined;
}

/**
 * The view of `source` from the view of the version before it and the resources that changed:
 * the same as meshView(source), but made in proportion to the change, which is what a worker
 * does for each version while 10,000 endpoints register or go stale (10 versions a second in
 * the bench lab). Only a service whose endpoints changed gets a new list; every other service,
 * endpoint list and policy keeps its object, so what the data plane built from them can stay.
 * A change of anything but Services and Workloads (rare: policies, the Mesh, revocations)
 * builds the whole view.
 */
export function nextMeshView(
  previous: MeshView,
  source: ViewSource,
  changes: readonly ResourceChange[],
): MeshView {
  const touched = new Set<string>();
  const gone = new Set<string>();
  let servicesChanged = false;
  for (const { before, after } of changes) {
    const kind = (before ?? after)!.kind;
    if (kind === 'Service') servicesChanged = true;
    else if (kind === 'Workload') {
      for (const r of [before, after])
        if (r) touched.add((r.doc as unknown as Workload).spec.service);
      if (before) gone.add(before.name);
    } else return meshView(source);
  }
  let { services, servicesByVip, endpoints } = previous;
  if (servicesChanged) {
    const byName = new Map<string, ServiceView>();
    const byVip = new Map<string, ServiceView>();
    const changedServices = new Map(
      changes
        .filter((c) => (c.before ?? c.after)!.kind === 'Service')
        .map((c) => [(c.before ?? c.after)!.name, c.after]),
    );
    for (const [name, view] of previous.services)
      if (!changedServices.has(name)) byName.set(name, view);
    for (const after of changedServices.values()) {
      if (after === undefined) continue;
      const view = serviceView(after.doc as unknown as Service);
      byName.set(view.name, view);
    }
    for (const view of byName.values()) if (view.vip !== undefined) byVip.set(view.vip, view);
    services = byName;
    servicesByVip = byVip;
  }
  if (touched.size > 0) {
    const lists = new Map(previous.endpoints);
    const added = new Map<string, EndpointView[]>();
    for (const { after } of changes) {
      if (after?.kind !== 'Workload') continue;
      const ep = endpointView(after.doc as unknown as Workload);
      const list = added.get(ep.service);
      if (list) list.push(ep);
      else added.set(ep.service, [ep]);
    }
    for (const service of touched) {
      const kept = (previous.endpoints.get(service) ?? []).filter((ep) => !gone.has(ep.workload));
      const list = kept.concat(added.get(service) ?? []);
      if (list.length === 0) lists.delete(service);
      else lists.set(service, list.sort(byWorkload));
    }
    endpoints = lists;
  }
  return {
    ...previous,
    version: source.version,
    trustBundlePem: source.trustBundlePem,
    services,
    servicesByVip,
    endpoints,
  };
}

/** The resources set or removed between two versions, by identity (an accepted delta keeps the
 * objects of the resources it did not change). */
export function changedResources(
  before: ReadonlyMap<string, ViewResource>,
  after: ReadonlyMap<string, ViewResource>,
): ResourceChange[] {
  const changes: ResourceChange[] = [];
  for (const [key, r] of after) {
    const old = before.get(key);
    if (old !== r) changes.push({ before: old, after: r });
  }
  for (const [key, old] of before)
    if (!after.has(key)) changes.push({ before: old, after: undefined });
  return changes;
}

const byWorkload = (a: EndpointView, b: EndpointView) => a.workload.localeCompare(b.workload);

function serviceView(doc: Service): ServiceView {
  return { name: doc.metadata.name, vip: doc.status?.vip, ports: doc.spec.ports };
}

function endpointView(doc: Workload): EndpointView {
  return { workload: doc.metadata.name, ...endpointFields(doc.spec) };
}

/** What a view reads of a Workload's spec (a worker is sent only these: session-publisher.ts). */
export function endpointFields(s: Workload['spec']): Omit<EndpointView, 'workload'> {
  return {
    service: s.service,
    node: s.node,
    address: s.address,
    port: s.port,
    health: s.health,
    weight: s.weight,
    zone: s.zone,
  };
}
