// W3C Trace Context (https://www.w3.org/TR/trace-context/, level 1) at one hop: parse the
// traceparent a request came with, decide whether this hop continues that trace or starts one,
// and format the traceparent it forwards. Pure: the ids come from the caller's source.

/** A valid incoming traceparent's fields (lower-case hex). */
export interface TraceParent {
  traceId: string;
  parentId: string;
  /** Only the `sampled` bit is defined in level 1: the caller may have recorded the trace. */
  sampled: boolean;
}

/** What this hop does with the trace a request carries. */
export type TraceDecision =
  | {
      kind: 'continue';
      parent: TraceParent;
      /** Forwarded unchanged (several fields joined with ","); undefined when absent or empty. */
      tracestate: string | undefined;
    }
  /** No valid traceparent: a new trace starts here, and any tracestate is dropped with it (the
   * spec: a tracestate is not parsed when its traceparent is not; it belongs to no trace). */
  | { kind: 'start'; reason: 'absent' | 'invalid' };

/** The part of the request's headers trace context lives in (Node's parsed headers fit). */
export interface TraceHeaders {
  traceparent?: string | string[] | undefined;
  tracestate?: string | string[] | undefined;
}

// version "-" trace-id "-" parent-id "-" trace-flags: the first 55 characters of every
// version; lower-case hex only (HEXDIGLC).
const FIELDS = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const LENGTH_V00 = 55;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_PARENT = '0'.repeat(16);

/**
 * The fields of a traceparent, or undefined when it is absent or invalid (which the caller
 * treats alike: a new trace starts). Version 00 is exactly 55 characters; a later version
 * may be longer, but only after a "-" (the spec's "Versioning of traceparent"), and is read
 * as far as version 00 goes. Version ff, all-zero ids, upper-case hex and a header sent twice
 * (an array, or Node's "a, b" join of HTTP/1.1 duplicates: longer than 55) are invalid.
 */
export function parseTraceparent(value: string | string[] | undefined): TraceParent | undefined {
  if (typeof value !== 'string' || value.length < LENGTH_V00) return undefined;
  const m = FIELDS.exec(value.slice(0, LENGTH_V00));
  if (m === null) return undefined;
  const [, version, traceId, parentId, flags] = m as unknown as [
    string,
    string,
    string,
    string,
    string,
  ];
  if (version === 'ff') return undefined;
  if (
    version === '00'
      ? value.length !== LENGTH_V00
      : value.length > LENGTH_V00 && value[LENGTH_V00] !== '-'
  )
    return undefined;
  if (traceId === ZERO_TRACE || parentId === ZERO_PARENT) return undefined;
  return { traceId, parentId, sampled: (Number.parseInt(flags, 16) & 0x01) === 1 };
}

/** Continue the request's trace, or start one (and why). */
export function decideTrace(headers: TraceHeaders): TraceDecision {
  if (headers.traceparent === undefined) return { kind: 'start', reason: 'absent' };
  const parent = parseTraceparent(headers.traceparent);
  if (parent === undefined) return { kind: 'start', reason: 'invalid' };
  return { kind: 'continue', parent, tracestate: joinTracestate(headers.tracestate) };
}

/** tracestate may come in several header fields ("Combined Header Value"): one value, as is. */
function joinTracestate(value: string | string[] | undefined): string | undefined {
  const joined = Array.isArray(value) ? value.join(',') : value;
  return joined === undefined || joined.trim() === '' ? undefined : joined;
}

/** The traceparent this hop forwards: version 00, its own span as the parent. */
export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}
