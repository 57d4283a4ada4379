// The endpoints of one service as the data path sees them: kept across snapshot versions (so
// counters, ejections and latency estimates survive an update), filtered to the usable ones,
// balanced per connection (opaque TCP) or per request (HTTP). It is the outlier group of its
// endpoints: TrafficPolicy.outlierDetection's settings, and leave to eject (maxEjectionPercent).
import type { EndpointView } from '../../controlplane-client/mesh-view.js';
import {
  type Balancer,
  type BalancerKind,
  type BalancerSpec,
  createBalancer,
  LeastConnections,
  type PickContext,
  type Random,
} from './balancer.js';
import { EndpointState, type OutlierGroup } from './endpoint-state.js';
import { type HashKeyOf, type HashSource, hashKeyOf } from './hash-key.js';
import {
  DEFAULT_OUTLIER_DETECTION,
  mayEject,
  type OutlierDetection,
  sameOutlier,
} from './outlier.js';
import { P2cEwma } from './p2c-ewma.js';

export interface EndpointCounts {
  healthy: number;
  unhealthy: number;
  ejected: number;
}

/** TrafficPolicy `balancer` (or just its type); undefined when the policy sets none. */
export type BalancerChoice = BalancerKind | BalancerSpec | undefined;

export class EndpointPool implements OutlierGroup {
  private states: EndpointState[] = [];
  private spec: BalancerSpec | undefined;
  private forRequests!: Balancer;
  private forConnections!: Balancer;
  private keyOf: HashKeyOf | undefined;

  constructor(
    readonly service: string,
    balancer?: BalancerChoice,
    /** Replaced by update() when the policy changes: endpoints read it at each failure. */
    public outlier: OutlierDetection = DEFAULT_OUTLIER_DETECTION,
    readonly now: () => number = Date.now,
    private readonly random: Random = Math.random,
  ) {
    this.configure(specOf(balancer));
  }

  /**
   * Takes a new endpoint list (a new snapshot version), keeping state of known endpoints, and
   * the service's outlier detection (undefined: unchanged).
   */
  update(
    endpoints: readonly EndpointView[],
    balancer?: BalancerChoice,
    outlier?: OutlierDetection,
  ): void {
    if (outlier !== undefined && !sameOutlier(outlier, this.outlier)) this.outlier = outlier;
    const previous = new Map(this.states.map((s) => [s.key, s]));
    this.states = endpoints.map((ep) => {
      const state = previous.get(ep.workload);
      if (!state) return new EndpointState(ep, this);
      state.endpoint = ep;
      return state;
    });
    const spec = specOf(balancer);
    if (!sameSpec(spec, this.spec)) this.configure(spec);
    else this.resetBalancers();
  }

  /**
   * Picks an endpoint, skipping `exclude` (those already tried for this connection or
   * request). `ctx.request` marks an HTTP request: without a configured balancer requests go
   * by latency (p2cEwma) and connections by least connections. Undefined when none is usable:
   * the caller fails the connection or request at once.
   */
  pick(exclude?: ReadonlySet<EndpointState>, ctx: PickContext = {}): EndpointState | undefined {
    const now = this.now();
    const usable = this.states.filter((s) => s.available(now) && !exclude?.has(s));
    if (usable.length === 0) return undefined;
    const balancer = ctx.request ? this.forRequests : this.forConnections;
    const chosen = balancer.pick(usable, ctx, now);
    chosen.taken(now);
    return chosen;
  }

  /**
   * The ringHash key of a request or connection per the policy's `hashOn` (for
   * `pick(..., { hashKey })`); undefined when the balancer is not ringHash or the request has
   * no such key (the pick is then random).
   */
  hashKey(source: HashSource): string | undefined {
    return this.keyOf?.(source);
  }

  /** The one endpoint matching `match` (a connection to a known endpoint address), if usable. */
  find(
    match: (s: EndpointState) => boolean,
    exclude?: ReadonlySet<EndpointState>,
  ): EndpointState | undefined {
    const now = this.now();
    const found = this.states.find((s) => match(s) && s.available(now) && !exclude?.has(s));
    found?.taken(now);
    return found;
  }

  /** OutlierGroup: maxEjectionPercent of the pool, and never its last usable endpoint. */
  mayEject(candidate: EndpointState, now: number): boolean {
    let ejected = 0;
    let usable = 0;
    for (const s of this.states) {
      if (s.ejected(now)) ejected += 1;
      else if (s.endpoint.health !== 'unhealthy' || s === candidate) usable += 1;
    }
    return mayEject(this.outlier, { size: this.states.length, ejected, usable });
  }

  counts(): EndpointCounts {
    const now = this.now();
    let healthy = 0;
    let unhealthy = 0;
    let ejected = 0;
    for (const s of this.states) {
      if (s.endpoint.health === 'unhealthy') unhealthy += 1;
      else if (s.ejected(now)) ejected += 1;
      else healthy += 1;
    }
    return { healthy, unhealthy, ejected };
  }

  get size(): number {
    return this.states.length;
  }

  private configure(spec: BalancerSpec | undefined): void {
    this.spec = spec;
    if (spec) {
      this.forRequests = createBalancer(spec.type, this.random);
      this.forConnections = this.forRequests;
    } else {
      // Linkerd's defaults: HTTP balanced per request by latency, TCP per connection.
      this.forRequests = new P2cEwma(this.random);
      this.forConnections = new LeastConnections();
    }
    this.keyOf = spec?.type === 'ringHash' ? hashKeyOf(spec.hashOn) : undefined;
    this.resetBalancers();
  }

  private resetBalancers(): void {
    this.forRequests.reset?.(this.states);
    if (this.forConnections !== this.forRequests) this.forConnections.reset?.(this.states);
  }
}

function specOf(choice: BalancerChoice): BalancerSpec | undefined {
  return typeof choice === 'string' ? { type: choice } : choice;
}

function sameSpec(a: BalancerSpec | undefined, b: BalancerSpec | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  const h = (s: BalancerSpec) => [s.hashOn?.header, s.hashOn?.cookie, s.hashOn?.sourceIp];
  return a.type === b.type && h(a).every((v, i) => v === h(b)[i]);
}
