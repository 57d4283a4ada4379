// Responses the agent makes itself (bad request, denied, the app unreachable): for HTTP a
// status with `weft-reason` and a one-line text body; for gRPC a trailers-only response
// (HTTP 200, grpc-status and grpc-message in the headers), which is how a gRPC server
// reports an error before any message (gRPC over HTTP/2, "Trailers-Only").
import { Readable } from 'node:stream';
import { isGrpc as isGrpcContentType } from './outbound-wire.js';
import type { HeaderMap, L7Response } from './types.js';
import { headerSafe, REASON_HEADER, UNDELIVERED_HEADER } from './wire-headers.js';

/** gRPC status codes the agent answers with (grpc/doc/statuscodes.md). */
export const GRPC_UNAVAILABLE = 14;
export const GRPC_PERMISSION_DENIED = 7;
export const GRPC_INTERNAL = 13;

/** A gRPC request: its content-type is application/grpc, or application/grpc+proto etc. */
export function isGrpc(headers: HeaderMap): boolean {
  return isGrpcContentType(headers['content-type']);
}

/** The HTTP status's gRPC equivalent for an agent's own answer (grpc's http-grpc-status-mapping). */
export function grpcStatusOf(status: number): number {
  if (status === 403) return GRPC_PERMISSION_DENIED;
  if (status === 502 || status === 503 || status === 504) return GRPC_UNAVAILABLE;
  return GRPC_INTERNAL;
}

/** grpc-message: UTF-8, each byte outside printable ASCII, and %, percent-encoded (PROTOCOL-HTTP2). */
function grpcMessage(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text.slice(0, 200))) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export interface AgentAnswer {
  status: number;
  /** Why: sent as weft-reason (and grpc-message), logged. */
  reason: string;
  /** Answer as a gRPC server would (trailers-only with the status's gRPC code). */
  grpc: boolean;
  /** The request reached no app (its connect failed): the caller's agent may try another. */
  undelivered?: boolean;
  /** A stable code sent as weft-reason instead of the text (which stays in the body). */
  code?: string;
  /** Ask gRPC clients not to retry (gRFC A6: a negative grpc-retry-pushback-ms). */
  noRetry?: boolean;
}

export function agentAnswer({
  status,
  reason,
  grpc,
  undelivered,
  code,
  noRetry,
}: AgentAnswer): L7Response {
  const mark: HeaderMap = undelivered ? { [UNDELIVERED_HEADER]: 'connect_failed' } : {};
  const why = code ?? headerSafe(reason);
  if (grpc) {
    return {
      status: 200,
      headers: {
        'content-type': 'application/grpc',
        'grpc-status': String(grpcStatusOf(status)),
        'grpc-message': grpcMessage(reason),
        [REASON_HEADER]: why,
        ...(noRetry ? { 'grpc-retry-pushback-ms': '-1' } : {}),
        ...mark,
      },
      body: Readable.from([]),
      trailers: () => undefined,
      reason,
    };
  }
  const text = Buffer.from(`${headerSafe(reason)}\n`);
  return {
    status,
    headers: {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': String(text.length),
      [REASON_HEADER]: why,
      ...mark,
    },
    body: Readable.from([text]),
    trailers: () => undefined,
    reason,
  };
}
