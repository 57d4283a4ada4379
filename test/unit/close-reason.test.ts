// The one close-reason vocabulary: how a relay's end, an agent's answer and a peer's weft-reason
// map onto it, table by table.
import { describe, expect, it } from 'vitest';
import {
  type AnswerReason,
  answerStatus,
  CLOSE_REASONS,
  parseAnswerReason,
  reasonOfAnswer,
  spliceCloseReason,
} from '../../src/proxy/close-reason.js';

describe('the vocabulary', () => {
  it('is a set of snake_case words', () => {
    expect(new Set(CLOSE_REASONS).size).toBe(CLOSE_REASONS.length);
    for (const r of CLOSE_REASONS) expect(r).toMatch(/^[a-z]+(_[a-z]+)*$/);
  });

  it('has no word of the old vocabularies left', () => {
    for (const old of ['peer_reset', 'target_reset', 'not_connect', 'connect_not_supported']) {
      expect(CLOSE_REASONS as readonly string[]).not.toContain(old);
    }
  });
});

describe('spliceCloseReason: which side broke, from where the tunnel stream stands', () => {
  it.each([
    // result, the stream is the ..., reason
    ['done', 'upstream', 'done'],
    ['done', 'client', 'done'],
    // outbound: the stream goes to the peer agent (the upstream), the socket is the app
    ['stream_reset', 'upstream', 'upstream_reset'],
    ['socket_reset', 'upstream', 'client_reset'],
    // inbound (tunnel server): the stream is the caller, the socket the local target
    ['stream_reset', 'client', 'client_reset'],
    ['socket_reset', 'client', 'upstream_reset'],
  ] as const)('%s with the stream on the %s side: %s', (result, side, reason) => {
    expect(spliceCloseReason(result, side)).toBe(reason);
  });
});

describe("answerStatus: the agent's own answers", () => {
  it.each([
    ['denied', 403, 7],
    ['no_identity', 503, 14],
    ['no_healthy_endpoint', 503, 14],
    ['circuit_open', 503, 14],
    // The receiving agent shed it (adaptive concurrency): load, not a broken endpoint.
    ['overloaded', 503, 14],
    ['rate_limited', 429, 8],
    ['connect_failed', 502, 14],
    ['upstream_failed', 502, 14],
    ['upstream_reset', 502, 14],
    ['client_reset', 502, 14],
    ['bad_request', 400, 13],
    ['unsupported', 501, 12],
    ['internal', 500, 13],
    ['connect_timeout', 504, 4],
    ['per_try_timeout', 504, 4],
    ['request_timeout', 504, 4],
    ['idle_timeout', 504, 4],
    // A route's: unusable backends are a 500 (Gateway API); a fault's abort has its own status
    // (configured; this is the fallback).
    ['route_backend_unavailable', 500, 13],
    ['fault_abort', 500, 13],
  ] as const)('%s: HTTP %i, gRPC %i', (reason, http, grpc) => {
    expect(answerStatus(reason)).toEqual({ http, grpc });
  });
});

describe("parseAnswerReason: a peer's weft-reason", () => {
  it.each([
    ['denied', 'denied'],
    ['no_healthy_endpoint', 'no_healthy_endpoint'],
    ['upstream_failed', 'upstream_failed'],
    ['circuit_open', 'circuit_open'],
    ['rate_limited', 'rate_limited'],
    ['overloaded', 'overloaded'],
    // Timeouts are answered 504 (or DEADLINE_EXCEEDED).
    ['idle_timeout', 'idle_timeout'],
    ['request_timeout', 'request_timeout'],
    // Not an answer's reason: connections only, or nothing went wrong.
    ['done', undefined],
    ['silent_timeout', undefined],
    ['upgraded', undefined],
    ['no_such_port', undefined],
    ['fault_abort', 'fault_abort'],
    ['route_backend_unavailable', 'route_backend_unavailable'],
    // A route's redirect is a normal response, never an answer with a weft-reason.
    ['route_redirect', undefined],
    // An older agent's words, or the old vocabulary.
    ['denied by AuthorizationPolicy x', undefined],
    ['peer_reset', undefined],
    ['', undefined],
    [undefined, undefined],
    [['denied'], undefined],
  ])('%j: %j', (value, reason) => {
    expect(parseAnswerReason(value)).toBe(reason);
  });
});

describe('reasonOfAnswer: an answer without a reason of ours, from its status', () => {
  it.each([
    [403, undefined, 'denied'],
    [429, undefined, 'rate_limited'],
    [400, undefined, 'bad_request'],
    [405, undefined, 'unsupported'],
    [501, undefined, 'unsupported'],
    [500, undefined, 'internal'],
    [502, undefined, 'upstream_failed'],
    [503, undefined, 'no_healthy_endpoint'],
    [504, undefined, 'request_timeout'],
    [404, undefined, 'bad_request'],
    // gRPC's trailers-only answers are HTTP 200: the gRPC status says.
    [200, 7, 'denied'],
    [200, 8, 'rate_limited'],
    [200, 12, 'unsupported'],
    [200, 14, 'upstream_failed'],
    [200, 13, 'internal'],
    [200, 4, 'request_timeout'],
  ] as const)('HTTP %i, gRPC %j: %s', (status, grpc, reason) => {
    expect(reasonOfAnswer(status, grpc)).toBe(reason);
  });

  it('gives back a reason with the same status as each answer (HTTP and gRPC)', () => {
    const reasons = CLOSE_REASONS.filter((r) => parseAnswerReason(r) !== undefined);
    for (const r of reasons as AnswerReason[]) {
      const { http, grpc } = answerStatus(r);
      expect(answerStatus(reasonOfAnswer(http, undefined)).http, r).toBe(http);
      expect(answerStatus(reasonOfAnswer(200, grpc)).grpc, r).toBe(grpc);
    }
  });
});
