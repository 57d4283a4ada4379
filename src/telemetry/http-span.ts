// What a request's span says, in OpenTelemetry's HTTP semantic conventions (stable since
// v1.23): the name and attributes at its start, the status and error at its end. Pure.
import type { SpanAttributes, SpanKind, SpanResult, SpanStart } from './tracer.js';

/** The request as a span describes it (an L7Request fits). */
export interface HttpSpanRequest {
  method: string;
  /** `:authority` or Host: server.address and server.port. */
  authority: string;
  /** Origin-form path and query: only the path is recorded (a query may hold secrets). */
  path: string;
  /** What the calling app spoke: network.protocol.version. */
  version: '1.1' | '2';
}

/** The two sides of the call, as weft names them in its metrics. */
export interface SpanServices {
  src: string;
  dst: string;
}

// The methods the conventions name; others are recorded as "_OTHER" with the original beside
// it, so a client inventing methods cannot inflate the set of span names.
const KNOWN_METHODS = new Set([
  'CONNECT',
  'DELETE',
  'GET',
  'HEAD',
  'OPTIONS',
  'PATCH',
  'POST',
  'PUT',
  'TRACE',
]);

/** A request's span at its start. Named by its method: weft knows no route template yet. */
export function httpSpan(kind: SpanKind, req: HttpSpanRequest, services: SpanServices): SpanStart {
  const known = KNOWN_METHODS.has(req.method);
  const attributes: SpanAttributes = {
    'http.request.method': known ? req.method : '_OTHER',
    'url.scheme': 'http',
    'url.path': pathOnly(req.path),
    'network.protocol.name': 'http',
    'network.protocol.version': req.version,
    'weft.src.service': services.src,
    'weft.dst.service': services.dst,
  };
  if (!known) attributes['http.request.method_original'] = req.method;
  const server = splitAuthority(req.authority);
  if (server.address !== '') attributes['server.address'] = server.address;
  if (server.port !== undefined) attributes['server.port'] = server.port;
  return { name: known ? req.method : 'HTTP', kind, attributes };
}

/** How a span ends: its attributes, and whether its status is Error (with error.type). */
export interface SpanOutcome {
  attributes: SpanAttributes;
  /** Set when the span's status is Error: error.type's value. */
  errorType: string | undefined;
}

/**
 * The conventions' status rules: an HTTP 5xx is an error on both sides, a 4xx only for the
 * client (the server answered as it should); a gRPC status other than OK is an error for the
 * client, and for the server only the codes that say the server failed (UNKNOWN,
 * DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS). No status at all (the
 * exchange broke off) or an error the stack reports is an error everywhere.
 */
export function spanOutcome(kind: SpanKind, result: SpanResult): SpanOutcome {
  const attributes: SpanAttributes = {};
  if (result.status > 0) attributes['http.response.status_code'] = result.status;
  const grpc = result.grpcStatus;
  if (grpc !== undefined) {
    attributes['rpc.system'] = 'grpc';
    attributes['rpc.grpc.status_code'] = grpc;
  }
  let errorType: string | undefined;
  if (result.error !== undefined) errorType = result.error;
  else if (result.status <= 0) errorType = 'no_response';
  else if (result.status >= (kind === 'client' ? 400 : 500)) errorType = String(result.status);
  else if (grpc !== undefined && (kind === 'client' ? grpc !== 0 : GRPC_SERVER_FAULTS.has(grpc)))
    errorType = String(grpc);
  if (errorType !== undefined) attributes['error.type'] = errorType;
  return { attributes, errorType };
}

const GRPC_SERVER_FAULTS = new Set([2, 4, 12, 13, 14, 15]);

function pathOnly(path: string): string {
  const q = path.indexOf('?');
  return q === -1 ? path : path.slice(0, q);
}

/** "host", "host:port", "[v6]" or "[v6]:port"; anything unparseable: the whole as the host. */
function splitAuthority(authority: string): { address: string; port: number | undefined } {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d{1,5}))?$/.exec(authority);
  if (m === null) return { address: authority, port: undefined };
  const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
  const port = m[2] === undefined ? undefined : Number(m[2]);
  return { address: host, port: port !== undefined && port <= 65535 ? port : undefined };
}
