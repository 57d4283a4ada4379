// One record of a connection or a request, for every path, and the one place that turns a
// record into its metric labels and its access-log line (telemetry.ts counts connections,
// http/request-telemetry.ts requests, both through here), so no path can word them otherwise.
import type { CloseReason } from './close-reason.js';

export type Direction = 'outbound' | 'inbound';

/** The fields every record has, connection or request. */
export interface RecordBase {
  direction: Direction;
  /** The caller's service (from its identity), or "unknown". */
  src_service: string;
  /** The destination's service, "external" (not the mesh's) or "unknown". */
  dst_service: string;
  /** The caller: the app's "ip:port" (outbound), the original client's (inbound). */
  src: string;
  /** Inbound through the tunnel: the peer agent's address (`src` is the original client's). */
  peer?: string;
  /** Inbound: whether the application saw `src` as its peer (false: the agent's address). */
  src_preserved?: boolean;
  /** A client a tunnel peer claimed from another address than its own: logged, never used. */
  src_claimed?: string;
  /** Where it went: "ip:port", or "tunnel <node> -> ip:port". */
  endpoint?: string;
  src_identity?: string;
  dst_identity?: string;
  /** The W3C trace id (requests; a connection has none). */
  trace_id?: string;
  /** Why it ended (close-reason.ts); "done" when nothing went wrong. */
  close_reason: CloseReason;
  /** What went wrong, in words (an errno code, a policy's refusal, ...). */
  error?: string;
}

/** A TCP connection: captured (15001, 15006), or a CONNECT stream of the tunnel (15008). */
export interface ConnectionRecord extends RecordBase {
  /** The original destination "ip:port" (or the CONNECT's :authority). */
  dst: string;
  src_uid?: number;
  src_unit?: string;
  /** "mtls", "plaintext" or "local" (same host, no tunnel). */
  security?: string;
  /** Bytes of the connection (every byte on the wire), from the client and to it. */
  bytes_sent: number;
  bytes_received: number;
}

/** An HTTP request on the L7 path (an app's connection, a tunnel stream, a same-host call). */
export interface RequestRecord extends RecordBase {
  /** The matched route's name; "default" when no route applies. */
  route: string;
  method: string;
  authority: string;
  path: string;
  /** "HTTP/1.1" or "HTTP/2": what the calling app spoke. */
  protocol: string;
  /** The status the caller got; 0 when it got none (the caller or the upstream went away). */
  status: number;
  /** gRPC's status (from the trailers, or trailers-only headers), for gRPC requests. */
  grpc_status?: number;
  /** The AuthorizationPolicy that allowed or denied the request, when one decided. */
  policy?: string;
  /** Body bytes of the request and of the response. */
  request_bytes: number;
  response_bytes: number;
}

/** A connection record while it is open: the end's fields come at close. */
export type OpenConnection = Omit<
  ConnectionRecord,
  'bytes_sent' | 'bytes_received' | 'close_reason'
>;
/** A connection refused before it opened: it has its reason, and no bytes. */
export type RefusedConnection = Omit<ConnectionRecord, 'bytes_sent' | 'bytes_received'>;

/** The labels of every weft_tcp_* series (bounded: no addresses). */
export interface ConnectionLabels {
  direction: Direction;
  src_service: string;
  dst_service: string;
}

export const CONNECTION_LABELS = ['direction', 'src_service', 'dst_service'] as const;

export function connectionLabels(r: ConnectionLabels): ConnectionLabels {
  return { direction: r.direction, src_service: r.src_service, dst_service: r.dst_service };
}

/** weft_tcp_close_total's: the connection's labels and its close reason. */
export function closeLabels(r: ConnectionLabels & { close_reason: CloseReason }) {
  return { ...connectionLabels(r), reason: r.close_reason };
}

/** The labels of weft_http_requests_total and the duration histogram (bounded: no paths). */
export const REQUEST_LABELS = ['direction', 'src_service', 'dst_service', 'route'] as const;
/** In flight and bytes: the route is not known when a request starts. */
export const FLIGHT_LABELS = CONNECTION_LABELS;

export function requestLabels(r: Pick<RequestRecord, (typeof REQUEST_LABELS)[number]>) {
  return {
    direction: r.direction,
    src_service: r.src_service,
    dst_service: r.dst_service,
    route: r.route,
  };
}

export function requestTotalLabels(r: RequestRecord) {
  return {
    ...requestLabels(r),
    status_code: String(r.status),
    grpc_status: r.grpc_status === undefined ? '' : String(r.grpc_status),
  };
}

export function requestDurationLabels(r: RequestRecord) {
  return { ...requestLabels(r), status_class: statusClass(r.status) };
}

/** "2xx" .. "5xx"; "0" when no status was sent. */
export function statusClass(status: number): string {
  return status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : '0';
}

/** The access-log messages: one line per connection, one per request. */
export const CONNECTION_LINE = 'connection';
export const REQUEST_LINE = 'request';

/** A record's access-log line (pino's object): the record and how long it lasted. */
export function logLine(
  record: ConnectionRecord | RequestRecord,
  durationMs: number,
): Record<string, unknown> {
  return { ...record, duration_ms: durationMs };
}

/**
 * What a span reports as its error: the close reason when not done (a route's redirect is no
 * error either), else the record's error.
 */
export function recordError(r: RecordBase): string | undefined {
  return r.close_reason !== 'done' && r.close_reason !== 'route_redirect'
    ? r.close_reason
    : r.error;
}

/**
 * The destination's side of a same-host connection (no tunnel, so no receiving agent records
 * it): inbound, from the caller's address and identity to the endpoint.
 */
export function sameHostInbound(outbound: OpenConnection): OpenConnection {
  const endpoint = outbound.endpoint ?? outbound.dst;
  return {
    direction: 'inbound',
    src: outbound.src,
    dst: endpoint,
    src_service: outbound.src_service,
    dst_service: outbound.dst_service,
    ...(outbound.src_identity ? { src_identity: outbound.src_identity } : {}),
    endpoint,
    security: 'local',
  };
}
