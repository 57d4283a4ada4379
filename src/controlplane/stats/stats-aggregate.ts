// Merges the agents' reports into the mesh's rows: per service (inbound), per edge and per
// route. Counts and latency buckets add up exactly across agents (percentiles come from the
// merged buckets); a rate is each agent's count over the time its reports cover, summed over
// agents; gauges (in flight, open connections) are each agent's latest report's, summed.
import type {
  GetStatsResponse,
  StatsRow,
  StatsSeries,
  StatsWindow,
} from '../../api/stats-messages.js';
import {
  addBuckets,
  emptyBuckets,
  LATENCY_BOUNDS_MS,
  quantileMs,
} from '../../telemetry/latency-histogram.js';
import type { ReceivedReport } from './stats-book.js';

interface Acc {
  row: StatsRow;
  seenNodes: Set<string>;
}

export function aggregateStats(
  reports: Map<string, ReceivedReport[]>,
  options: { window: StatsWindow; service?: string; windowMs: number; now: number },
): GetStatsResponse {
  const rows = new Map<string, Acc>();
  let folded = 0;
  let covered = 0;
  for (const [node, all] of reports) {
    const used = options.window === 'last' ? all.slice(-1) : all;
    if (used.length === 0) continue;
    const seconds = used.reduce((sum, r) => sum + r.intervalMs, 0) / 1000;
    covered = Math.max(covered, seconds);
    const latest = used.at(-1)!;
    for (const r of used) {
      folded += r.report.foldedSeries;
      for (const s of r.report.series) {
        if (!wanted(s, options.service)) continue;
        const acc = rowFor(rows, s);
        acc.seenNodes.add(node);
        add(acc.row, s, r.report.latencyBoundsMs, seconds, r === latest);
      }
    }
  }
  const byKind = { inbound: [] as StatsRow[], edge: [] as StatsRow[], route: [] as StatsRow[] };
  for (const [key, acc] of rows) {
    const row = finish(acc);
    byKind[key.slice(0, key.indexOf('\0')) as keyof typeof byKind].push(row);
  }
  const order = (a: StatsRow, b: StatsRow) =>
    a.dstService.localeCompare(b.dstService) ||
    a.srcService.localeCompare(b.srcService) ||
    a.route.localeCompare(b.route);
  return {
    window: options.window,
    windowSeconds: options.window === 'last' ? covered : options.windowMs / 1000,
    services: byKind.inbound.sort(order),
    edges: byKind.edge.sort(order),
    routes: byKind.route.sort(order),
    latencyBoundsMs: [...LATENCY_BOUNDS_MS],
    reportingNodes: reports.size,
    foldedSeries: folded,
    generatedUnixMs: options.now,
  };
}

/** With a service: its own row, its routes and its callers. */
function wanted(s: StatsSeries, service: string | undefined): boolean {
  return service === undefined || service === '' || s.dstService === service;
}

function rowFor(rows: Map<string, Acc>, s: StatsSeries): Acc {
  const key = `${s.kind}\0${s.srcService}\0${s.dstService}\0${s.route}`;
  let acc = rows.get(key);
  if (acc === undefined) {
    acc = {
      row: {
        srcService: s.srcService,
        dstService: s.dstService,
        route: s.route,
        requestsPerSecond: 0,
        requests: 0,
        successes: 0,
        successRate: 0,
        p50Ms: 0,
        p90Ms: 0,
        p99Ms: 0,
        inFlight: 0,
        tcpOpened: 0,
        tcpOpen: 0,
        bytesIn: 0,
        bytesOut: 0,
        nodes: 0,
        latencyBuckets: emptyBuckets(),
      },
      seenNodes: new Set(),
    };
    rows.set(key, acc);
  }
  return acc;
}

function add(
  row: StatsRow,
  s: StatsSeries,
  bounds: readonly number[],
  seconds: number,
  latest: boolean,
): void {
  row.requests += s.requests;
  row.successes += s.successes;
  row.requestsPerSecond += seconds > 0 ? s.requests / seconds : 0;
  addBuckets(row.latencyBuckets, s.latencyBuckets, bounds.length > 0 ? bounds : LATENCY_BOUNDS_MS);
  row.tcpOpened += s.tcpOpened;
  row.bytesIn += s.bytesIn;
  row.bytesOut += s.bytesOut;
  if (latest) {
    row.inFlight += s.inFlight;
    row.tcpOpen += s.tcpOpen;
  }
}

function finish(acc: Acc): StatsRow {
  const row = acc.row;
  row.nodes = acc.seenNodes.size;
  row.successRate = row.requests > 0 ? row.successes / row.requests : 0;
  row.requestsPerSecond = Math.round(row.requestsPerSecond * 1000) / 1000;
  row.p50Ms = quantileMs(row.latencyBuckets, 0.5);
  row.p90Ms = quantileMs(row.latencyBuckets, 0.9);
  row.p99Ms = quantileMs(row.latencyBuckets, 0.99);
  return row;
}
