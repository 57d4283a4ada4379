// Decides what one stats report says: the counts since the previous report (a counter that
// went backwards was reset: its whole value is new), the gauges as of now, idle series left
// out, and a bound on size whatever the traffic: at most `maxSeries` series and `maxBytes`
// encoded bytes, the busiest kept, the rest folded into one "(other)" row per kind.
import type { StatsKind, StatsReport, StatsSeries } from '../api/stats-messages.js';
import { emptyBuckets, LATENCY_BOUNDS_MS } from './latency-histogram.js';
import type { Readout, Tally } from './stats-readout.js';

/** The name of the rows that hold folded series (no service or route is named so). */
export const OTHER = '(other)';

export interface ReportLimits {
  /** Series per report, "(other)" rows included. */
  maxSeries: number;
  /** Encoded bytes per report (an upper bound: see seriesBytes). */
  maxBytes: number;
}

/** 300 series (100 services seen from both sides, and their routes) fit in 64 KiB. */
export const DEFAULT_REPORT_LIMITS: ReportLimits = { maxSeries: 300, maxBytes: 64 * 1024 };

/** Room kept for the report's own fields (interval, bounds, folded count). */
const REPORT_OVERHEAD_BYTES = 32 + 3 + 8 * LATENCY_BOUNDS_MS.length;
/** The most an "(other)" row can take, whatever it adds up: every number at its widest. */
const OTHER_ROW_BYTES = (() => {
  const wide = 2 ** 53;
  return seriesBytes({
    ...otherRow('edge'),
    route: OTHER,
    requests: wide,
    successes: wide,
    latencyBuckets: emptyBuckets().map(() => wide),
    inFlight: -1,
    tcpOpened: wide,
    tcpOpen: -1,
    bytesIn: wide,
    bytesOut: wide,
  });
})();

export function buildReport(
  previous: Readout | undefined,
  now: Readout,
  interval: { startUnixMs: number; endUnixMs: number },
  limits: ReportLimits = DEFAULT_REPORT_LIMITS,
): StatsReport {
  const active: StatsSeries[] = [];
  for (const [key, t] of now) {
    const s = delta(t, previous?.get(key));
    if (s.requests > 0 || s.tcpOpened > 0 || s.inFlight !== 0 || s.tcpOpen !== 0) active.push(s);
  }
  // The busiest first; ties in a stable order, so that a report is a function of its input.
  active.sort(
    (a, b) =>
      b.requests + b.tcpOpened - (a.requests + a.tcpOpened) || keyOf(a).localeCompare(keyOf(b)),
  );
  const kept: StatsSeries[] = [];
  const others = new Map<StatsKind, StatsSeries>();
  let folded = 0;
  // Room for one "(other)" row per kind is kept back from the start.
  const otherRows = new Set(active.map((s) => s.kind)).size;
  let bytes = REPORT_OVERHEAD_BYTES + otherRows * OTHER_ROW_BYTES;
  for (const s of active) {
    const size = seriesBytes(s);
    if (kept.length + otherRows < limits.maxSeries && bytes + size <= limits.maxBytes) {
      kept.push(s);
      bytes += size;
      continue;
    }
    folded += 1;
    let other = others.get(s.kind);
    if (other === undefined) {
      other = otherRow(s.kind);
      others.set(s.kind, other);
    }
    addInto(other, s);
  }
  return {
    startUnixMs: interval.startUnixMs,
    endUnixMs: interval.endUnixMs,
    series: [...kept, ...others.values()],
    foldedSeries: folded,
    latencyBoundsMs: [...LATENCY_BOUNDS_MS],
  };
}

function delta(t: Tally, before: Tally | undefined): StatsSeries {
  const counter = (now: number, then: number | undefined) =>
    then === undefined || now < then ? now : now - then;
  return {
    kind: t.kind,
    srcService: t.src,
    dstService: t.dst,
    route: t.route,
    requests: counter(t.requests, before?.requests),
    successes: counter(t.successes, before?.successes),
    latencyBuckets: t.buckets.map((n, i) => counter(n, before?.buckets[i])),
    inFlight: t.inFlight,
    tcpOpened: counter(t.tcpOpened, before?.tcpOpened),
    tcpOpen: t.tcpOpen,
    bytesIn: counter(t.bytesIn, before?.bytesIn),
    bytesOut: counter(t.bytesOut, before?.bytesOut),
  };
}

function otherRow(kind: StatsKind): StatsSeries {
  return {
    kind,
    srcService: kind === 'edge' ? OTHER : '',
    dstService: OTHER,
    route: kind === 'route' ? OTHER : '',
    requests: 0,
    successes: 0,
    latencyBuckets: emptyBuckets(),
    inFlight: 0,
    tcpOpened: 0,
    tcpOpen: 0,
    bytesIn: 0,
    bytesOut: 0,
  };
}

function addInto(into: StatsSeries, s: StatsSeries): void {
  into.requests += s.requests;
  into.successes += s.successes;
  for (let i = 0; i < into.latencyBuckets.length; i++)
    into.latencyBuckets[i] = (into.latencyBuckets[i] as number) + (s.latencyBuckets[i] ?? 0);
  into.inFlight += s.inFlight;
  into.tcpOpened += s.tcpOpened;
  into.tcpOpen += s.tcpOpen;
  into.bytesIn += s.bytesIn;
  into.bytesOut += s.bytesOut;
}

function keyOf(s: StatsSeries): string {
  return `${s.kind}\0${s.srcService}\0${s.dstService}\0${s.route}`;
}

/**
 * One series' protobuf encoding in bytes, as grpc's protobufjs writes it: every field number is
 * under 16 (one tag byte); every field set on the object is written, zeros and empty strings
 * too; buckets are packed (left out when none). Its own tag and length inside the report too.
 */
export function seriesBytes(s: StatsSeries): number {
  const str = (v: string) => {
    const n = Buffer.byteLength(v);
    return 1 + varintBytes(n) + n;
  };
  const num = (v: number) => 1 + varintBytes(v);
  let packed = 0;
  for (const n of s.latencyBuckets) packed += varintBytes(n);
  const body =
    str(s.kind) +
    str(s.srcService) +
    str(s.dstService) +
    str(s.route) +
    num(s.requests) +
    num(s.successes) +
    (s.latencyBuckets.length === 0 ? 0 : 1 + varintBytes(packed) + packed) +
    num(s.inFlight) +
    num(s.tcpOpened) +
    num(s.tcpOpen) +
    num(s.bytesIn) +
    num(s.bytesOut);
  return 1 + varintBytes(body) + body;
}

/** A varint's length; a negative int64 takes 10 bytes. */
function varintBytes(n: number): number {
  if (n < 0) return 10;
  let bytes = 1;
  let v = Math.floor(n);
  while (v >= 128) {
    v = Math.floor(v / 128);
    bytes += 1;
  }
  return bytes;
}
