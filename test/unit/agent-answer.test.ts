// The agent's own answers, one format on both sides: HTTP gets the reason's status, weft-reason
// (a word of the vocabulary) and "weft: <detail>\n"; gRPC a trailers-only response with the
// reason's gRPC status and grpc-message percent-encoded as the gRPC spec says.
import { describe, expect, it } from 'vitest';
import { answerStatus } from '../../src/proxy/close-reason.js';
import { agentAnswer, agentAnswerParts, grpcMessage } from '../../src/proxy/http/agent-answer.js';
import { answerReason } from '../../src/proxy/http/inbound-tunnel.js';
import { isTrailersOnly } from '../../src/proxy/http/outbound-wire.js';

async function text(body: AsyncIterable<unknown>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}

describe('HTTP', () => {
  it.each([
    // Sending side (outbound-exchange, outbound-upgrade)
    ['no_healthy_endpoint', 'no usable endpoint of web:80', 503],
    ['no_identity', 'this host has no certificate yet', 503],
    ['upstream_failed', 'web: tunnel to node-b: stream reset', 502],
    ['circuit_open', 'circuit breaker open for web: 2 requests in flight', 503],
    // Receiving side (inbound-stack, inbound-tunnel)
    ['denied', 'denied by AuthorizationPolicy x', 403],
    ['connect_failed', 'cannot reach the app at 10.0.0.3:8080: ECONNREFUSED', 502],
    ['client_reset', 'the caller went away before the app answered', 502],
    ['bad_request', 'weft-target is missing', 400],
    ['rate_limited', 'rate limit of web reached', 429],
    ['overloaded', 'web is over its concurrency limit of 8', 503],
    ['internal', 'the agent failed this request', 500],
    ['unsupported', 'CONNECT inside an HTTP/2 stream is not carried', 501],
    // The route stage (outbound)
    ['route_backend_unavailable', 'route r: backend x:80 is not a Service port', 500],
  ] as const)('%s: %i, weft-reason, "weft: <detail>"', async (reason, detail, status) => {
    const r = agentAnswer({ reason, detail, grpc: false });
    const body = `weft: ${detail}\n`;
    expect(r).toMatchObject({ status, reason });
    expect(r.headers).toEqual({
      'content-type': 'text/plain; charset=utf-8',
      'content-length': String(Buffer.byteLength(body)),
      'weft-reason': reason,
    });
    expect(await text(r.body)).toBe(body);
    expect(answerReason(r)).toBe(reason);
  });

  it('keeps the body one line, bounded, whatever the detail holds', async () => {
    const r = agentAnswer({ reason: 'denied', detail: `a\r\nb\tc${'x'.repeat(500)}`, grpc: false });
    const body = await text(r.body);
    expect(body).toMatch(/^weft: a b cx+\.\.\.\n$/);
    expect(body.length).toBeLessThan(220);
  });

  it('marks an answer whose request reached no app (the caller may try elsewhere)', () => {
    const r = agentAnswer({
      reason: 'connect_failed',
      detail: 'x',
      grpc: false,
      undelivered: true,
    });
    expect(r.headers['weft-undelivered']).toBe('connect_failed');
  });

  it("says when to come back: a rate limit's retry-after, in whole seconds", () => {
    const spec = { reason: 'rate_limited', detail: 'x', retryAfter: 3 } as const;
    expect(agentAnswer({ ...spec, grpc: false }).headers['retry-after']).toBe('3');
    expect(agentAnswer({ ...spec, grpc: true }).headers['retry-after']).toBe('3');
    expect(agentAnswer({ reason: 'denied', detail: 'x', grpc: false }).headers).not.toHaveProperty(
      'retry-after',
    );
  });

  it("a route's fault abort answers with its configured status, in the one format", async () => {
    const r = agentAnswer({
      reason: 'fault_abort',
      detail: 'fault injected',
      grpc: false,
      status: 429,
    });
    expect(r).toMatchObject({ status: 429, reason: 'fault_abort' });
    expect(r.headers['weft-reason']).toBe('fault_abort');
    expect(await text(r.body)).toBe('weft: fault injected\n');
  });

  it('the sending and the receiving side write the same bytes for the same answer', async () => {
    const spec = { reason: 'no_healthy_endpoint', detail: 'none', grpc: false } as const;
    const parts = agentAnswerParts(spec);
    const response = agentAnswer(spec);
    expect({ status: response.status, headers: response.headers }).toEqual({
      status: parts.status,
      headers: parts.headers,
    });
    expect(await text(response.body)).toBe(parts.text);
  });
});

describe('gRPC', () => {
  it.each([
    ['denied', '7'],
    ['rate_limited', '8'],
    ['no_healthy_endpoint', '14'],
    ['circuit_open', '14'],
    ['overloaded', '14'],
    ['connect_failed', '14'],
    ['upstream_failed', '14'],
    ['bad_request', '13'],
    ['internal', '13'],
    ['unsupported', '12'],
  ] as const)('%s: trailers-only, grpc-status %s, weft-reason', async (reason, grpc) => {
    const r = agentAnswer({ reason, detail: 'why', grpc: true });
    expect(r.status).toBe(200);
    expect(r.headers).toEqual({
      'content-type': 'application/grpc',
      'grpc-status': grpc,
      'grpc-message': 'weft: why',
      'weft-reason': reason,
    });
    expect(String(answerStatus(reason).grpc)).toBe(grpc);
    expect(isTrailersOnly(r.headers)).toBe(true);
    expect(await text(r.body)).toBe('');
    expect(answerReason(r)).toBe(reason);
  });

  it('a shed asks gRPC clients not to retry (grpc-retry-pushback-ms: -1); HTTP has weft-reason', () => {
    const spec = { reason: 'overloaded', detail: 'x', noRetry: true } as const;
    const r = agentAnswer({ ...spec, grpc: true });
    expect(r.headers).toMatchObject({ 'grpc-status': '14', 'grpc-retry-pushback-ms': '-1' });
    expect(r.headers['weft-reason']).toBe('overloaded');
    expect(agentAnswer({ ...spec, grpc: false }).headers).not.toHaveProperty(
      'grpc-retry-pushback-ms',
    );
    expect(
      agentAnswer({ reason: 'overloaded', detail: 'x', grpc: true }).headers,
    ).not.toHaveProperty('grpc-retry-pushback-ms');
  });

  it("a route's fault abort: trailers-only with its configured gRPC status", () => {
    const r = agentAnswer({
      reason: 'fault_abort',
      detail: 'fault injected',
      grpc: true,
      status: 8,
    });
    expect(r.status).toBe(200);
    expect(r.headers).toMatchObject({ 'grpc-status': '8', 'weft-reason': 'fault_abort' });
    expect(isTrailersOnly(r.headers)).toBe(true);
  });

  it.each([
    // Printable ASCII goes as it is, spaces and punctuation included; % and the rest as %XX.
    ['no endpoint for a:b/c', 'no endpoint for a:b/c'],
    ['100% down', '100%25 down'],
    ['caf\u00e9', 'caf%C3%A9'],
    ['\u6587', '%E6%96%87'],
    ['tab\there', 'tab%09here'],
  ])('grpc-message of %j is %j', (raw, encoded) => {
    expect(grpcMessage(raw)).toBe(encoded);
    expect(decodeURIComponent(encoded)).toBe(raw);
  });
});
