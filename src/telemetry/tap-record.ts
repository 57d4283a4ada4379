// What a tap shows of one request: a copy of the L7 engine's request record (never the record
// itself, which the data path owns), with the request's headers only when the tap asked, and
// the sensitive ones redacted (their names kept, so a reader sees they were sent).
import type { RequestRecord } from '../proxy/records.js';

/** Always redacted: credentials and session state. The agent config's tap.redactHeaders adds. */
export const SENSITIVE_HEADERS = [
  'authorization',
  'cookie',
  'set-cookie',
  'proxy-authorization',
] as const;
export const REDACTED = '[redacted]';

export type TapHeaders = Record<string, string | string[] | undefined>;

export interface TapRecord {
  /** When the request finished, ISO 8601. */
  time: string;
  node: string;
  direction: RequestRecord['direction'];
  method: string;
  authority: string;
  path: string;
  protocol: string;
  status: number;
  grpc_status?: number;
  duration_ms: number;
  route: string;
  src: string;
  src_service: string;
  dst_service: string;
  src_identity?: string;
  dst_identity?: string;
  endpoint?: string;
  request_bytes: number;
  response_bytes: number;
  trace_id?: string;
  close_reason: string;
  headers?: Record<string, string>;
}

/** A tap's copy of a finished request. `redact` holds lowercase header names. */
export function tapRecord(
  node: string,
  r: RequestRecord,
  durationMs: number,
  finishedAtMs: number,
  headers: TapHeaders | undefined,
  redact: ReadonlySet<string>,
): TapRecord {
  return {
    time: new Date(finishedAtMs).toISOString(),
    node,
    direction: r.direction,
    method: r.method,
    authority: r.authority,
    path: r.path,
    protocol: r.protocol,
    status: r.status,
    ...(r.grpc_status === undefined ? {} : { grpc_status: r.grpc_status }),
    duration_ms: Math.round(durationMs * 1000) / 1000,
    route: r.route,
    src: r.src,
    src_service: r.src_service,
    dst_service: r.dst_service,
    ...(r.src_identity === undefined ? {} : { src_identity: r.src_identity }),
    ...(r.dst_identity === undefined ? {} : { dst_identity: r.dst_identity }),
    ...(r.endpoint === undefined ? {} : { endpoint: r.endpoint }),
    request_bytes: r.request_bytes,
    response_bytes: r.response_bytes,
    ...(r.trace_id === undefined ? {} : { trace_id: r.trace_id }),
    close_reason: r.close_reason,
    ...(headers === undefined ? {} : { headers: redactedHeaders(headers, redact) }),
  };
}

/** The request's headers as text, pseudo-headers left out (the record has them), redacted. */
export function redactedHeaders(
  headers: TapHeaders,
  redact: ReadonlySet<string>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || name.startsWith(':')) continue;
    const key = name.toLowerCase();
    out[key] = redact.has(key) ? REDACTED : Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}
