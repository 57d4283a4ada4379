// Should a failed try be retried? Every outcome against each `on` condition (Envoy's
// meanings), the body question, the tries left, and the failover that applies without a
// policy. The policies are compiled from TrafficPolicy documents as `weft apply` takes them.
import { describe, expect, it } from 'vitest';
import { validateResource } from '../../src/api/resources/index.js';
import type { TrafficPolicySpec } from '../../src/api/resources/traffic-policy.js';
import {
  type AttemptOutcome,
  decideRetry,
  type RetryInput,
} from '../../src/proxy/resilience/retry-decision.js';
import { compilePolicy, type RetryPolicy } from '../../src/proxy/resilience/retry-policy.js';

function spec(extra: Record<string, unknown>): TrafficPolicySpec {
  const r = validateResource({
    apiVersion: 'weft/v1',
    kind: 'TrafficPolicy',
    metadata: { name: 'tp' },
    spec: { targetRef: { name: 'echo' }, ...extra },
  });
  if (!r.ok) throw new Error(String(r.problems));
  return (r.resource as unknown as { spec: TrafficPolicySpec }).spec;
}

function retryPolicy(retries: Record<string, unknown>): RetryPolicy {
  return compilePolicy(spec({ retries }))!.retry!;
}

const response = (status: number, grpcStatus?: number): AttemptOutcome => ({
  kind: 'response',
  status,
  grpcStatus,
});
const CONNECT: AttemptOutcome = { kind: 'connect-failure' };
const REFUSED: AttemptOutcome = { kind: 'refused-stream' };
const RESET: AttemptOutcome = { kind: 'reset' };
const TIMEOUT: AttemptOutcome = { kind: 'per-try-timeout' };
const PAST_FAILOVERS: Partial<RetryInput> = { tries: 3, failovers: 2 };

function decide(on: string[], outcome: AttemptOutcome, more: Partial<RetryInput> = {}) {
  const extra = on.includes('retriable-status-codes') ? { retriableStatusCodes: [409] } : {};
  return decideRetry({
    outcome,
    policy: retryPolicy({ attempts: 2, on, ...extra }),
    tries: 1,
    failovers: 0,
    resendable: true,
    failoverTries: 3,
    ...more,
  });
}

describe('which condition covers which outcome', () => {
  const table: [string, AttemptOutcome, string[]][] = [
    // outcome, the conditions that retry it (of all six)
    ['connect failure', CONNECT, ['5xx', 'gateway-error', 'connect-failure']],
    ['refused stream', REFUSED, ['5xx', 'gateway-error', 'reset', 'refused-stream']],
    ['reset before the head', RESET, ['5xx', 'gateway-error', 'reset']],
    ['per-try timeout', TIMEOUT, ['5xx', 'gateway-error', 'reset']],
    ['500', response(500), ['5xx']],
    ['502', response(502), ['5xx', 'gateway-error']],
    ['503', response(503), ['5xx', 'gateway-error']],
    ['504', response(504), ['5xx', 'gateway-error']],
    ['409 (listed)', response(409), ['retriable-status-codes']],
    ['200', response(200), []],
    ['404', response(404), []],
  ];
  const all = [
    '5xx',
    'gateway-error',
    'reset',
    'connect-failure',
    'refused-stream',
    'retriable-status-codes',
  ];
  for (const [name, outcome, retried] of table) {
    for (const condition of all) {
      const yes = retried.includes(condition);
      it(`${name} ${yes ? 'is' : 'is not'} retried on ${condition}`, () => {
        // Past its failovers (3 tries, 2 of them failovers), where the policy decides.
        expect(decide([condition], outcome, PAST_FAILOVERS).kind).toBe(yes ? 'retry' : 'final');
      });
    }
  }

  it('names what the failed try did', () => {
    expect(decide(['5xx'], CONNECT, PAST_FAILOVERS)).toEqual({
      kind: 'retry',
      reason: 'connect_failure',
    });
    expect(decide(['5xx'], REFUSED, PAST_FAILOVERS)).toEqual({
      kind: 'retry',
      reason: 'refused_stream',
    });
    expect(decide(['5xx'], RESET)).toEqual({ kind: 'retry', reason: 'reset' });
    expect(decide(['5xx'], TIMEOUT)).toEqual({ kind: 'retry', reason: 'per_try_timeout' });
    expect(decide(['5xx'], response(503))).toEqual({ kind: 'retry', reason: 'http_status' });
  });

  it('a success and an unlisted failure are final, each for its reason', () => {
    expect(decide(['5xx'], response(200))).toEqual({ kind: 'final', why: 'success' });
    expect(decide(['connect-failure'], RESET)).toEqual({ kind: 'final', why: 'not_retryable' });
  });
});

describe('gRPC statuses (trailers-only responses)', () => {
  const policy = retryPolicy({ on: ['reset'], retriableGrpcStatusCodes: [14] });
  it.each([
    [14, 'retry'],
    [4, 'final'],
    [0, 'final'],
    [undefined, 'final'],
  ])('grpc-status %s: %s', (code, kind) => {
    const d = decideRetry({
      outcome: response(200, code),
      policy,
      tries: 1,
      failovers: 0,
      resendable: true,
      failoverTries: 3,
    });
    expect(d.kind).toBe(kind);
    if (d.kind === 'retry') expect(d.reason).toBe('grpc_status');
  });
});

describe('safety and tries', () => {
  it('a request that cannot be resent (its body streamed past 64 KiB) is never retried', () => {
    expect(decide(['5xx'], response(503), { resendable: false })).toEqual({
      kind: 'final',
      why: 'unsafe',
    });
    expect(decide(['5xx'], CONNECT, { resendable: false })).toEqual({
      kind: 'final',
      why: 'unsafe',
    });
  });

  it.each([
    // attempts (retries after the first try), tries made, retried?
    [1, 1, true],
    [1, 2, false],
    [2, 2, true],
    [2, 3, false],
    [0, 1, false],
  ])('attempts %d, after %d tries: retry %s', (attempts, tries, yes) => {
    const d = decideRetry({
      outcome: response(503),
      policy: retryPolicy({ attempts, on: ['5xx'] }),
      tries,
      failovers: 0,
      resendable: true,
      failoverTries: 3,
    });
    expect(d).toEqual(yes ? { kind: 'retry', reason: 'http_status' } : expect.anything());
    if (!yes) expect(d).toEqual({ kind: 'final', why: 'exhausted' });
  });
});

describe('without a retry policy: failover only where nothing reached an app', () => {
  const failover = (outcome: AttemptOutcome, tries: number, resendable = true) =>
    decideRetry({
      outcome,
      policy: undefined,
      tries,
      failovers: tries - 1,
      resendable,
      failoverTries: 3,
    }).kind;
  it.each([
    ['a connect failure moves on', CONNECT, 1, true, 'failover'],
    ['a refused stream moves on', REFUSED, 2, true, 'failover'],
    ['up to failoverTries endpoints', CONNECT, 3, true, 'final'],
    ['not when the body cannot be resent', CONNECT, 1, false, 'final'],
    ['a reset is final (the app may have it)', RESET, 1, true, 'final'],
    ['a 503 is the answer', response(503), 1, true, 'final'],
    ['a timeout is final', TIMEOUT, 1, true, 'final'],
  ] as const)('%s', (_name, outcome, tries, resendable, kind) => {
    expect(failover(outcome, tries, resendable)).toBe(kind);
  });
});

describe('with a retry policy, a request that reached no app still fails over freely', () => {
  // Defects seen in the bench's kill -9 scenario: a policy took away the failover that a
  // service without one gets (its `on` did not list connect-failure), and counted the move as
  // a retry (so maxRetries and the budget could refuse it).
  it.each([
    ['`on` without connect-failure', ['reset'], CONNECT],
    ['`on` without refused-stream', ['connect-failure'], REFUSED],
    ['`on` with only status codes', ['retriable-status-codes'], CONNECT],
  ])('%s: a failover, not a retry', (_name, on, outcome) => {
    expect(decide(on, outcome).kind).toBe('failover');
    expect(decide(on, outcome, { tries: 2, failovers: 1 }).kind).toBe('failover');
  });

  it('failovers do not spend `attempts`: after two, a 503 is still retried once', () => {
    const policy = retryPolicy({ attempts: 1, on: ['5xx'] });
    const at = (tries: number, failovers: number) =>
      decideRetry({
        outcome: response(503),
        policy,
        tries,
        failovers,
        resendable: true,
        failoverTries: 3,
      }).kind;
    expect(at(3, 2)).toBe('retry');
    expect(at(4, 2)).toBe('final');
  });

  it('past failoverTries, the policy decides', () => {
    expect(decide(['reset'], CONNECT, PAST_FAILOVERS)).toEqual({
      kind: 'final',
      why: 'not_retryable',
    });
    expect(decide(['connect-failure'], CONNECT, PAST_FAILOVERS).kind).toBe('retry');
  });

  it('a body that cannot be resent is never failed over', () => {
    expect(decide(['reset'], CONNECT, { resendable: false })).toEqual({
      kind: 'final',
      why: 'unsafe',
    });
  });
});

describe('compilePolicy', () => {
  it('is undefined when nothing the exchange enforces is set (the plain path)', () => {
    expect(compilePolicy(undefined)).toBeUndefined();
    expect(compilePolicy(spec({ balancer: { type: 'roundRobin' } }))).toBeUndefined();
  });

  it('turns durations into milliseconds and fills Envoy and Linkerd defaults', () => {
    const p = compilePolicy(
      spec({
        timeouts: { connect: '1s', request: '1m30s', idle: '5m' },
        retries: { perTryTimeout: '250ms' },
        circuitBreaker: {},
      }),
    )!;
    expect(p).toMatchObject({
      connectMs: 1_000,
      requestMs: 90_000,
      idleMs: 300_000,
      maxRetries: undefined,
      retry: {
        retries: 1,
        perTryMs: 250,
        backoffBaseMs: 25,
        backoffMaxMs: 250,
        budgetPercent: 20,
        budgetMinPerSecond: 10,
      },
    });
    expect([...p.retry!.on].sort()).toEqual(
      ['connect-failure', 'gateway-error', 'refused-stream', 'reset'].sort(),
    );
  });
});

describe('what weft apply refuses', () => {
  it.each([
    [
      { on: ['retriable-status-codes'] },
      'is required when `on` lists retriable-status-codes: list the statuses to retry',
    ],
    [
      { on: ['5xx'], retriableStatusCodes: [409] },
      'does nothing unless `on` lists retriable-status-codes: add it there, or remove this field',
    ],
    [{ backoff: { base: '1s', max: '100ms' } }, 'must be at least backoff.base (1s)'],
    [{ retriableGrpcStatusCodes: [17] }, 'must be 0-16'],
    [{ retriableGrpcStatusCodes: [] }, 'must list at least one gRPC status'],
  ])('%j', (retries, message) => {
    const r = validateResource({
      apiVersion: 'weft/v1',
      kind: 'TrafficPolicy',
      metadata: { name: 'tp' },
      spec: { targetRef: { name: 'echo' }, retries },
    });
    expect(r.ok).toBe(false);
    expect(String(!r.ok && r.problems)).toContain(message);
  });
});
