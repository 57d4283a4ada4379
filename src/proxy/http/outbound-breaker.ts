// Stage "circuit breaker" of the outbound HTTP stack, before exchange(): a request is admitted
// by its destination service's breaker (its connection first, once, while it stays open, by the
// Service the app called; then the request, in flight and pending until sent, by the Service it
// goes to: a route's backend, as Envoy's breakers are per cluster), or answered at once by the agent
// (agent-answer.ts): 503 with `weft-reason: circuit_open` (gRPC: trailers-only UNAVAILABLE) and
// the limit in its text.
import { BreakerSlot, type CircuitBreaker } from '../resilience/breaker.js';
import { agentAnswer } from './agent-answer.js';
import type { L7Response } from './types.js';

/** What the stage keeps per app connection. */
export interface BreakerConnection {
  breaker: CircuitBreaker;
  /** Counted in the breaker's connections (released when the connection closes). */
  admitted: boolean;
}

/**
 * A slot for the request in `breaker` (the connection's own, or its route's backend's), or
 * the agent's answer refusing it.
 */
export function admitRequest(
  c: BreakerConnection,
  grpc: boolean,
  breaker: CircuitBreaker = c.breaker,
): BreakerSlot | L7Response {
  if (!c.admitted) {
    const refused = c.breaker.openConnection();
    if (refused !== undefined) return circuitOpen(c.breaker.describe(refused), grpc);
    c.admitted = true;
  }
  const refused = breaker.startRequest();
  if (refused !== undefined) return circuitOpen(breaker.describe(refused), grpc);
  return new BreakerSlot(breaker);
}

/** The connection closed: its place among the service's connections is free. */
export function releaseConnection(c: BreakerConnection): void {
  if (c.admitted) c.breaker.closeConnection();
  c.admitted = false;
}

function circuitOpen(detail: string, grpc: boolean): L7Response {
  return agentAnswer({ reason: 'circuit_open', detail, grpc });
}
