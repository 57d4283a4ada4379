// What the data path needs from one snapshot version, computed once when it is accepted so
// that each connection does only map reads: the route index, a balancer pool per service
// (kept across versions, so counters and ejections survive updates), authorization policies
// per service, and which local ports belong to which service.
import type { AuthorizationPolicySpec, TrafficPolicySpec } from '../api/resources/index.js';
import type { MeshView } from '../controlplane-client/mesh-view.js';
import { EndpointPool } from './balance/endpoint-pool.js';
import type { NamedPolicy } from './inbound/authorize.js';
import { buildEndpointIndex, type EndpointIndex } from './outbound/route.js';

export class MeshState {
  view: MeshView | undefined;
  endpointIndex: EndpointIndex = new Map();
  private pools = new Map<string, EndpointPool>();
  private authz = new Map<string, NamedPolicy[]>();
  private localServices = new Map<number, string>();

  constructor(readonly node: string) {}

  update(view: MeshView): void {
    const policies = (kind: string) =>
      (view.policies.get(kind) ?? []).map((r) => ({ name: r.name, doc: r.doc }));

    const balancerOf = new Map<string, TrafficPolicySpec['balancer']>();
    for (const p of policies('TrafficPolicy')) {
      const spec = (p.doc as { spec: TrafficPolicySpec }).spec;
      balancerOf.set(spec.targetRef.name, spec.balancer);
    }
    const pools = new Map<string, EndpointPool>();
    for (const [service, endpoints] of view.endpoints) {
      const kind = balancerOf.get(service)?.type;
      const pool = this.pools.get(service) ?? new EndpointPool(service, kind);
      pool.update(endpoints, kind);
      pools.set(service, pool);
    }

    const authz = new Map<string, NamedPolicy[]>();
    for (const p of policies('AuthorizationPolicy')) {
      const spec = (p.doc as { spec: AuthorizationPolicySpec }).spec;
      const list = authz.get(spec.targetRef.name) ?? [];
      list.push({ name: p.name, spec });
      authz.set(spec.targetRef.name, list);
    }

    const localServices = new Map<number, string>();
    for (const endpoints of view.endpoints.values()) {
      for (const ep of endpoints) if (ep.node === this.node) localServices.set(ep.port, ep.service);
    }

    this.view = view;
    this.endpointIndex = buildEndpointIndex(view);
    this.pools = pools;
    this.authz = authz;
    this.localServices = localServices;
  }

  pool(service: string): EndpointPool | undefined {
    return this.pools.get(service);
  }

  allPools(): Iterable<EndpointPool> {
    return this.pools.values();
  }

  authorizationPolicies(service: string): readonly NamedPolicy[] {
    return this.authz.get(service) ?? [];
  }

  /** The service a local workload port belongs to (inbound attribution). */
  localService(port: number): string | undefined {
    return this.localServices.get(port);
  }

  get mtlsMode(): 'strict' | 'permissive' {
    return this.view?.mesh?.mtls.mode ?? 'permissive';
  }
}
