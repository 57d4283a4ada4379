// The per-request metrics keep plain cells instead of prom-client's metric objects (for speed);
// a scrape must read exactly as prom-client's own exposition of the same calls did: the same
// series, labels, order, values and bucket edges.

import pino from 'pino';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { HistogramFamily, ValueFamily } from '../../src/proxy/http/request-series.js';
import {
  DURATION_BUCKETS,
  type RequestRecord,
  RequestTelemetry,
} from '../../src/proxy/http/request-telemetry.js';
import {
  connectionLabels,
  requestDurationLabels,
  requestTotalLabels,
} from '../../src/proxy/records.js';

const BOUNDS = [0.001, 0.01, 0.1, 1];

describe('request series', () => {
  it('a histogram reads as prom-client: values on, between, below and above the bounds', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const fam = new HistogramFamily('h_seconds', 'a histogram', BOUNDS, ours);
    const ref = new Histogram({
      name: 'h_seconds',
      help: 'a histogram',
      labelNames: ['a', 'b'],
      buckets: BOUNDS,
      registers: [theirs],
    });
    const rows: Array<[string, string, number]> = [
      ['x', 'y', 0],
      ['x', 'y', 0.001],
      ['p', 'q"\\\n', 0.0011],
      ['x', 'y', 0.5],
      ['x', 'y', 1],
      ['p', 'q"\\\n', 7],
      ['x', 'y', 0.1 + 0.2],
    ];
    for (const [a, b, v] of rows) {
      fam.observe(
        fam.cell(`${a}\0${b}`, () => ({ a, b })),
        v,
      );
      ref.observe({ a, b }, v);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.getMetricsAsJSON()).toEqual(await theirs.getMetricsAsJSON());
    ours.resetMetrics();
    theirs.resetMetrics();
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  it('a counter and a gauge read as prom-client, in first-use order, zeros kept', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const c = new ValueFamily('c_total', 'a counter', 'counter', ours);
    const g = new ValueFamily('g', 'a gauge', 'gauge', ours);
    const refC = new Counter({
      name: 'c_total',
      help: 'a counter',
      labelNames: ['k'],
      registers: [theirs],
    });
    const refG = new Gauge({ name: 'g', help: 'a gauge', labelNames: ['k'], registers: [theirs] });
    for (const [k, n] of [
      ['b', 0],
      ['a', 2],
      ['b', 3.5],
    ] as const) {
      c.cell(k, () => ({ k })).value += n;
      refC.inc({ k }, n);
      g.cell(k, () => ({ k })).value += 1;
      refG.inc({ k });
    }
    g.cell('a', () => ({ k: 'a' })).value -= 1;
    refG.dec({ k: 'a' });
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });
});

/** The old RequestTelemetry's calls on prom-client, as the reference. */
function reference(registry: Registry) {
  const registers = [registry];
  const flight = ['direction', 'src_service', 'dst_service'];
  const labels = [...flight, 'route'];
  return {
    total: new Counter({
      name: 'weft_http_requests_total',
      help: 'HTTP requests, by status code and gRPC status ("" when not gRPC)',
      labelNames: [...labels, 'status_code', 'grpc_status'],
      registers,
    }),
    duration: new Histogram({
      name: 'weft_http_request_duration_seconds',
      help: 'From the request head to the end of the response, in seconds',
      labelNames: [...labels, 'status_class'],
      buckets: DURATION_BUCKETS,
      registers,
    }),
    inFlight: new Gauge({
      name: 'weft_http_requests_in_flight',
      help: 'HTTP requests started and not yet finished',
      labelNames: flight,
      registers,
    }),
    requestBytes: new Counter({
      name: 'weft_http_request_bytes_total',
      help: 'Request body bytes',
      labelNames: flight,
      registers,
    }),
    responseBytes: new Counter({
      name: 'weft_http_response_bytes_total',
      help: 'Response body bytes',
      labelNames: flight,
      registers,
    }),
  };
}

function record(o: Partial<RequestRecord>): RequestRecord {
  return {
    direction: 'outbound',
    src: '10.0.0.1:40000',
    src_service: 'web',
    dst_service: 'orders',
    close_reason: 'done',
    protocol: 'HTTP/1.1',
    method: 'GET',
    authority: 'orders',
    path: '/',
    route: 'default',
    status: 200,
    request_bytes: 0,
    response_bytes: 30,
    ...o,
  };
}

describe('request telemetry', () => {
  it('scrapes as the prom-client metrics it replaced, for a mix of statuses, routes and gRPC', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const telemetry = new RequestTelemetry(ours, pino({ level: 'silent' }));
    const ref = reference(theirs);
    const a = record({});
    const b = record({ direction: 'inbound', route: 'api', status: 404, request_bytes: 12 });
    const c = record({ dst_service: 'grpc', status: 200, grpc_status: 14, response_bytes: 0 });
    const d = record({ status: 201 }); // same duration series as a (2xx)
    const e = record({ status: 0, src_service: 'batch', close_reason: 'client_reset' });
    const f = record({ dst_service: 'grpc', status: 200, grpc_status: 0 });
    // Starts and ends interleaved: the in-flight gauge's order is the starts', the byte
    // counters' the ends'.
    const started = process.hrtime.bigint();
    const order: Array<['start' | 'finish', RequestRecord]> = [
      ['start', a],
      ['start', e],
      ['start', b],
      ['finish', b],
      ['start', c],
      ['finish', a],
      ['start', d],
      ['finish', c],
      ['start', f],
      ['finish', d],
      ['finish', f],
    ];
    for (const [step, r] of order) {
      if (step === 'start') {
        telemetry.start(r);
        ref.inFlight.inc({ ...connectionLabels(r) });
        continue;
      }
      telemetry.finish(r, started);
      const flight = { ...connectionLabels(r) };
      ref.inFlight.dec(flight);
      ref.total.inc(requestTotalLabels(r));
      ref.duration.observe(requestDurationLabels(r), 0.001);
      ref.requestBytes.inc(flight, r.request_bytes);
      ref.responseBytes.inc(flight, r.response_bytes);
    }
    // Durations come from the clock: compare every line but the histogram's buckets and sums.
    const timeless = (text: string) =>
      text
        .split('\n')
        .filter((l) => !/^weft_http_request_duration_seconds_(bucket|sum)/.test(l))
        .join('\n');
    const text = await ours.metrics();
    expect(timeless(text)).toBe(timeless(await theirs.metrics()));
    expect(text).toContain(
      'weft_http_requests_in_flight{direction="outbound",src_service="batch",dst_service="orders"} 1',
    );
    expect(text).toContain(
      'weft_http_request_duration_seconds_bucket{le="+Inf",direction="outbound",src_service="web",dst_service="orders",route="default",status_class="2xx"} 2',
    );
  });
});
