// Choosing an endpoint among the usable ones. A Balancer sees only endpoints that are
// available (healthy and not ejected) and not already tried; the pool around it filters,
// counts and falls back.
import type { EndpointState } from './endpoint-state.js';
import { P2cEwma } from './p2c-ewma.js';
import { RingHash } from './ring-hash.js';

export type BalancerKind = 'roundRobin' | 'leastConnections' | 'p2cEwma' | 'ringHash';

/** What a ringHash balancer hashes a request on (TrafficPolicy `balancer.hashOn`). */
export interface HashOn {
  header?: string;
  cookie?: string;
  sourceIp?: boolean;
}

/** TrafficPolicy `balancer`, as the data path takes it. */
export interface BalancerSpec {
  type: BalancerKind;
  hashOn?: HashOn;
}

/** What the caller knows about the pick. */
export interface PickContext {
  /** An HTTP request (balanced per request); otherwise an opaque connection. */
  request?: boolean;
  /** ringHash only: the request's key (EndpointPool.hashKey); empty or absent: a random pick. */
  hashKey?: string;
}

/** A source of uniform numbers in [0, 1): Math.random, or a seeded one in tests. */
export type Random = () => number;

export interface Balancer {
  /** Picks one of `candidates` (never empty, all usable) at `now` (the pool's clock). */
  pick(candidates: readonly EndpointState[], ctx: PickContext, now: number): EndpointState;
  /**
   * The pool's whole endpoint set changed (a new snapshot version): what a balancer builds
   * once per set, it builds here, never per pick.
   */
  reset?(all: readonly EndpointState[]): void;
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
 * Fewest in flight (connections, or requests for HTTP), weighted (active / weight); ties go
 * round robin so that an idle set still spreads evenly instead of always picking the first.
 */
export class LeastConnections implements Balancer {
  private readonly tieBreak = new RoundRobin();

  pick(candidates: readonly EndpointState[]): EndpointState {
    let best = Number.POSITIVE_INFINITY;
    const tied: EndpointState[] = [];
    for (const c of candidates) {
      const load = c.active / c.weight;
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

export function createBalancer(kind: BalancerKind, random: Random = Math.random): Balancer {
  switch (kind) {
    case 'roundRobin':
      return new RoundRobin();
    case 'leastConnections':
      return new LeastConnections();
    case 'p2cEwma':
      return new P2cEwma(random);
    case 'ringHash':
      return new RingHash(random);
  }
}
