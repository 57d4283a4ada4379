// Should this request be tried again? A pure decision over how the last try ended, the
// service's retry policy, and whether the request can be sent again unchanged. The budget and
// circuitBreaker.maxRetries are asked after it (they keep state); the executor is
// src/proxy/http/outbound-exchange.ts.
//
// Which `on` condition covers which outcome (Envoy's semantics: an upstream reset counts as a
// 5xx, a per-try timeout as a 504):
//   outcome                               5xx  gateway-error  reset  connect-failure  refused-stream
//   connect failure (incl. undelivered)    x        x                      x
//   stream refused (REFUSED_STREAM)        x        x           x                          x
//   reset before the response head         x        x           x
//   per-try timeout                        x        x           x
//   HTTP status >= 500                     x
//   HTTP 502, 503, 504                     x        x
// plus `retriable-status-codes` (the listed HTTP statuses) and `retriableGrpcStatusCodes`
// (a gRPC status in a trailers-only response, such as 14 UNAVAILABLE). An answer that the
// receiving agent shed (`weft-reason: overloaded`) is never retried, whatever `on` says: its
// service is over its adaptive concurrency limit, and a retry would only add load there
// (Envoy does not retry a response carrying x-envoy-overloaded either).
//
// A request that reached no app (a connect failure, an endpoint's agent that could not reach
// its app, a refused stream) moves to another endpoint at once, up to `failoverTries` tries,
// with or without a policy and whatever its `on` says: a failover, not a retry. Nothing was
// delivered, so it adds no load to any app, and the budget, circuitBreaker.maxRetries and the
// backoff do not apply. A policy only adds to it (its `on` takes over past failoverTries);
// before, a policy without connect-failure in `on`, or with maxRetries spent, failed requests
// that no policy would have moved.
import type { RetryOn, RetryPolicy } from './retry-policy.js';

/** How one try ended, as far as the retry decision cares. */
export type AttemptOutcome =
  | {
      kind: 'response';
      status: number;
      /** grpc-status of a trailers-only response (in its headers); else undefined. */
      grpcStatus: number | undefined;
      /** The receiving agent shed it (adaptive concurrency): never retried. */
      overloaded?: boolean;
    }
  /** Nothing reached the app: no session, no connection, or the peer agent could not reach it. */
  | { kind: 'connect-failure' }
  | { kind: 'refused-stream' }
  /** The stream failed after the request went out, before a response head. */
  | { kind: 'reset' }
  | { kind: 'per-try-timeout' };

/** The metric label of a retry: what the failed try did (a bounded set). */
export type RetryReason =
  | 'connect_failure'
  | 'refused_stream'
  | 'reset'
  | 'per_try_timeout'
  | 'http_status'
  | 'grpc_status';

export interface RetryInput {
  outcome: AttemptOutcome;
  /** Undefined: the service has no retry policy (only the failover below applies). */
  policy: RetryPolicy | undefined;
  /** Tries made so far (1 after the first). */
  tries: number;
  /** Of those tries, how many were failovers (they do not count against `attempts`). */
  failovers: number;
  /**
   * The request can go out again as it was: it has no body, its whole body was kept (at most
   * 64 KiB), or the failed try took none of it.
   */
  resendable: boolean;
  /** How many endpoints a request that reached none may try before the policy decides. */
  failoverTries: number;
}

export type RetryDecision =
  | { kind: 'retry'; reason: RetryReason }
  /** Nothing reached an app: to another endpoint at once, free of the policy's limits. */
  | { kind: 'failover'; reason: 'connect_failure' | 'refused_stream' }
  | {
      kind: 'final';
      /** not_retryable: no condition covers it; unsafe: cannot be resent; exhausted: no tries left. */
      why: 'success' | 'not_retryable' | 'unsafe' | 'exhausted';
    };

const SUCCESS: RetryDecision = { kind: 'final', why: 'success' };
const NOT_RETRYABLE: RetryDecision = { kind: 'final', why: 'not_retryable' };
const UNSAFE: RetryDecision = { kind: 'final', why: 'unsafe' };
const EXHAUSTED: RetryDecision = { kind: 'final', why: 'exhausted' };

export function decideRetry(input: RetryInput): RetryDecision {
  const { outcome, policy } = input;
  if (outcome.kind === 'response' && outcome.overloaded === true) return NOT_RETRYABLE;
  const undelivered = outcome.kind === 'connect-failure' || outcome.kind === 'refused-stream';
  if (undelivered && input.tries < input.failoverTries) {
    if (!input.resendable) return UNSAFE;
    return {
      kind: 'failover',
      reason: outcome.kind === 'refused-stream' ? 'refused_stream' : 'connect_failure',
    };
  }
  if (policy === undefined) {
    if (!undelivered) return SUCCESS;
    return input.resendable ? EXHAUSTED : UNSAFE;
  }
  const reason = covered(outcome, policy);
  if (reason === undefined) return outcome.kind === 'response' ? SUCCESS : NOT_RETRYABLE;
  if (!input.resendable) return UNSAFE;
  if (input.tries - input.failovers > policy.retries) return EXHAUSTED;
  return { kind: 'retry', reason };
}

/** The reason a condition of the policy covers this outcome; undefined when none does. */
function covered(outcome: AttemptOutcome, policy: RetryPolicy): RetryReason | undefined {
  const on = policy.on;
  const any = (...conditions: RetryOn[]): boolean => conditions.some((c) => on.has(c));
  switch (outcome.kind) {
    case 'connect-failure':
      return any('5xx', 'gateway-error', 'connect-failure') ? 'connect_failure' : undefined;
    case 'refused-stream':
      return any('5xx', 'gateway-error', 'reset', 'refused-stream') ? 'refused_stream' : undefined;
    case 'reset':
      return any('5xx', 'gateway-error', 'reset') ? 'reset' : undefined;
    case 'per-try-timeout':
      return any('5xx', 'gateway-error', 'reset') ? 'per_try_timeout' : undefined;
    case 'response': {
      const s = outcome.status;
      if (on.has('5xx') && s >= 500) return 'http_status';
      if (on.has('gateway-error') && (s === 502 || s === 503 || s === 504)) return 'http_status';
      if (on.has('retriable-status-codes') && policy.statuses.has(s)) return 'http_status';
      const g = outcome.grpcStatus;
      if (g !== undefined && policy.grpcStatuses.has(g)) return 'grpc_status';
      return undefined;
    }
  }
}
