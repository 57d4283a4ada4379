// Reads the counts the data path already keeps (the L7 engine's request cells and the TCP
// metrics, through the agent's registry) into one cumulative tally per stats series. Runs off
// the request path, once per report: a request pays nothing for it.
import type { Registry } from 'prom-client';
import type { StatsKind } from '../api/stats-messages.js';
import {
  type HistogramCell,
  HistogramFamily,
  type ValueCell,
  ValueFamily,
} from '../proxy/http/request-series.js';
import { emptyBuckets } from './latency-histogram.js';

/** Cumulative counts (and current gauges) of one series since the agent started. */
export interface Tally {
  kind: StatsKind;
  src: string;
  dst: string;
  route: string;
  requests: number;
  successes: number;
  buckets: number[];
  inFlight: number;
  tcpOpened: number;
  tcpOpen: number;
  bytesIn: number;
  bytesOut: number;
}

/** Every series by its key (kind, source, destination, route). */
export type Readout = Map<string, Tally>;

type SeriesLabels = {
  direction?: string;
  src_service?: string;
  dst_service?: string;
  route?: string;
  status_code?: string;
  grpc_status?: string;
};

export function seriesKey(kind: StatsKind, src: string, dst: string, route: string): string {
  return `${kind}\0${src}\0${dst}\0${route}`;
}

export function newTally(kind: StatsKind, src: string, dst: string, route: string): Tally {
  return {
    kind,
    src,
    dst,
    route,
    requests: 0,
    successes: 0,
    buckets: emptyBuckets(),
    inFlight: 0,
    tcpOpened: 0,
    tcpOpen: 0,
    bytesIn: 0,
    bytesOut: 0,
  };
}

/**
 * The series a metric's labels count in: inbound per destination service (the receiving
 * agent's view); outbound per edge, and per route when the labels name one.
 */
function seriesOf(readout: Readout, l: SeriesLabels, withRoute: boolean): Tally[] {
  const dst = l.dst_service ?? 'unknown';
  const at = (kind: StatsKind, src: string, route: string): Tally => {
    const key = seriesKey(kind, src, dst, route);
    let t = readout.get(key);
    if (t === undefined) {
      t = newTally(kind, src, dst, route);
      readout.set(key, t);
    }
    return t;
  };
  if (l.direction === 'inbound') return [at('inbound', '', '')];
  const edge = at('edge', l.src_service ?? 'unknown', '');
  return withRoute && l.route !== undefined ? [edge, at('route', '', l.route)] : [edge];
}

/** A request succeeded: an HTTP status below 500 (0: no answer at all), and gRPC OK if gRPC. */
export function isSuccess(statusCode: string, grpcStatus: string): boolean {
  const status = Number(statusCode);
  return status > 0 && status < 500 && (grpcStatus === '' || grpcStatus === '0');
}

/** The registry's request and TCP numbers, by series. */
export async function readStats(registry: Registry): Promise<Readout> {
  const readout: Readout = new Map();
  const total = registry.getSingleMetric('weft_http_requests_total');
  if (total instanceof ValueFamily)
    total.forEach((c: ValueCell) => {
      const l = c.labels as SeriesLabels;
      const ok = isSuccess(l.status_code ?? '0', l.grpc_status ?? '');
      for (const t of seriesOf(readout, l, true)) {
        t.requests += c.value;
        if (ok) t.successes += c.value;
      }
    });
  const duration = registry.getSingleMetric('weft_http_request_duration_seconds');
  if (duration instanceof HistogramFamily)
    duration.forEach((c: HistogramCell) => {
      let inBounds = 0;
      for (const n of c.buckets) inBounds += n;
      for (const t of seriesOf(readout, c.labels as SeriesLabels, true)) {
        for (let i = 0; i < c.buckets.length; i++)
          t.buckets[i] = (t.buckets[i] as number) + (c.buckets[i] as number);
        t.buckets[c.buckets.length] = (t.buckets[c.buckets.length] as number) + c.count - inBounds;
      }
    });
  const inFlight = registry.getSingleMetric('weft_http_requests_in_flight');
  if (inFlight instanceof ValueFamily)
    inFlight.forEach((c: ValueCell) => {
      for (const t of seriesOf(readout, c.labels as SeriesLabels, false)) t.inFlight += c.value;
    });
  await addTcp(registry, readout, 'weft_tcp_open_total', (t, v) => (t.tcpOpened += v));
  await addTcp(registry, readout, 'weft_tcp_open_connections', (t, v) => (t.tcpOpen += v));
  await addTcp(registry, readout, 'weft_tcp_read_bytes_total', (t, v) => (t.bytesIn += v));
  await addTcp(registry, readout, 'weft_tcp_write_bytes_total', (t, v) => (t.bytesOut += v));
  return readout;
}

async function addTcp(
  registry: Registry,
  readout: Readout,
  name: string,
  add: (t: Tally, value: number) => void,
): Promise<void> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) return;
  const { values } = await metric.get();
  for (const v of values) {
    if (v.value === 0) continue;
    for (const t of seriesOf(readout, v.labels as SeriesLabels, false)) add(t, v.value);
  }
}
