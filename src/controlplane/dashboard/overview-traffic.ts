// The agents' numbers as the dashboard shows them: golden metrics per service (as its endpoints
// saw its requests) and the graph's edges (as the callers saw them), from the same aggregation
// `weft top` reads (GetStats, window 1m), and the newest denials and failed requests the reports
// carry.
import type { GetStatsResponse, StatsRow } from '../../api/stats-messages.js';
import type { OverviewEdge, OverviewServiceStats } from '../../dashboard-ui/overview-types.js';
import {
  type NodeDenial,
  type NodeRequestError,
  recentDenials,
  recentErrors,
} from '../stats/events-view.js';
import { aggregateStats } from '../stats/stats-aggregate.js';
import type { StatsShare } from '../stats/stats-share.js';
import type { OverviewTraffic } from './overview.js';

/** A service or edge that carried only TCP connections is drawn with its connection rate. */
function rateOf(row: StatsRow, windowSeconds: number): number {
  if (row.requests > 0) return row.requestsPerSecond;
  return windowSeconds > 0 ? row.tcpOpened / windowSeconds : 0;
}

function successOf(row: StatsRow): number | null {
  return row.requests > 0 ? row.successes / row.requests : null;
}

function percentileOf(row: StatsRow, value: number): number | null {
  return row.requests > 0 ? value : null;
}

/** Denials (and errors) the page lists: the newest of the window. */
export const DENIALS_SHOWN = 50;

export function trafficFromStats(
  stats: GetStatsResponse,
  denied: { denials: NodeDenial[]; total: number },
  errored: { errors: NodeRequestError[]; total: number },
): OverviewTraffic {
  const windowSeconds = Math.round(stats.windowSeconds);
  const byService = new Map<string, OverviewServiceStats>();
  for (const row of stats.services) {
    byService.set(row.dstService, {
      rps: rateOf(row, stats.windowSeconds),
      successRate: successOf(row),
      p50Ms: percentileOf(row, row.p50Ms),
      p99Ms: percentileOf(row, row.p99Ms),
    });
  }
  const edges: OverviewEdge[] = stats.edges
    .filter((row) => row.requests > 0 || row.tcpOpened > 0)
    .map((row) => ({
      source: row.srcService,
      destination: row.dstService,
      rps: rateOf(row, stats.windowSeconds),
      successRate: successOf(row),
    }));
  return {
    windowSeconds,
    byService,
    edges,
    denials: denied.denials,
    deniedInWindow: denied.total,
    errors: errored.errors,
    erroredInWindow: errored.total,
  };
}

/** The mesh's traffic now: every replica's agents' reports (read once), aggregated. */
export async function meshTraffic(share: StatsShare, now = Date.now()): Promise<OverviewTraffic> {
  const reports = await share.reports();
  return trafficFromStats(
    aggregateStats(reports, { window: '1m', windowMs: share.book.windowMs, now }),
    recentDenials(reports, DENIALS_SHOWN),
    recentErrors(reports, DENIALS_SHOWN),
  );
}
