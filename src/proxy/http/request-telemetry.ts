// Golden request metrics and the per-request access log of the L7 path, from one record per
// request. Names follow the OpenTelemetry/Prometheus habit (seconds, _total), prefixed weft_.
// Labels are bounded: direction, the two service names, the route's name, the status code and
// the gRPC status; never a path, an authority or an endpoint address.
import type { Registry } from 'prom-client';
import { type LineWriter, type Logger, lineWriter } from '../../sys/logger.js';
import type { RecentErrors } from '../../telemetry/recent-errors.js';
import type { TapHub } from '../../telemetry/tap-hub.js';
import type { TapHeaders } from '../../telemetry/tap-record.js';
import { elapsedMs } from '../address.js';
import {
  type ConnectionLabels,
  connectionLabels,
  logLine,
  REQUEST_LINE,
  type RequestRecord,
  requestDurationLabels,
  requestTotalLabels,
  statusClass,
} from '../records.js';
import { HistogramFamily, ValueFamily } from './request-series.js';

export type { RequestRecord } from '../records.js';

/** 0.1 ms to 10 s: a mesh hop is sub-millisecond, a slow backend seconds. */
export const DURATION_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** Request and response body bytes of one (direction, source, destination): one cell. */
interface BytesCell {
  readonly labels: ConnectionLabels;
  request: number;
  response: number;
}

export class RequestTelemetry {
  // The series are plain cells found by one string key per request (request-series.ts): the
  // labels are bounded, so the maps are too.
  private readonly total: ValueFamily;
  private readonly duration: HistogramFamily;
  private readonly inFlight: ValueFamily;
  private readonly bytes = new Map<string, BytesCell>();

  private readonly line: LineWriter;
  /** `weft tap`: finished requests are offered to it while a tap is open. */
  private readonly tap: TapHub | undefined;

  constructor(
    registry: Registry,
    log: Logger,
    tap?: TapHub,
    private readonly errors?: RecentErrors,
  ) {
    this.tap = tap;
    // The access log's writer, picked once (see lineWriter): one line per request.
    this.line = lineWriter(log);
    this.total = new ValueFamily(
      'weft_http_requests_total',
      'HTTP requests, by status code and gRPC status ("" when not gRPC)',
      'counter',
      registry,
    );
    this.duration = new HistogramFamily(
      'weft_http_request_duration_seconds',
      'From the request head to the end of the response, in seconds',
      DURATION_BUCKETS,
      registry,
    );
    this.inFlight = new ValueFamily(
      'weft_http_requests_in_flight',
      'HTTP requests started and not yet finished',
      'gauge',
      registry,
    );
    // Both byte counters read one map: a request adds to both at once, so their series appear
    // in the same order.
    const bytes = (field: 'request' | 'response') => ({
      get: async () => ({
        name: `weft_http_${field}_bytes_total`,
        help: field === 'request' ? 'Request body bytes' : 'Response body bytes',
        type: 'counter',
        values: [...this.bytes.values()].map((c) => ({ value: c[field], labels: c.labels })),
        aggregator: 'sum',
      }),
      name: `weft_http_${field}_bytes_total`,
      reset: () => this.bytes.clear(),
    });
    registry.registerMetric(bytes('request') as never);
    registry.registerMetric(bytes('response') as never);
  }

  /** A request starts: in flight until finish() with the same labels. */
  start(labels: ConnectionLabels): void {
    this.inFlight.cell(flightKey(labels), () => connectionLabels(labels)).value += 1;
  }

  /**
   * A request started with start() ends: metrics, its access-log line, and taps. `headers` are
   * the request's (a reference, read by a tap that asked for headers, off this path).
   */
  finish(record: RequestRecord, started: bigint, headers?: TapHeaders): void {
    const ms = elapsedMs(started);
    const flight = flightKey(record);
    this.inFlight.cell(flight, () => connectionLabels(record)).value -= 1;
    const route = `${flight}\0${record.route}\0`;
    const grpc = record.grpc_status === undefined ? '' : record.grpc_status;
    this.total.cell(`${route}${record.status}\0${grpc}`, () =>
      requestTotalLabels(record),
    ).value += 1;
    const duration = this.duration.cell(`${route}${statusClass(record.status)}`, () =>
      requestDurationLabels(record),
    );
    this.duration.observe(duration, ms / 1000);
    let bytes = this.bytes.get(flight);
    if (bytes === undefined) {
      bytes = { labels: connectionLabels(record), request: 0, response: 0 };
      this.bytes.set(flight, bytes);
    }
    bytes.request += record.request_bytes;
    bytes.response += record.response_bytes;
    this.line(logLine(record, ms), REQUEST_LINE);
    this.errors?.request(record);
    // With no tap open, this flag is all the request pays for tapping.
    if (this.tap?.active) this.tap.offer(record, ms, headers);
  }
}

/** One string per (direction, source, destination): service names hold no NUL. */
function flightKey(l: ConnectionLabels): string {
  return `${l.direction}\0${l.src_service}\0${l.dst_service}`;
}
