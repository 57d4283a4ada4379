// The answers the route stage makes itself, with no upstream. A fault's abort, unusable
// backends and a client gone during a fault's delay are agent answers (agent-answer.ts's one
// format, weft-reason a word of close-reason.ts); a redirect is a normal response, as the
// operator configured it (its record's close reason, route_redirect, says the route made it).
import { Readable } from 'node:stream';
import { agentAnswer } from '../http/agent-answer.js';
import type { L7Response } from '../http/types.js';

/** RequestRedirect: the status and Location, an empty body; no weft-reason (not an error). */
export function redirectAnswer(status: number, location: string): L7Response {
  return {
    status,
    headers: { location, 'content-length': '0' },
    body: Readable.from([], { objectMode: false }),
    trailers: () => undefined,
    reason: 'route_redirect',
  };
}

/** A fault's abort: the gRPC status as a trailers-only answer, else the HTTP status. */
export function abortAnswer(
  httpStatus: number | undefined,
  grpcStatus: number | undefined,
): L7Response {
  const detail = 'fault injected';
  return grpcStatus !== undefined
    ? agentAnswer({ reason: 'fault_abort', detail, grpc: true, status: grpcStatus })
    : agentAnswer({ reason: 'fault_abort', detail, grpc: false, status: httpStatus ?? 500 });
}

/** The rule's backends are unusable: 500, or INTERNAL as gRPC maps an HTTP 500. */
export function unavailableAnswer(detail: string, grpc: boolean): L7Response {
  return agentAnswer({ reason: 'route_backend_unavailable', detail, grpc });
}

/**
 * The client left during a fault's delay: nothing is sent upstream and nothing can be answered;
 * the record says client_reset, as for a client gone at any other point.
 */
export function clientGoneAnswer(grpc: boolean): L7Response {
  return agentAnswer({
    reason: 'client_reset',
    detail: 'the client went away during a fault delay',
    grpc,
  });
}
