// Golden request metrics and the per-request access log of the L7 path, from one record per
// request. Names follow the OpenTelemetry/Prometheus habit (seconds, _total), prefixed weft_.
// Labels are bounded: direction, the two service names, the route's name, the status code and
// the gRPC status; never a path, an authority or an endpoint address.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { type LineWriter, type Logger, lineWriter } from '../../sys/logger.js';
import { elapsedMs } from '../address.js';
import {
  type ConnectionLabels,
  connectionLabels,
  FLIGHT_LABELS,
  logLine,
  REQUEST_LABELS,
  REQUEST_LINE,
  type RequestRecord,
  requestDurationLabels,
  requestTotalLabels,
} from '../records.js';

export type { RequestRecord } from '../records.js';

const LABELS = REQUEST_LABELS;
const FLIGHT = FLIGHT_LABELS;

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

  private readonly line: LineWriter;

  constructor(registry: Registry, log: Logger) {
    // The access log's writer, picked once (see lineWriter): one line per request.
    this.line = lineWriter(log);
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
  start(labels: ConnectionLabels): void {
    this.inFlight.inc(connectionLabels(labels));
  }

  /** A request started with start() ends: metrics and its access-log line. */
  finish(record: RequestRecord, started: bigint): void {
    const ms = elapsedMs(started);
    const flight = connectionLabels(record);
    this.inFlight.dec(flight);
    this.total.inc(requestTotalLabels(record));
    this.duration.observe(requestDurationLabels(record), ms / 1000);
    this.requestBytes.inc(flight, record.request_bytes);
    this.responseBytes.inc(flight, record.response_bytes);
    this.line(logLine(record, ms), REQUEST_LINE);
  }
}
