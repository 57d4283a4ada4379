// Golden request metrics and the per-request access log of the L7 path, from one record per
// request. Names follow the OpenTelemetry/Prometheus habit (seconds, _total), prefixed weft_.
// Labels are bounded: direction, the two service names, the route's name, the status code and
// the gRPC status; never a path, an authority or an endpoint address.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Logger } from '../../sys/logger.js';
import { elapsedMs } from '../address.js';

export interface RequestLabels {
  direction: 'outbound' | 'inbound';
  src_service: string;
  dst_service: string;
  /** The matched route's name; "default" when no route applies. */
  route: string;
}

export interface RequestRecord extends RequestLabels {
  method: string;
  authority: string;
  path: string;
  /** "HTTP/1.1" or "HTTP/2": what the calling app spoke. */
  protocol: string;
  /** The status the caller got; 0 when it got none (the caller or the upstream went away). */
  status: number;
  /** gRPC's status (from the trailers, or trailers-only headers), for gRPC requests. */
  grpc_status?: number;
  /** The caller: the app's address (outbound), the original client's (inbound). */
  src: string;
  /** Inbound: a client the peer claimed from another address than its own (never used). */
  src_claimed?: string;
  /** Inbound: whether the app saw `src` as its peer (else the agent's address). */
  src_preserved?: boolean;
  /** The AuthorizationPolicy that allowed or denied the request, when one decided. */
  policy?: string;
  /** The endpoint the request went to: "ip:port", or "tunnel <node> -> ip:port". */
  endpoint?: string;
  src_identity?: string;
  dst_identity?: string;
  /** Request and response body bytes. */
  request_bytes: number;
  response_bytes: number;
  trace_id?: string;
  /** Why the agent answered itself, or why the exchange broke off. */
  reason?: string;
  error?: string;
}

const LABELS = ['direction', 'src_service', 'dst_service', 'route'] as const;
const FLIGHT = ['direction', 'src_service', 'dst_service'] as const;

/** 0.1 ms to 10 s: a mesh hop is sub-millisecond, a slow backend seconds. */
export const DURATION_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

export class RequestTelemetry {
  private readonly total: Counter<(typeof LABELS)[number] | 'status_code' | 'grpc_status'>;
  private readonly duration: Histogram<(typeof LABELS)[number] | 'status_class'>;
  private readonly inFlight: Gauge<(typeof FLIGHT)[number]>;
  private readonly requestBytes: Counter<(typeof FLIGHT)[number]>;
  private readonly responseBytes: Counter<(typeof FLIGHT)[number]>;

  constructor(
    registry: Registry,
    private readonly log: Logger,
  ) {
    const registers = [registry];
    this.total = new Counter({
      name: 'weft_http_requests_total',
      help: 'HTTP requests, by status code and gRPC status ("" when not gRPC)',
      labelNames: [...LABELS, 'status_code', 'grpc_status'],
      registers,
    });
    this.duration = new Histogram({
      name: 'weft_http_request_duration_seconds',
      help: 'From the request head to the end of the response, in seconds',
      labelNames: [...LABELS, 'status_class'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.inFlight = new Gauge({
      name: 'weft_http_requests_in_flight',
      help: 'HTTP requests started and not yet finished',
      labelNames: FLIGHT,
      registers,
    });
    this.requestBytes = new Counter({
      name: 'weft_http_request_bytes_total',
      help: 'Request body bytes',
      labelNames: FLIGHT,
      registers,
    });
    this.responseBytes = new Counter({
      name: 'weft_http_response_bytes_total',
      help: 'Response body bytes',
      labelNames: FLIGHT,
      registers,
    });
  }

  /** A request starts: in flight until finish() with the same labels. */
  start(labels: Omit<RequestLabels, 'route'>): void {
    this.inFlight.inc(flight(labels));
  }

  /** A request started with start() ends: metrics and its access-log line. */
  finish(record: RequestRecord, started: bigint): void {
    const ms = elapsedMs(started);
    const labels = {
      direction: record.direction,
      src_service: record.src_service,
      dst_service: record.dst_service,
      route: record.route,
    };
    this.inFlight.dec(flight(record));
    this.total.inc({
      ...labels,
      status_code: String(record.status),
      grpc_status: record.grpc_status === undefined ? '' : String(record.grpc_status),
    });
    this.duration.observe({ ...labels, status_class: statusClass(record.status) }, ms / 1000);
    this.requestBytes.inc(flight(record), record.request_bytes);
    this.responseBytes.inc(flight(record), record.response_bytes);
    this.log.info({ ...record, duration_ms: ms }, 'request');
  }
}

function flight(r: Omit<RequestLabels, 'route'>) {
  return { direction: r.direction, src_service: r.src_service, dst_service: r.dst_service };
}

/** "2xx" .. "5xx"; "0" when no status was sent. */
export function statusClass(status: number): string {
  return status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : '0';
}
