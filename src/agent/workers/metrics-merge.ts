// /metrics for the whole agent: the master's registry and each worker's (fetched over IPC as
// getMetricsAsJSON) merged into one, as prom-client's cluster aggregation does. Counters and
// the per-worker gauges (connections open, sessions) are summed; gauges that describe the
// mesh view every worker holds alike are taken once, not multiplied by the worker count. A
// worker that exits leaves its counters and histograms as they were at its last scrape
// (retiredMetrics), so the agent's counters never go backwards (Prometheus would read a reset).
import { createRequire } from 'node:module';
import type { MetricObjectWithValues, MetricValue, Registry } from 'prom-client';

// prom-client's aggregation from its own file, not its package entry (src/telemetry/prom.ts).
const AggregatorRegistry = createRequire(import.meta.url)(
  'prom-client/lib/cluster',
) as typeof import('prom-client').AggregatorRegistry;

/**
 * Gauges whose every copy holds the same value: each worker computes the balancer's from the
 * same snapshot. The first copy (the master's registry comes first, then the workers') is the
 * agent's. (Taps are counted by the master alone: worker-tap-hub.ts.)
 */
const SAME_IN_EVERY_WORKER = new Set(['weft_balancer_endpoints']);

/** The aggregation a metric gets: taken once for the view gauges; the worst event-loop lag
 * of any process (a sum of lags means nothing; event-loop-lag.ts declares none); else as
 * declared (sum by default). */
export function aggregatorFor(name: string, declared: string | undefined): string {
  if (SAME_IN_EVERY_WORKER.has(name)) return 'first';
  if (name.startsWith('nodejs_eventloop_lag_'))
    return name.endsWith('_min_seconds') ? 'min' : 'max';
  return declared ?? 'sum';
}

type MetricJson = MetricObjectWithValues<MetricValue<string>> & { aggregator?: string };

/** One registry holding the merge of these getMetricsAsJSON() results. */
export function mergeMetrics(parts: readonly unknown[][]): Registry {
  const fixed = parts.map((part) =>
    (part as MetricJson[]).map((m) => ({ ...m, aggregator: aggregatorFor(m.name, m.aggregator) })),
  );
  return AggregatorRegistry.aggregate(fixed as never);
}

/**
 * What an exited worker leaves to /metrics: its cumulative series (counters, histograms) as
 * last scraped; its gauges (connections open, ...) ended with it.
 */
export function retiredMetrics(part: readonly unknown[]): unknown[] {
  const cumulative = new Set(['counter', 'histogram']);
  // prom-client declares `type` as an enum it does not export: compared as the string it is.
  return (part as MetricJson[]).filter((m) => cumulative.has(String(m.type)));
}
