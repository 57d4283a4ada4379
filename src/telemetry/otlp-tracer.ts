// The tracer that records spans and exports them over OTLP/HTTP (protobuf) with the official
// OpenTelemetry SDK: batched, through a bounded queue, never on the request's path (end() only
// queues; a slow or absent collector costs dropped spans, counted, and nothing else). Loaded
// by create-tracer.ts only when an endpoint is configured.
import {
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  trace,
} from '@opentelemetry/api';
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  type ReadableSpan,
  type SpanExporter,
  type SpanProcessor,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { describeError } from '../errors.js';
import { decideTrace, formatTraceparent } from '../proxy/http/trace-context.js';
import type { TraceIdSource } from '../proxy/http/trace-ids.js';
import type { Logger } from '../sys/logger.js';
import { spanOutcome } from './http-span.js';
import type { TraceMetrics } from './trace-metrics.js';
import type { ActiveSpan, SpanResult, SpanStart, Tracer } from './tracer.js';
import type { TracingConfig } from './tracing-config.js';

/** The export pipeline's bounds; the defaults are the SDK's, the timeout shorter. */
export interface ExportTuning {
  /** Spans waiting for export at most; beyond, new ones are dropped (queue_full). */
  maxQueueSize: number;
  maxExportBatchSize: number;
  /** A batch smaller than maxExportBatchSize goes out after this long. */
  scheduledDelayMs: number;
  /** One export, retries included, gives up after this long (export_failed). */
  exportTimeoutMs: number;
}

export const DEFAULT_EXPORT_TUNING: ExportTuning = {
  maxQueueSize: 2048,
  maxExportBatchSize: 512,
  scheduledDelayMs: 5_000,
  exportTimeoutMs: 10_000,
};

export interface OtlpTracerOptions {
  config: TracingConfig & { otlpEndpoint: string };
  /** resource host.name: the node's name. */
  hostname: string;
  ids: TraceIdSource;
  metrics: TraceMetrics;
  log: Logger;
  tuning?: Partial<ExportTuning>;
}

export function otlpTracer(opts: OtlpTracerOptions): Tracer {
  const tuning = { ...DEFAULT_EXPORT_TUNING, ...opts.tuning };
  const { metrics, log } = opts;
  const exporter = new CountingExporter(
    new OTLPTraceExporter({
      url: opts.config.otlpEndpoint,
      timeoutMillis: tuning.exportTimeoutMs,
    }),
    metrics,
    log,
    opts.config.otlpEndpoint,
  );
  const queue = new BoundedQueue(
    new BatchSpanProcessor({
      exporter,
      maxQueueSize: tuning.maxQueueSize,
      maxExportBatchSize: tuning.maxExportBatchSize,
      scheduledDelayMillis: tuning.scheduledDelayMs,
      // The exporter's own timeout reports first; this only frees the processor after it.
      exportTimeoutMillis: tuning.exportTimeoutMs + 1_000,
    }),
    tuning.maxQueueSize,
    metrics,
  );
  exporter.handedOff = (n) => queue.handedOff(n);
  const ratio = opts.config.sampleRatio;
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'weft-agent', 'host.name': opts.hostname }),
    // Parent-based (the SDK's default): a request that carries a traceparent is recorded when
    // its caller sampled it; a trace that starts here is recorded with probability sampleRatio.
    sampler: new ParentBasedSampler({
      root: ratio === undefined ? new AlwaysOnSampler() : new TraceIdRatioBasedSampler(ratio),
    }),
    // The ids the SDK makes are the ones forwarded in traceparent: one source for both.
    idGenerator: {
      generateTraceId: () => opts.ids.traceId(),
      generateSpanId: () => opts.ids.spanId(),
    },
    spanProcessors: [queue],
  });
  const sdk = provider.getTracer('weft');

  return {
    start(headers, described) {
      const start = typeof described === 'function' ? described() : described;
      const decision = decideTrace(headers);
      // No global context manager: the parent is handed to the SDK explicitly, per request.
      const parent =
        decision.kind === 'continue'
          ? trace.setSpanContext(ROOT_CONTEXT, {
              traceId: decision.parent.traceId,
              spanId: decision.parent.parentId,
              traceFlags: decision.parent.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
              isRemote: true,
            })
          : ROOT_CONTEXT;
      const span = sdk.startSpan(start.name, spanOptions(start), parent);
      const ctx = span.spanContext();
      return activeSpan(
        span,
        start,
        formatTraceparent(ctx.traceId, ctx.spanId, (ctx.traceFlags & TraceFlags.SAMPLED) !== 0),
        decision.kind === 'continue' ? decision.tracestate : undefined,
      );
    },
    async shutdown() {
      // Bounded: a dead collector must not hold the agent's exit beyond one export's timeout.
      let timer: NodeJS.Timeout | undefined;
      const cap = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, tuning.exportTimeoutMs + 2_000);
      });
      await Promise.race([provider.shutdown().catch(() => {}), cap]);
      clearTimeout(timer);
    },
  };
}

function spanOptions(start: SpanStart) {
  return {
    kind: start.kind === 'client' ? SpanKind.CLIENT : SpanKind.SERVER,
    attributes: start.attributes,
  };
}

function activeSpan(
  span: Span,
  start: SpanStart,
  traceparent: string,
  tracestate: string | undefined,
): ActiveSpan {
  const ctx = span.spanContext();
  let ended = false;
  return {
    traceId: ctx.traceId,
    spanId: ctx.spanId,
    traceparent,
    tracestate,
    end(result: SpanResult) {
      if (ended) return;
      ended = true;
      if (!span.isRecording()) return;
      const outcome = spanOutcome(start.kind, result);
      span.setAttributes(outcome.attributes);
      if (outcome.errorType !== undefined)
        span.setStatus({ code: SpanStatusCode.ERROR, message: result.error });
      span.end();
    },
  };
}

/**
 * The BatchSpanProcessor, behind a count of the spans it holds: a span that would overflow
 * it is dropped here and counted (the SDK drops it too, but tells no one but its debug log).
 */
class BoundedQueue implements SpanProcessor {
  private queued = 0;

  constructor(
    private readonly batch: BatchSpanProcessor,
    private readonly max: number,
    private readonly metrics: TraceMetrics,
  ) {}

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    if (this.queued >= this.max) {
      this.metrics.spansDropped('queue_full', 1);
      return;
    }
    this.queued++;
    this.batch.onEnd(span);
  }

  /** The processor handed n spans to the exporter: they left its queue. */
  handedOff(n: number): void {
    this.queued = Math.max(0, this.queued - n);
  }

  forceFlush(): Promise<void> {
    return this.batch.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.batch.shutdown();
  }
}

/** The OTLP exporter, counting what the collector took and what was lost; logs each change
 * between working and failing once, not once per batch. */
class CountingExporter implements SpanExporter {
  handedOff: (n: number) => void = () => {};
  private failing = false;

  constructor(
    private readonly inner: SpanExporter,
    private readonly metrics: TraceMetrics,
    private readonly log: Logger,
    private readonly endpoint: string,
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.handedOff(spans.length);
    this.inner.export(spans, (result) => {
      if (result.code === ExportResultCode.SUCCESS) {
        this.metrics.spansExported(spans.length);
        if (this.failing) this.log.info({ endpoint: this.endpoint }, 'trace export works again');
        this.failing = false;
      } else {
        this.metrics.spansDropped('export_failed', spans.length);
        if (!this.failing)
          this.log.warn(
            { endpoint: this.endpoint, error: describeError(result.error), dropped: spans.length },
            'trace export failed: spans are dropped (weft_trace_spans_dropped_total) until the collector answers',
          );
        this.failing = true;
      }
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}
