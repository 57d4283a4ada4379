// What the data path needs from one snapshot version, computed once when it is accepted so
// that each connection does only map reads: the route index, a balancer pool per service port
// (kept across versions, so counters and ejections survive updates), authorization policies
// per service, the effective TrafficPolicy of each service (the Mesh's defaults with the
// Service's own laid over them), and this host's own workloads (by port, and by registered
// address and port). The resilience state a service's effective TrafficPolicy sets lives here
// too, kept across versions: its circuit breaker (every service has one, the schema's defaults
// without a policy), its pools' outlier detection, and its rate limit (only when set).
import type {
  AuthorizationPolicySpec,
  GRPCRouteSpec,
  HTTPRouteSpec,
  TrafficPolicySpec,
} from '../api/resources/index.js';
import type { EffectivePolicy } from '../api/resources/traffic-policy-scopes.js';
import type { EndpointView, MeshView, ServiceView } from '../controlplane-client/mesh-view.js';
import { canonicalAddress } from './address.js';
import { EndpointPool } from './balance/endpoint-pool.js';
import { outlierDetectionOf } from './balance/outlier.js';
import type { NamedPolicy } from './inbound/authorize.js';
import { LiveEndpointIndex } from './outbound/endpoint-index.js';
import type { EndpointIndex } from './outbound/route.js';
import {
  type BreakerLimits,
  CircuitBreaker,
  DEFAULT_BREAKER_LIMITS,
} from './resilience/breaker.js';
import { rateLimitSpec, sameRateLimit, TokenBucket } from './resilience/rate-limit.js';
import {
  buildRouteTables,
  type RouteDocument,
  RuleLatencies,
  type ServiceRoutes,
} from './routing/route-table.js';

/** An HTTPRoute as the data path reads it: its name (a metric label) and spec. */
export interface NamedRoute {
  name: string;
  spec: HTTPRouteSpec;
}

/** The effective TrafficPolicies of one view: per service with a policy of its own, and the
 * Mesh's for all the others (undefined without one). */
export interface ResolvedTraffic {
  mesh: EffectivePolicy | undefined;
  services: ReadonlyMap<string, EffectivePolicy>;
}

/**
 * Where a view's effective TrafficPolicies come from. Filling in their defaults takes the
 * schema (zod), so a worker of the agent gets them computed by its master with each snapshot
 * (session-mirror.ts) and loads no schema library; a single-process agent and the tests compute
 * them here (traffic-policies.ts).
 */
export type TrafficResolver = (view: MeshView) => ResolvedTraffic;

/** A balancer pool and the service port it serves. */
export interface ServicePortPool {
  service: string;
  /** The port clients use on the service's virtual IP. */
  port: number;
  pool: EndpointPool;
}

export class MeshState {
  view: MeshView | undefined;
  get endpointIndex(): EndpointIndex {
    return this.liveIndex.map;
  }
  /** By service, then by service port: a connection reads two maps, builds no key. */
  private readonly pools = new Map<string, Map<number, ServicePortPool>>();
  private authz = new Map<string, NamedPolicy[]>();
  private serviceTraffic = new Map<string, TrafficPolicySpec>();
  private meshTraffic: TrafficPolicySpec | undefined;
  private routes = new Map<string, NamedRoute[]>();
  private routeTables = new Map<string, ServiceRoutes>();
  /** Hedged route rules' p95 estimators, kept across snapshots. */
  private readonly ruleLatencies = new RuleLatencies();
  private localServices = new Map<number, string>();
  private localEndpoints = new Map<string, EndpointView>();
  /** endpointIndex, made again from the parts of the services that did not change. */
  private readonly liveIndex = new LiveEndpointIndex();
  /** What each service's pools were last updated from (see update). */
  private readonly poolInputs = new Map<string, PoolInputs>();
  /** Per destination service, kept across versions (counts in flight carry over). */
  private breakers = new Map<string, CircuitBreaker>();
  /** Per local service with a rateLimit; replaced only when its settings change. */
  private buckets = new Map<string, TokenBucket>();

  constructor(
    readonly node: string,
    /** The effective TrafficPolicies of each view (see TrafficResolver). */
    private readonly resolveTraffic: TrafficResolver,
    /** A monotonic clock (ms) for rate limits. */
    readonly now: () => number = () => performance.now(),
  ) {}

  update(view: MeshView): void {
    const policies = (kind: string) =>
      (view.policies.get(kind) ?? []).map((r) => ({ name: r.name, doc: r.doc }));

    // Effective policies, merged once per view (by the resolver: see TrafficResolver).
    const traffic = this.resolveTraffic(view);
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
      this.ruleLatencies,
    );
    // One pool per service port: a workload serves one port, so a port's endpoints are the
    // service's workloads registered on its targetPort (80->8080 never dials an 8081 one).
    // A service whose view, endpoint list and policy are the objects it had (a worker's views
    // keep them, nextMeshView) keeps its pools as they are: most services in each version of a
    // large mesh. The maps change in place (this runs at once, between connections' reads).
    const pools = this.pools;
    for (const service of view.services.values()) {
      const endpoints = view.endpoints.get(service.name) ?? NO_ENDPOINTS;
      const policy = serviceTraffic.get(service.name) ?? meshTraffic;
      const last = this.poolInputs.get(service.name);
      if (last?.service === service && last.endpoints === endpoints && last.policy === policy)
        continue;
      this.poolInputs.set(service.name, { service, endpoints, policy });
      const balancer = policy?.balancer;
      const outlier = outlierDetectionOf(policy?.outlierDetection);
      const byPort = new Map<number, ServicePortPool>();
      for (const port of service.ports) {
        const pool =
          this.pool(service.name, port.port) ?? new EndpointPool(service.name, balancer, outlier);
        pool.update(
          endpoints.filter((ep) => ep.port === port.targetPort),
          balancer,
          outlier,
        );
        byPort.set(port.port, { service: service.name, port: port.port, pool });
      }
      pools.set(service.name, byPort);
    }
    for (const name of pools.keys()) {
      if (view.services.has(name)) continue;
      pools.delete(name);
      this.poolInputs.delete(name);
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

    const breakers = new Map<string, CircuitBreaker>();
    for (const service of view.services.keys()) {
      const breaker = this.breakers.get(service) ?? new CircuitBreaker(service);
      const policy = serviceTraffic.get(service) ?? meshTraffic;
      breaker.limits = breakerLimits(policy?.circuitBreaker);
      breakers.set(service, breaker);
    }
    // A service gone from the snapshot keeps its breaker while anything still counts on it.
    for (const [service, b] of this.breakers) {
      if (!breakers.has(service) && (b.connections > 0 || b.requests > 0)) breakers.set(service, b);
    }
    const buckets = new Map<string, TokenBucket>();
    for (const service of view.services.keys()) {
      const spec = serviceTraffic.get(service) ?? meshTraffic;
      if (spec?.rateLimit === undefined) continue;
      const wanted = rateLimitSpec(spec.rateLimit);
      const old = this.buckets.get(service);
      if (old && sameRateLimit(old.spec, wanted)) buckets.set(service, old);
      else {
        const bucket = new TokenBucket(wanted, this.now());
        bucket.limited = old?.limited ?? 0; // a counter never goes back
        buckets.set(service, bucket);
      }
    }

    this.view = view;
    this.liveIndex.update(view);
    this.authz = authz;
    this.serviceTraffic = serviceTraffic;
    this.meshTraffic = meshTraffic;
    this.routes = routes;
    this.routeTables = routeTables;
    this.localServices = localServices;
    this.localEndpoints = localEndpoints;
    this.breakers = breakers;
    this.buckets = buckets;
  }

  /** The circuit breaker of a destination service (one per service; limits per snapshot). */
  breaker(service: string): CircuitBreaker {
    let b = this.breakers.get(service);
    if (b === undefined) {
      // A service this snapshot does not know (a race with an update): its own defaults.
      b = new CircuitBreaker(service);
      this.breakers.set(service, b);
    }
    return b;
  }

  allBreakers(): Iterable<CircuitBreaker> {
    return this.breakers.values();
  }

  /** The rate limit of a local service, when its TrafficPolicy sets one. */
  rateLimit(service: string): TokenBucket | undefined {
    return this.buckets.get(service);
  }

  /** Requests and connections refused by rate limits, by service. */
  *rateLimited(): Iterable<[string, number]> {
    for (const [service, bucket] of this.buckets) yield [service, bucket.limited];
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

const NO_ENDPOINTS: readonly EndpointView[] = [];

interface PoolInputs {
  service: ServiceView;
  endpoints: readonly EndpointView[];
  policy: TrafficPolicySpec | undefined;
}

function breakerLimits(policy: TrafficPolicySpec['circuitBreaker'] | undefined): BreakerLimits {
  if (policy === undefined) return DEFAULT_BREAKER_LIMITS;
  return {
    maxConnections: policy.maxConnections ?? DEFAULT_BREAKER_LIMITS.maxConnections,
    maxPendingRequests: policy.maxPendingRequests ?? DEFAULT_BREAKER_LIMITS.maxPendingRequests,
    maxRequests: policy.maxRequests ?? DEFAULT_BREAKER_LIMITS.maxRequests,
  };
}

function endpointKey(address: string, port: number): string {
  return `${canonicalAddress(address)}|${port}`;
}
