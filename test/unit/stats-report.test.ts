// The agent's stats report: counts read where the data path keeps them (real RequestTelemetry
// and Telemetry cells), deltas between reports, and the bound on a report's size whatever the
// traffic (src/telemetry/stats-readout.ts, stats-report.ts).
import pino from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { loadProto } from '../../src/api/proto.js';
import type { StatsReport, StatsSeries } from '../../src/api/stats-messages.js';
import { RequestTelemetry } from '../../src/proxy/http/request-telemetry.js';
import type { RequestRecord } from '../../src/proxy/records.js';
import { Telemetry } from '../../src/proxy/telemetry.js';
import { quantileMs } from '../../src/telemetry/latency-histogram.js';
import { isSuccess, type Readout, readStats } from '../../src/telemetry/stats-readout.js';
import { buildReport, OTHER, seriesBytes } from '../../src/telemetry/stats-report.js';

const log = pino({ level: 'silent' });
const at = { startUnixMs: 1_000, endUnixMs: 11_000 };

function request(over: Partial<RequestRecord>): RequestRecord {
  return {
    direction: 'outbound',
    src_service: 'web',
    dst_service: 'orders',
    src: '10.0.0.1:5000',
    close_reason: 'done',
    route: 'default',
    method: 'GET',
    authority: 'orders.mesh',
    path: '/',
    protocol: 'HTTP/1.1',
    status: 200,
    request_bytes: 0,
    response_bytes: 10,
    ...over,
  };
}

/** Records `n` requests through the L7 engine's own telemetry, `started` ms ago each. */
function serve(t: RequestTelemetry, n: number, over: Partial<RequestRecord>, ms = 2): void {
  for (let i = 0; i < n; i++) {
    const r = request(over);
    t.start(r);
    t.finish(r, process.hrtime.bigint() - BigInt(ms * 1_000_000));
  }
}

const find = (report: StatsReport, kind: string, dst: string, extra: Partial<StatsSeries> = {}) =>
  report.series.find(
    (s) =>
      s.kind === kind &&
      s.dstService === dst &&
      Object.entries(extra).every(([k, v]) => s[k as keyof StatsSeries] === v),
  );

/** The report as the Sync stream puts it on the wire. */
function encodedBytes(report: StatsReport): number {
  const stream = loadProto().Sync.service.Stream!;
  return (stream.requestSerialize as (m: unknown) => Buffer)({ stats: report }).length;
}

describe('the stats readout', () => {
  it.each([
    { status: '200', grpc: '', ok: true },
    { status: '404', grpc: '', ok: true },
    { status: '499', grpc: '', ok: true },
    { status: '500', grpc: '', ok: false },
    { status: '503', grpc: '', ok: false },
    { status: '0', grpc: '', ok: false },
    { status: '200', grpc: '0', ok: true },
    { status: '200', grpc: '14', ok: false },
  ])('status $status grpc "$grpc": success $ok', ({ status, grpc, ok }) => {
    expect(isSuccess(status, grpc)).toBe(ok);
  });

  it('20 requests, 5 of them 500: 20 requests, 15 successes, per edge, route and service', async () => {
    const registry = new Registry();
    const requests = new RequestTelemetry(registry, log);
    serve(requests, 15, { status: 200 });
    serve(requests, 5, { status: 500, route: 'slow' }, 300);
    serve(requests, 20, { direction: 'inbound', status: 200, dst_service: 'orders' });
    const report = buildReport(undefined, await readStats(registry), at);
    const edge = find(report, 'edge', 'orders', { srcService: 'web' })!;
    expect(edge).toMatchObject({ requests: 20, successes: 15, inFlight: 0 });
    expect(edge.latencyBuckets.reduce((a, b) => a + b, 0)).toBe(20);
    expect(find(report, 'route', 'orders', { route: 'slow' })).toMatchObject({
      requests: 5,
      successes: 0,
    });
    expect(find(report, 'route', 'orders', { route: 'default' })).toMatchObject({
      requests: 15,
      successes: 15,
    });
    expect(find(report, 'inbound', 'orders')).toMatchObject({ requests: 20, successes: 20 });
    // The 5 slow ones (300 ms) are the top quarter of the edge's latency.
    expect(quantileMs(edge.latencyBuckets, 0.99)).toBeGreaterThan(250);
    expect(quantileMs(edge.latencyBuckets, 0.5)).toBeLessThan(10);
  });

  it('counts TCP connections opened, open and their bytes from the TCP metrics', async () => {
    const registry = new Registry();
    const tcp = new Telemetry(registry, log);
    const labels = { direction: 'inbound' as const, src_service: 'web', dst_service: 'db' };
    tcp.open(labels);
    tcp.open(labels);
    tcp.close(
      {
        ...labels,
        src: '1.2.3.4:1',
        dst: '5.6.7.8:5432',
        close_reason: 'done',
        bytes_sent: 100,
        bytes_received: 7,
      },
      process.hrtime.bigint(),
    );
    const report = buildReport(undefined, await readStats(registry), at);
    expect(find(report, 'inbound', 'db')).toMatchObject({
      tcpOpened: 2,
      tcpOpen: 1,
      bytesIn: 100,
      bytesOut: 7,
      requests: 0,
    });
  });
});

describe('buildReport', () => {
  it('reports what changed since the last report; idle series are left out', async () => {
    const registry = new Registry();
    const requests = new RequestTelemetry(registry, log);
    serve(requests, 10, { dst_service: 'a' });
    serve(requests, 4, { dst_service: 'b' });
    const first = await readStats(registry);
    serve(requests, 3, { dst_service: 'a' });
    const second = buildReport(first, await readStats(registry), at);
    expect(find(second, 'edge', 'a')).toMatchObject({ requests: 3 });
    expect(find(second, 'edge', 'b')).toBeUndefined();
  });

  it('takes a counter that went backwards (reset) as all new', () => {
    const tally = (requests: number): Readout =>
      new Map([
        [
          'k',
          {
            kind: 'edge' as const,
            src: 'web',
            dst: 'a',
            route: '',
            requests,
            successes: requests,
            buckets: [requests, 0],
            inFlight: 0,
            tcpOpened: 0,
            tcpOpen: 0,
            bytesIn: 0,
            bytesOut: 0,
          },
        ],
      ]);
    expect(buildReport(tally(50), tally(7), at).series[0]).toMatchObject({ requests: 7 });
  });

  it('stays within its series and byte caps with 5,000 services, folding the rest', async () => {
    const registry = new Registry();
    const requests = new RequestTelemetry(registry, log);
    for (let i = 0; i < 5_000; i++) {
      const dst = `service-with-a-long-descriptive-name-${i}`;
      serve(requests, 1 + (i % 7), { dst_service: dst, route: `route-${i}` });
      serve(requests, 1, { direction: 'inbound', dst_service: dst });
    }
    const report = buildReport(undefined, await readStats(registry), at);
    expect(report.series.length).toBeLessThanOrEqual(300);
    expect(encodedBytes(report)).toBeLessThanOrEqual(64 * 1024);
    // Nothing is lost: the folded series are counted and their requests are in "(other)".
    expect(report.series.length - 3 + report.foldedSeries).toBe(15_000);
    const total = (kind: string) =>
      report.series.filter((s) => s.kind === kind).reduce((sum, s) => sum + s.requests, 0);
    const sent = Array.from({ length: 5_000 }, (_, i) => 1 + (i % 7)).reduce((a, b) => a + b, 0);
    expect(total('edge')).toBe(sent);
    expect(total('route')).toBe(sent);
    expect(total('inbound')).toBe(5_000);
    expect(find(report, 'edge', OTHER)!.requests).toBeGreaterThan(0);
    // The busiest are kept: every series kept has at least the requests of any folded one.
    const kept = report.series.filter((s) => s.kind === 'edge' && s.dstService !== OTHER);
    expect(Math.min(...kept.map((s) => s.requests))).toBe(7);
  });

  it('a tight byte cap binds before the series cap', async () => {
    const registry = new Registry();
    const requests = new RequestTelemetry(registry, log);
    for (let i = 0; i < 100; i++) serve(requests, 1, { dst_service: `s${i}` });
    const report = buildReport(undefined, await readStats(registry), at, {
      maxSeries: 300,
      maxBytes: 2_000,
    });
    expect(encodedBytes(report)).toBeLessThanOrEqual(2_000);
    expect(report.foldedSeries).toBeGreaterThan(0);
  });

  it('seriesBytes is the encoded size of a series', () => {
    const s: StatsSeries = {
      kind: 'route',
      srcService: '',
      dstService: 'orders',
      route: 'by-id',
      requests: 1_000_000,
      successes: 999_999,
      latencyBuckets: [0, 1, 200, 300_000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5],
      inFlight: -1,
      tcpOpened: 0,
      tcpOpen: 3,
      bytesIn: 2 ** 40,
      bytesOut: 0,
    };
    const empty = encodedBytes({ ...at, series: [], foldedSeries: 0, latencyBoundsMs: [] });
    const one = encodedBytes({ ...at, series: [s], foldedSeries: 0, latencyBoundsMs: [] });
    expect(seriesBytes(s)).toBe(one - empty);
  });
});
