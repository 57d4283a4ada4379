// The answers the route stage makes itself, with no upstream: a redirect, a fault's abort (an
// HTTP status, or a gRPC status as a trailers-only response), and the 500 of a rule whose
// backends are unusable. Each carries `weft-reason` so the caller can tell them from an app's.
import { Readable } from 'node:stream';
import type { L7Response } from '../http/types.js';
import { REASON_HEADER } from '../http/wire-headers.js';

export type RouteReason =
  | 'route_redirect'
  | 'fault_abort'
  | 'route_backend_unavailable'
  | 'client_gone';

export function redirectAnswer(status: number, location: string): L7Response {
  return plain(status, '', { location }, 'route_redirect');
}

/** A fault's abort: the gRPC status as a trailers-only answer, else the HTTP status. */
export function abortAnswer(
  httpStatus: number | undefined,
  grpcStatus: number | undefined,
): L7Response {
  if (grpcStatus !== undefined) {
    return {
      status: 200,
      headers: {
        'content-type': 'application/grpc',
        'grpc-status': String(grpcStatus),
        'grpc-message': 'weft%3A%20fault%20injected',
        [REASON_HEADER]: 'fault_abort',
      },
      body: Readable.from([], { objectMode: false }),
      trailers: () => undefined,
      reason: 'fault_abort',
    };
  }
  return plain(httpStatus ?? 500, 'weft: fault injected\n', {}, 'fault_abort');
}

export function unavailableAnswer(detail: string, grpc: boolean): L7Response {
  if (grpc) {
    return {
      status: 200,
      headers: {
        'content-type': 'application/grpc',
        // INTERNAL, as gRPC maps an HTTP 500.
        'grpc-status': '13',
        'grpc-message': encodeURIComponent(`weft: ${detail}`),
        [REASON_HEADER]: 'route_backend_unavailable',
      },
      body: Readable.from([], { objectMode: false }),
      trailers: () => undefined,
      reason: 'route_backend_unavailable',
    };
  }
  return plain(500, `weft: ${detail}\n`, {}, 'route_backend_unavailable');
}

/**
 * The client left during a fault's delay: nothing is sent upstream and nothing can be answered;
 * the record says 499 (nginx's "client closed request", which operators know).
 */
export function clientGoneAnswer(): L7Response {
  return plain(499, '', {}, 'client_gone');
}

function plain(
  status: number,
  text: string,
  extra: Record<string, string>,
  reason: RouteReason,
): L7Response {
  const body = Buffer.from(text);
  return {
    status,
    headers: {
      ...extra,
      'content-type': 'text/plain; charset=utf-8',
      'content-length': String(body.length),
      [REASON_HEADER]: reason,
    },
    body: Readable.from(body.length === 0 ? [] : [body], { objectMode: false }),
    trailers: () => undefined,
    reason,
  };
}
