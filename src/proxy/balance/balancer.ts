// Choosing an endpoint among the usable ones. A Balancer sees only endpoints that are
// available (healthy and not ejected); the pool around it filters, counts and falls back.
import type { EndpointState } from './endpoint-state.js';

export type BalancerKind = 'roundRobin' | 'leastConnections' | 'p2cEwma' | 'ringHash';

export interface Balancer {
  /** Picks one of `candidates` (never empty). */
  pick(candidates: readonly EndpointState[]): EndpointState;
}

export class RoundRobin implements Balancer {
  private next = 0;

  pick(candidates: readonly EndpointState[]): EndpointState {
    const chosen = candidates[this.next % candidates.length]!;
    this.next = (this.next + 1) % 0x7fffffff;
    return chosen;
  }
}

/**
 * Fewest connections in flight, weighted (active / weight); ties go round robin so that an
 * idle set still spreads evenly instead of always picking the first endpoint.
 */
export class LeastConnections implements Balancer {
  private readonly tieBreak = new RoundRobin();

  pick(candidates: readonly EndpointState[]): EndpointState {
    let best = Number.POSITIVE_INFINITY;
    const tied: EndpointState[] = [];
    for (const c of candidates) {
      const load = c.active / Math.max(1, c.endpoint.weight);
      if (load < best) {
        best = load;
        tied.length = 0;
        tied.push(c);
      } else if (load === best) {
        tied.push(c);
      }
    }
    return tied.length === 1 ? tied[0]! : this.tieBreak.pick(tied);
  }
}

/** The balancers this build has; kinds not built yet fall back to least connections. */
export function createBalancer(kind: BalancerKind | undefined): Balancer {
  switch (kind) {
    case 'roundRobin':
      return new RoundRobin();
    default:
      // p2cEwma and ringHash arrive with the L7 path; least connections is the closest
      // per-connection behaviour meanwhile.
      return new LeastConnections();
  }
}
