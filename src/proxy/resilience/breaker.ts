// Circuit breaking per destination service on the calling agent (Envoy's thresholds, counted
// the way weft's data path can count them honestly): beyond a limit a new connection or request
// fails fast instead of queueing behind an overloaded service.
//
// What is counted, per destination service, on this agent:
// - connections: the app connections captured to the service and open now (an opaque
//   connection, or an HTTP connection once it carries a request). Envoy counts its upstream
//   connections; weft's tunnel sessions are per peer host and shared by every service, so the
//   connections apps hold to the service are the honest analogue.
// - requests: HTTP requests (HTTP/1.1 requests, HTTP/2 and gRPC streams) started and not yet
//   answered to the end, pending ones included.
// - pending: requests admitted and not yet sent: waiting for a tunnel session to the chosen
//   endpoint's host (its TLS handshake) before their head goes out. A same-host call is sent
//   when it is handed to the inbound stack (its local connection is the inbound stack's).
// Pure state and decisions, no clock: unit-tested in test/unit/breaker.test.ts.
import { CIRCUIT_BREAKER_DEFAULTS } from '../../api/resources/traffic-policy-defaults.js';

export type BreakerLimit = 'max_connections' | 'max_pending_requests' | 'max_requests';

export interface BreakerLimits {
  maxConnections: number;
  maxPendingRequests: number;
  maxRequests: number;
}

/** TrafficPolicy.circuitBreaker's defaults (1024 each, Envoy's): what a service without one gets. */
export const DEFAULT_BREAKER_LIMITS: BreakerLimits = { ...CIRCUIT_BREAKER_DEFAULTS };

/** The policy field each limit comes from, for messages. */
const FIELD: Record<BreakerLimit, keyof BreakerLimits> = {
  max_connections: 'maxConnections',
  max_pending_requests: 'maxPendingRequests',
  max_requests: 'maxRequests',
};

export class CircuitBreaker {
  connections = 0;
  requests = 0;
  pending = 0;
  /** Rejections since start, by limit (weft_circuit_breaker_rejections_total). */
  readonly rejections: Record<BreakerLimit, number> = {
    max_connections: 0,
    max_pending_requests: 0,
    max_requests: 0,
  };

  constructor(
    readonly service: string,
    /** Replaced in place by each snapshot: counts in flight carry over to the new limits. */
    public limits: BreakerLimits = DEFAULT_BREAKER_LIMITS,
  ) {}

  /** An app connection to the service opens: undefined when admitted, else the limit it hit. */
  openConnection(): BreakerLimit | undefined {
    if (this.connections >= this.limits.maxConnections) return this.reject('max_connections');
    this.connections += 1;
    return undefined;
  }

  /** An admitted connection closed. */
  closeConnection(): void {
    this.connections -= 1;
  }

  /**
   * A request starts: undefined when admitted (then in flight and pending until sent), else
   * the limit it hit. Requests in flight are judged first: a full service is full.
   */
  startRequest(): BreakerLimit | undefined {
    if (this.requests >= this.limits.maxRequests) return this.reject('max_requests');
    if (this.pending >= this.limits.maxPendingRequests) return this.reject('max_pending_requests');
    this.requests += 1;
    this.pending += 1;
    return undefined;
  }

  /** Why a limit refused, for the agent's answer and the log. */
  describe(limit: BreakerLimit): string {
    const field = FIELD[limit];
    const what =
      limit === 'max_connections'
        ? 'connections open'
        : limit === 'max_requests'
          ? 'requests in flight'
          : 'requests waiting for a tunnel session';
    return `circuit breaker open for ${this.service}: ${this.limits[field]} ${what} (circuitBreaker.${field})`;
  }

  private reject(limit: BreakerLimit): BreakerLimit {
    this.rejections[limit] += 1;
    return limit;
  }
}

/**
 * One admitted request's hold on its breaker: pending until sent(), in flight until end().
 * Both are idempotent, so a retry's second send or a double end cannot skew the counts.
 */
export class BreakerSlot {
  private state: 0 | 1 | 2 = 0; // 0 pending, 1 sent, 2 ended

  constructor(private readonly breaker: CircuitBreaker) {}

  /** The request's head went out (on a tunnel session, or to the same-host inbound stack). */
  sent(): void {
    if (this.state !== 0) return;
    this.state = 1;
    this.breaker.pending -= 1;
  }

  /** The request is over (answered to the end, or abandoned). */
  end(): void {
    if (this.state === 2) return;
    if (this.state === 0) this.breaker.pending -= 1;
    this.state = 2;
    this.breaker.requests -= 1;
  }
}
