// prom-client's metric classes and process metrics without its package entry, which also loads
// its Pushgateway (node:https), Summary (tdigest), cluster aggregation (node:cluster) and,
// through its process CPU counter's exemplars, @opentelemetry/api: about 5 MiB of each agent
// process that uses none of them (issue #15; bench/probe.mjs rss). The same module files as the
// entry's, so these objects mix with code that imports 'prom-client' (its types, the control
// plane). Types come from `import type ... from 'prom-client'`.
import { createRequire } from 'node:module';
import type * as prom from 'prom-client';

const require = createRequire(import.meta.url);

export const Registry = require('prom-client/lib/registry') as typeof prom.Registry;
export const Counter = require('prom-client/lib/counter') as typeof prom.Counter;
export const Gauge = require('prom-client/lib/gauge') as typeof prom.Gauge;
export const Histogram = require('prom-client/lib/histogram') as typeof prom.Histogram;
export type Registry = prom.Registry;
export type Counter<T extends string = string> = prom.Counter<T>;
export type Gauge<T extends string = string> = prom.Gauge<T>;
export type Histogram<T extends string = string> = prom.Histogram<T>;

type MetricModule = (registry: prom.Registry, config: { prefix?: string }) => void;

/**
 * prom-client's default metrics (its lib/defaultMetrics.js list) but two: its event-loop lag,
 * whose sampler reports its own interval as lag and wakes the loop once a second
 * (event-loop-lag.ts measures it instead), and its CPU counter, which loads the OpenTelemetry
 * API for exemplars (processCpu below counts the same series).
 */
const DEFAULT_METRICS = [
  'processStartTime',
  'osMemoryHeap',
  'processOpenFileDescriptors',
  'processMaxFileDescriptors',
  ...(typeof process.getActiveResourcesInfo === 'function' ? ['processResources'] : []),
  'processHandles',
  'processRequests',
  'heapSizeAndUsed',
  'heapSpacesSizeAndUsed',
  'version',
  'gc',
];

/** The process's CPU, GC, memory, handles and fds series, as prom-client names them. */
export function collectProcessMetrics(registry: prom.Registry, prefix = ''): void {
  processCpu(registry, prefix); // first, where prom-client puts its own
  const config = { register: registry, prefix };
  for (const name of DEFAULT_METRICS)
    (require(`prom-client/lib/metrics/${name}`) as MetricModule)(registry, config);
}

/** process_cpu_{user,system}_seconds_total and process_cpu_seconds_total, read at scrape. */
function processCpu(registry: prom.Registry, prefix: string): void {
  let last = process.cpuUsage();
  const counter = (name: string, help: string, collect?: () => void) =>
    new Counter({ name: `${prefix}${name}`, help, registers: [registry], collect });
  const user = counter(
    'process_cpu_user_seconds_total',
    'Total user CPU time spent in seconds.',
    () => {
      const now = process.cpuUsage();
      user.inc((now.user - last.user) / 1e6);
      system.inc((now.system - last.system) / 1e6);
      total.inc((now.user - last.user + now.system - last.system) / 1e6);
      last = now;
    },
  );
  const system = counter(
    'process_cpu_system_seconds_total',
    'Total system CPU time spent in seconds.',
  );
  const total = counter(
    'process_cpu_seconds_total',
    'Total user and system CPU time spent in seconds.',
  );
}
