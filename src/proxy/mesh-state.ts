// What the data path needs from one snapshot version, computed once when it is accepted so
// that each connection does only map reads: the route index, a balancer pool per service port
// (kept across versions, so counters and ejections survive updates), authorization policies
// per service, the effective TrafficPolicy of each service (the Mesh's defaults with the
// Service's own laid over them), and this host's own workloads (by port, and by registered
// address and port).
import type {
  AuthorizationPolicySpec,
  GRPCRouteSpec,
  HTTPRouteSpec,
  TrafficPolicySpec,
} from '../api/resources/index.js';
import {
  type EffectivePolicies,
  effectivePolicies,
  policyScopes,
} from '../api/resources/traffic-policy-scopes.js';
import type { EndpointView, MeshView } from '../controlplane-client/mesh-view.js';
import { canonicalAddress } from './address.js';
import { EndpointPool } from './balance/endpoint-pool.js';
import type { NamedPolicy } from './inbound/authorize.js';
import { buildEndpointIndex, type EndpointIndex } from './outbound/route.js';
import { buildRouteTables, type RouteDocument, type ServiceRoutes } from './routing/route-table.js';

/** An HTTPRoute as the data path reads it: its name (a metric label) and spec. */
export interface NamedRoute {
  name: string;
  spec: HTTPRouteSpec;
}

/** A balancer pool and the service port it serves. */
export interface ServicePortPool {
  service: string;
  /** The port clients use on the service's virtual IP. */
  port: number;
  pool: EndpointPool;
}

export class MeshState {
  view: MeshView | undefined;
  endpointIndex: EndpointIndex = new Map();
  /** By service, then by service port: a connection reads two maps, builds no key. */
  private pools = new Map<string, Map<number, ServicePortPool>>();
  private authz = new Map<string, NamedPolicy[]>();
  private traffic: EffectivePolicies | undefined;
  private serviceTraffic = new Map<string, TrafficPolicySpec>();
  private meshTraffic: TrafficPolicySpec | undefined;
  private routes = new Map<string, NamedRoute[]>();
  private routeTables = new Map<string, ServiceRoutes>();
  private localServices = new Map<number, string>();
  private localEndpoints = new Map<string, EndpointView>();

  constructor(readonly node: string) {}

  update(view: MeshView): void {
    const policies = (kind: string) =>
      (view.policies.get(kind) ?? []).map((r) => ({ name: r.name, doc: r.doc }));

    // Effective policies, merged once here; unchanged documents keep their objects.
    const traffic = effectivePolicies(policyScopes(policies('TrafficPolicy')), this.traffic);
    const serviceTraffic = new Map<string, TrafficPolicySpec>();
    for (const [service, p] of traffic.services) serviceTraffic.set(service, p.spec);
    const meshTraffic = traffic.mesh?.spec;
    // An HTTPRoute is listed under every Service it names as a parent.
    const routes = new Map<string, NamedRoute[]>();
    for (const p of policies('HTTPRoute')) {
      const spec = (p.doc as { spec: HTTPRouteSpec }).spec;
      for (const parent of spec.parentRefs) {
        const list = routes.get(parent.name) ?? [];
        list.push({ name: p.name, spec });
        routes.set(parent.name, list);
      }
    }
    // HTTPRoutes and GRPCRoutes compiled per parent Service port (regexes, precedence order,
    // backends resolved): a request walks a sorted list, a service without routes has none.
    const routeDocs = <S>(kind: string): RouteDocument<S>[] =>
      policies(kind).map((p) => {
        const doc = p.doc as { spec: S; status?: { createdAt?: unknown } };
        const createdAt = doc.status?.createdAt;
        return {
          name: p.name,
          spec: doc.spec,
          createdAt: typeof createdAt === 'string' ? createdAt : '',
        };
      });
    const routeTables = buildRouteTables(
      view.services,
      routeDocs<HTTPRouteSpec>('HTTPRoute'),
      routeDocs<GRPCRouteSpec>('GRPCRoute'),
    );
    // One pool per service port: a workload serves one port, so a port's endpoints are the
    // service's workloads registered on its targetPort (80->8080 never dials an 8081 one).
    const pools = new Map<string, Map<number, ServicePortPool>>();
    for (const service of view.services.values()) {
      const endpoints = view.endpoints.get(service.name) ?? [];
      const balancer = (serviceTraffic.get(service.name) ?? meshTraffic)?.balancer;
      const byPort = new Map<number, ServicePortPool>();
      for (const port of service.ports) {
        const pool = this.pool(service.name, port.port) ?? new EndpointPool(service.name, balancer);
        pool.update(
          endpoints.filter((ep) => ep.port === port.targetPort),
          balancer,
        );
        byPort.set(port.port, { service: service.name, port: port.port, pool });
      }
      pools.set(service.name, byPort);
    }

    const authz = new Map<string, NamedPolicy[]>();
    for (const p of policies('AuthorizationPolicy')) {
      const spec = (p.doc as { spec: AuthorizationPolicySpec }).spec;
      const list = authz.get(spec.targetRef.name) ?? [];
      list.push({ name: p.name, spec });
      authz.set(spec.targetRef.name, list);
    }

    const localServices = new Map<number, string>();
    const localEndpoints = new Map<string, EndpointView>();
    for (const endpoints of view.endpoints.values()) {
      for (const ep of endpoints) {
        if (ep.node !== this.node) continue;
        localServices.set(ep.port, ep.service);
        localEndpoints.set(endpointKey(ep.address, ep.port), ep);
      }
    }

    this.view = view;
    this.endpointIndex = buildEndpointIndex(view);
    this.pools = pools;
    this.authz = authz;
    this.traffic = traffic;
    this.serviceTraffic = serviceTraffic;
    this.meshTraffic = meshTraffic;
    this.routes = routes;
    this.routeTables = routeTables;
    this.localServices = localServices;
    this.localEndpoints = localEndpoints;
  }

  /** The balancer pool of one port (as clients call it) of a service. */
  pool(service: string, port: number): EndpointPool | undefined {
    return this.pools.get(service)?.get(port)?.pool;
  }

  *allPools(): Iterable<ServicePortPool> {
    for (const byPort of this.pools.values()) yield* byPort.values();
  }

  authorizationPolicies(service: string): readonly NamedPolicy[] {
    return this.authz.get(service) ?? [];
  }

  /**
   * The effective TrafficPolicy of a service (defaults filled in): its own over the Mesh's,
   * the Mesh's alone, or undefined when neither exists.
   */
  trafficPolicy(service: string): TrafficPolicySpec | undefined {
    return this.serviceTraffic.get(service) ?? this.meshTraffic;
  }

  /** The HTTPRoutes that name a service as a parent, in snapshot order. */
  httpRoutes(service: string): readonly NamedRoute[] {
    return this.routes.get(service) ?? [];
  }

  /** The compiled HTTPRoutes and GRPCRoutes of a service, by port; undefined when it has none. */
  routeTable(service: string): ServiceRoutes | undefined {
    return this.routeTables.get(service);
  }

  /** The service a local workload port belongs to (inbound attribution of captured plaintext). */
  localService(port: number): string | undefined {
    return this.localServices.get(port);
  }

  /**
   * The workload of this host registered at exactly this address and port, however the
   * address is spelled: what a CONNECT through the tunnel may name, and where it is delivered.
   */
  localEndpoint(target: { address: string; port: number }): EndpointView | undefined {
    return this.localEndpoints.get(endpointKey(target.address, target.port));
  }

  get mtlsMode(): 'strict' | 'permissive' {
    return this.view?.mesh?.mtls.mode ?? 'permissive';
  }
}

function endpointKey(address: string, port: number): string {
  return `${canonicalAddress(address)}|${port}`;
}
