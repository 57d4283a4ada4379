// Builds the agent's tracer from telemetry.tracing: propagation only, or, with an OTLP
// endpoint, the exporting tracer, whose OpenTelemetry SDK is loaded only then (an agent
// without tracing does not pay its memory: issue 15).
import type { Registry } from 'prom-client';
import { randomTraceIds, type TraceIdSource } from '../proxy/http/trace-ids.js';
import type { Logger } from '../sys/logger.js';
import type { ExportTuning } from './otlp-tracer.js';
import { propagatingTracer } from './propagating-tracer.js';
import { TraceMetrics } from './trace-metrics.js';
import type { Tracer } from './tracer.js';
import type { TracingConfig } from './tracing-config.js';

export interface TracerDeps {
  registry: Registry;
  log: Logger;
  /** The node's name: the exported resource's host.name. */
  hostname: string;
  /** Default: random ids from the OS's CSPRNG. */
  ids?: TraceIdSource;
  /** The export pipeline's bounds (tests shrink them); defaults in otlp-tracer.ts. */
  tuning?: Partial<ExportTuning>;
}

export async function createTracer(config: TracingConfig, deps: TracerDeps): Promise<Tracer> {
  const ids = deps.ids ?? randomTraceIds();
  const endpoint = config.otlpEndpoint;
  if (endpoint === undefined) return propagatingTracer(ids);
  const { otlpTracer } = await import('./otlp-tracer.js');
  deps.log.info(
    { endpoint, sampleRatio: config.sampleRatio ?? 1 },
    'tracing: exporting spans over OTLP/HTTP',
  );
  return otlpTracer({
    config: { ...config, otlpEndpoint: endpoint },
    hostname: deps.hostname,
    ids,
    metrics: new TraceMetrics(deps.registry),
    log: deps.log,
    tuning: deps.tuning,
  });
}
