// W3C Trace Context at one hop: which traceparents are kept, which start a new trace, what is
// forwarded; and the propagating tracer (tracing off) that applies it with injected ids.
import { describe, expect, it } from 'vitest';
import {
  decideTrace,
  formatTraceparent,
  parseTraceparent,
} from '../../src/proxy/http/trace-context.js';
import { randomTraceIds, type TraceIdSource } from '../../src/proxy/http/trace-ids.js';
import { propagatingTracer } from '../../src/telemetry/propagating-tracer.js';
import { setTraceHeaders } from '../../src/telemetry/tracer.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';
const VALID = `00-${TRACE}-${PARENT}-01`;

describe('parseTraceparent', () => {
  it.each([
    ['sampled', VALID, { traceId: TRACE, parentId: PARENT, sampled: true }],
    [
      'not sampled',
      `00-${TRACE}-${PARENT}-00`,
      { traceId: TRACE, parentId: PARENT, sampled: false },
    ],
    // Only bit 0 is defined in level 1; other bits do not make it invalid.
    [
      'other flag bits',
      `00-${TRACE}-${PARENT}-03`,
      { traceId: TRACE, parentId: PARENT, sampled: true },
    ],
    [
      'flags without sampled',
      `00-${TRACE}-${PARENT}-fe`,
      { traceId: TRACE, parentId: PARENT, sampled: false },
    ],
    // A future version is read as far as version 00 goes, extra fields after a "-".
    [
      'future version, same length',
      `cc-${TRACE}-${PARENT}-01`,
      { traceId: TRACE, parentId: PARENT, sampled: true },
    ],
    [
      'future version, longer',
      `01-${TRACE}-${PARENT}-01-what-the-future-holds`,
      { traceId: TRACE, parentId: PARENT, sampled: true },
    ],
  ])('keeps a valid one: %s', (_what, value, expected) => {
    expect(parseTraceparent(value)).toEqual(expected);
  });

  it.each([
    ['absent', undefined],
    ['empty', ''],
    ['sent twice (HTTP/2: an array)', [VALID, VALID]],
    ['sent twice (HTTP/1.1: Node joins them)', `${VALID}, ${VALID}`],
    ['version 00, longer than 55', `${VALID}-extra`],
    ['version 00, trailing space', `${VALID} `],
    ['shorter than 55', VALID.slice(0, 54)],
    ['version ff', `ff-${TRACE}-${PARENT}-01`],
    ['future version, longer without a dash', `01-${TRACE}-${PARENT}-01x`],
    ['upper-case hex', `00-${TRACE.toUpperCase()}-${PARENT}-01`],
    ['upper-case version', `0A-${TRACE}-${PARENT}-01`],
    ['all-zero trace id', `00-${'0'.repeat(32)}-${PARENT}-01`],
    ['all-zero parent id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['non-hex trace id', `00-${TRACE.slice(0, 31)}g-${PARENT}-01`],
    ['non-hex flags', `00-${TRACE}-${PARENT}-0x`],
    ['short trace id', `00-${TRACE.slice(1)}-${PARENT}-01x`],
    ['wrong separator', `00_${TRACE}-${PARENT}-01`],
    ['a 32-digit parent id', `00-${TRACE}-${TRACE}-01`],
  ])('treats as absent: %s', (_what, value) => {
    expect(parseTraceparent(value as string | string[] | undefined)).toBeUndefined();
  });
});

describe('decideTrace', () => {
  it.each([
    [
      'continues a valid traceparent, tracestate as is',
      { traceparent: VALID, tracestate: 'congo=t61rcWkgMzE, rojo=00f067aa0ba902b7' },
      {
        kind: 'continue',
        parent: { traceId: TRACE, parentId: PARENT, sampled: true },
        tracestate: 'congo=t61rcWkgMzE, rojo=00f067aa0ba902b7',
      },
    ],
    [
      'joins a tracestate split over fields',
      { traceparent: VALID, tracestate: ['a=1', 'b=2'] },
      {
        kind: 'continue',
        parent: { traceId: TRACE, parentId: PARENT, sampled: true },
        tracestate: 'a=1,b=2',
      },
    ],
    [
      'an empty tracestate is none',
      { traceparent: VALID, tracestate: '' },
      {
        kind: 'continue',
        parent: { traceId: TRACE, parentId: PARENT, sampled: true },
        tracestate: undefined,
      },
    ],
    ['starts when absent', {}, { kind: 'start', reason: 'absent' }],
    [
      'starts when invalid, dropping tracestate',
      { traceparent: `00-${TRACE}-${PARENT}-01-x`, tracestate: 'a=1' },
      { kind: 'start', reason: 'invalid' },
    ],
    ['a tracestate alone is no trace', { tracestate: 'a=1' }, { kind: 'start', reason: 'absent' }],
  ])('%s', (_what, headers, expected) => {
    expect(decideTrace(headers)).toEqual(expected);
  });
});

describe('formatTraceparent', () => {
  it('is version 00 with this hop as the parent', () => {
    expect(formatTraceparent(TRACE, 'b7ad6b7169203331', true)).toBe(
      `00-${TRACE}-b7ad6b7169203331-01`,
    );
    expect(formatTraceparent(TRACE, 'b7ad6b7169203331', false)).toBe(
      `00-${TRACE}-b7ad6b7169203331-00`,
    );
  });
});

describe('randomTraceIds', () => {
  it('makes valid, distinct ids across pool refills', () => {
    const ids = randomTraceIds();
    const seen = new Set<string>();
    for (let i = 0; i < 1_000; i++) {
      const traceId = ids.traceId();
      const spanId = ids.spanId();
      expect(traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(spanId).toMatch(/^[0-9a-f]{16}$/);
      expect(parseTraceparent(formatTraceparent(traceId, spanId, true))).toBeDefined();
      seen.add(traceId);
      seen.add(spanId);
    }
    expect(seen.size).toBe(2_000);
  });
});

/** Ids named in order: trace ids t1.., span ids s1.., padded to size. */
function countingIds(): TraceIdSource {
  let t = 0;
  let s = 0;
  return {
    traceId: () => `${++t}`.padStart(32, 'a'),
    spanId: () => `${++s}`.padStart(16, 'b'),
  };
}

describe('propagatingTracer (tracing off)', () => {
  const span = { name: 'GET', kind: 'client' as const, attributes: {} };

  it.each([
    [
      'keeps the trace id, a new span id, the sampled flag and tracestate',
      { traceparent: `00-${TRACE}-${PARENT}-00`, tracestate: 'a=1' },
      {
        traceId: TRACE,
        spanId: `${'b'.repeat(15)}1`,
        traceparent: `00-${TRACE}-${'b'.repeat(15)}1-00`,
        tracestate: 'a=1',
      },
    ],
    [
      'starts a sampled trace when none came',
      {},
      {
        traceId: `${'a'.repeat(31)}1`,
        spanId: `${'b'.repeat(15)}1`,
        traceparent: `00-${'a'.repeat(31)}1-${'b'.repeat(15)}1-01`,
        tracestate: undefined,
      },
    ],
    [
      'restarts on an invalid one, without its tracestate',
      { traceparent: `00-${TRACE.toUpperCase()}-${PARENT}-01`, tracestate: 'a=1' },
      {
        traceId: `${'a'.repeat(31)}1`,
        spanId: `${'b'.repeat(15)}1`,
        traceparent: `00-${'a'.repeat(31)}1-${'b'.repeat(15)}1-01`,
        tracestate: undefined,
      },
    ],
  ])('%s', (_what, headers, expected) => {
    const active = propagatingTracer(countingIds()).start(headers, span);
    expect({
      traceId: active.traceId,
      spanId: active.spanId,
      traceparent: active.traceparent,
      tracestate: active.tracestate,
    }).toEqual(expected);
    expect(() => active.end({ status: 200 })).not.toThrow();
  });

  it('makes a new span id for every request of one trace', () => {
    const tracer = propagatingTracer(countingIds());
    const a = tracer.start({ traceparent: VALID }, span);
    const b = tracer.start({ traceparent: VALID }, span);
    expect(a.traceId).toBe(b.traceId);
    expect(a.spanId).not.toBe(b.spanId);
  });

  it('setTraceHeaders replaces what came in, and drops a tracestate of a restarted trace', () => {
    const tracer = propagatingTracer(countingIds());
    const kept = { traceparent: VALID, tracestate: 'a=1', other: 'x' };
    setTraceHeaders(kept, tracer.start(kept, span));
    expect(kept).toEqual({
      traceparent: `00-${TRACE}-${'b'.repeat(15)}1-01`,
      tracestate: 'a=1',
      other: 'x',
    });
    const restarted: Record<string, string> = { traceparent: 'garbage', tracestate: 'a=1' };
    setTraceHeaders(restarted, tracer.start(restarted, span));
    expect(restarted).toEqual({ traceparent: `00-${'a'.repeat(31)}1-${'b'.repeat(15)}2-01` });
  });
});
