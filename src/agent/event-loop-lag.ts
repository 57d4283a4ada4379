// Event-loop lag as Prometheus gauges (nodejs_eventloop_lag_*, the names prom-client uses):
// how late the loop runs a timer that is due, in seconds. perf_hooks' monitorEventLoopDelay
// records the whole interval between two runs of its sampling timer, so an idle loop reads as
// the sampling interval itself (prom-client showed ~0.1 s on every idle agent), and after each
// reset it drops the first interval, so a stall right after a scrape went unseen. Here a timer
// records how much later than due it ran, into a histogram reset per scrape; a stall of any
// length delays the next sample by that much and shows.
import { createHistogram } from 'node:perf_hooks';
import type { Registry } from 'prom-client';
import { Gauge } from '../telemetry/prom.js';

/** Sampling interval: 20 wakeups a second on an idle agent, 300 samples per 15 s scrape. */
export const LAG_RESOLUTION_MS = 50;

const FIGURES = {
  min: 'The smallest event-loop lag seen since the last scrape',
  max: 'The largest event-loop lag seen since the last scrape',
  mean: 'The mean event-loop lag since the last scrape',
  stddev: 'The standard deviation of the event-loop lag since the last scrape',
  p50: 'The median event-loop lag since the last scrape',
  p90: 'The 90th percentile of the event-loop lag since the last scrape',
  p99: 'The 99th percentile of the event-loop lag since the last scrape',
} as const;

export const EVENT_LOOP_LAG_METRICS = [
  'nodejs_eventloop_lag_seconds',
  ...Object.keys(FIGURES).map((f) => `nodejs_eventloop_lag_${f}_seconds`),
];

export function registerEventLoopLag(registry: Registry, resolutionMs = LAG_RESOLUTION_MS): void {
  const histogram = createHistogram();
  const intervalNs = BigInt(resolutionMs * 1e6);
  let last = process.hrtime.bigint();
  // Node schedules the next run from when this one started, so two runs are one interval plus
  // the lag apart. A histogram records integers from 1 (ns).
  setInterval(() => {
    const now = process.hrtime.bigint();
    const late = now - last - intervalNs;
    histogram.record(late > 0n ? late : 1n);
    last = now;
  }, resolutionMs).unref();
  const lag = (ns: number): number => (ns <= 1 ? 0 : ns / 1e9);
  const figures = (): Record<keyof typeof FIGURES, number> => {
    // An empty window (no sample since the last scrape) saw no lag.
    if (histogram.count === 0) {
      return { min: 0, max: 0, mean: 0, stddev: 0, p50: 0, p90: 0, p99: 0 };
    }
    return {
      min: lag(histogram.min),
      max: lag(histogram.max),
      mean: lag(histogram.mean),
      stddev: histogram.stddev / 1e9,
      p50: lag(histogram.percentile(50)),
      p90: lag(histogram.percentile(90)),
      p99: lag(histogram.percentile(99)),
    };
  };
  let gauges: Record<keyof typeof FIGURES, Gauge> | undefined;
  new Gauge({
    name: 'nodejs_eventloop_lag_seconds',
    help: 'How long a callback queued now waits for the event loop, in seconds',
    registers: [registry],
    // This one metric's collect sets them all (one histogram reset per scrape); it is
    // registered first because the registry serializes metrics in that order.
    async collect() {
      const values = figures();
      histogram.reset();
      for (const [figure, gauge] of Object.entries(gauges ?? {})) {
        gauge.set(values[figure as keyof typeof FIGURES]);
      }
      const start = process.hrtime.bigint();
      await new Promise((resolve) => setImmediate(resolve));
      this.set(Number(process.hrtime.bigint() - start) / 1e9);
    },
  });
  gauges = Object.fromEntries(
    Object.entries(FIGURES).map(([figure, help]) => [
      figure,
      new Gauge({ name: `nodejs_eventloop_lag_${figure}_seconds`, help, registers: [registry] }),
    ]),
  ) as Record<keyof typeof FIGURES, Gauge>;
}
