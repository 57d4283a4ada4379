// The tracing API the HTTP stacks call: one span per request per hop. start() continues the
// request's W3C trace (or starts one) and names the traceparent to forward; end() records the
// outcome. With tracing off it only propagates; with an OTLP endpoint the span is exported.
import type { TraceHeaders } from '../proxy/http/trace-context.js';
import type { HeaderMap } from '../proxy/http/types.js';

/** client: the sending agent's hop (outbound); server: the receiving agent's (inbound). */
export type SpanKind = 'client' | 'server';

export type SpanAttributes = Record<string, string | number | boolean>;

export interface SpanStart {
  /** OTel's HTTP span name: the method (see httpSpan() in http-span.ts). */
  name: string;
  kind: SpanKind;
  attributes: SpanAttributes;
}

export interface SpanResult {
  /** The status the caller got; 0 when none was sent (the exchange broke off). */
  status: number;
  grpcStatus?: number;
  /** Why the exchange failed or the agent answered itself (a weft reason or error code). */
  error?: string;
}

/** A span's result, its optional fields set only when present (no temporary objects). */
export function spanResult(
  status: number,
  grpcStatus: number | undefined,
  error: string | undefined,
): SpanResult {
  const result: SpanResult = { status };
  if (grpcStatus !== undefined) result.grpcStatus = grpcStatus;
  if (error !== undefined) result.error = error;
  return result;
}

export interface ActiveSpan {
  readonly traceId: string;
  /** This hop's span: the parent of whatever the request reaches next. */
  readonly spanId: string;
  /** The traceparent to forward (version 00, parent id = spanId). */
  readonly traceparent: string;
  /** The incoming tracestate, to forward unchanged; undefined when the trace started here. */
  readonly tracestate: string | undefined;
  /** Records the outcome; the first call counts. Never throws, never waits on the exporter. */
  end(result: SpanResult): void;
}

export interface Tracer {
  /**
   * Never throws: a request with a bad traceparent starts a new trace. The span's description
   * may be a function, called only by a tracer that records it: without an exporter, a request
   * does not build attributes nobody reads.
   */
  start(headers: TraceHeaders, span: SpanStart | (() => SpanStart)): ActiveSpan;
  /** Exports what is queued (within the exporter's timeout) and stops. */
  shutdown(): Promise<void>;
}

/** Sets the trace headers a forwarded request carries: ours, replacing whatever came in. */
export function setTraceHeaders(headers: HeaderMap, span: ActiveSpan): void {
  headers.traceparent = span.traceparent;
  if (span.tracestate === undefined) delete headers.tracestate;
  else headers.tracestate = span.tracestate;
}
