// The endpoints of one service as the data path sees them: kept across snapshot versions (so
// counters and ejections survive an update), filtered to the usable ones, balanced.
import type { EndpointView } from '../../controlplane-client/mesh-view.js';
import { type Balancer, type BalancerKind, createBalancer } from './balancer.js';
import { defaultFailureAccrual, EndpointState, type FailureAccrual } from './endpoint-state.js';

export interface EndpointCounts {
  healthy: number;
  unhealthy: number;
  ejected: number;
}

export class EndpointPool {
  private states: EndpointState[] = [];
  private balancer: Balancer;
  private balancerKind: BalancerKind | undefined;

  constructor(
    readonly service: string,
    kind?: BalancerKind,
    private readonly accrual: FailureAccrual = defaultFailureAccrual,
    private readonly now: () => number = Date.now,
  ) {
    this.balancerKind = kind;
    this.balancer = createBalancer(kind);
  }

  /** Takes a new endpoint list (a new snapshot version), keeping state of known endpoints. */
  update(endpoints: readonly EndpointView[], kind?: BalancerKind): void {
    const previous = new Map(this.states.map((s) => [s.key, s]));
    this.states = endpoints.map((ep) => {
      const state = previous.get(ep.workload);
      if (!state) return new EndpointState(ep, this.accrual);
      state.endpoint = ep;
      return state;
    });
    if (kind !== this.balancerKind) {
      this.balancerKind = kind;
      this.balancer = createBalancer(kind);
    }
  }

  /**
   * Picks an endpoint, skipping `exclude` (those already tried for this connection).
   * Undefined when none is usable: the caller fails the connection at once.
   */
  pick(exclude?: ReadonlySet<EndpointState>): EndpointState | undefined {
    const now = this.now();
    const usable = this.states.filter((s) => s.available(now) && !exclude?.has(s));
    if (usable.length === 0) return undefined;
    const chosen = this.balancer.pick(usable);
    chosen.taken(now);
    return chosen;
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
}
