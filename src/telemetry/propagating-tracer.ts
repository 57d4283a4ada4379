// The tracer when no OTLP endpoint is configured: it keeps every request's trace going (the
// incoming trace id with a new span id per hop, or a new trace) and records nothing, so it
// costs two short strings per request and loads no OpenTelemetry code.
import { decideTrace, formatTraceparent } from '../proxy/http/trace-context.js';
import type { TraceIdSource } from '../proxy/http/trace-ids.js';
import type { ActiveSpan, Tracer } from './tracer.js';

export function propagatingTracer(ids: TraceIdSource): Tracer {
  return {
    start(headers) {
      const decision = decideTrace(headers);
      const spanId = ids.spanId();
      // A trace started here is sampled (what OTel's default root sampler decides), so apps
      // behind weft that sample by their parent record it; a continued one keeps its flag.
      const [traceId, sampled, tracestate] =
        decision.kind === 'continue'
          ? [decision.parent.traceId, decision.parent.sampled, decision.tracestate]
          : [ids.traceId(), true, undefined];
      const span: ActiveSpan = {
        traceId,
        spanId,
        traceparent: formatTraceparent(traceId, spanId, sampled),
        tracestate,
        end() {},
      };
      return span;
    },
    async shutdown() {},
  };
}
