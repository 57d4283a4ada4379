// What happened to the spans the agent recorded: exported, or dropped and why. Registered only
// when spans are exported (telemetry.tracing.otlpEndpoint).
import type { Registry } from 'prom-client';
import { Counter } from './prom.js';

/** queue_full: the export queue was at its bound; export_failed: the collector refused it,
 * was unreachable or too slow (after the exporter's retries, within its timeout). */
export type DropReason = 'queue_full' | 'export_failed';

export class TraceMetrics {
  private readonly exported: Counter;
  private readonly dropped: Counter<'reason'>;

  constructor(registry: Registry) {
    this.exported = new Counter({
      name: 'weft_trace_spans_exported_total',
      help: 'Spans the OTLP collector accepted',
      registers: [registry],
    });
    this.dropped = new Counter({
      name: 'weft_trace_spans_dropped_total',
      help: 'Spans recorded and never exported, by reason (queue_full, export_failed)',
      labelNames: ['reason'],
      registers: [registry],
    });
    // Both series exist from the start, so an alert on their rate sees a zero, not nothing.
    this.dropped.inc({ reason: 'queue_full' }, 0);
    this.dropped.inc({ reason: 'export_failed' }, 0);
  }

  spansExported(n: number): void {
    this.exported.inc(n);
  }

  spansDropped(reason: DropReason, n: number): void {
    this.dropped.inc({ reason }, n);
  }
}
