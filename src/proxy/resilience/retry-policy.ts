// A TrafficPolicy's timeouts, retries and circuitBreaker.maxRetries as the outbound HTTP path
// reads them: milliseconds and sets, compiled once per snapshot (never per request). A service
// with none of them compiles to undefined, and its requests take the plain path.

import { parseDuration } from '../../api/duration-text.js';
import type { TrafficPolicySpec } from '../../api/resources/index.js';

/** The conditions of TrafficPolicy.retries.on (Envoy's names and meanings). */
export type RetryOn =
  | '5xx'
  | 'gateway-error'
  | 'reset'
  | 'connect-failure'
  | 'refused-stream'
  | 'retriable-status-codes';

export interface RetryPolicy {
  /** Retries after the first try (TrafficPolicy.retries.attempts). */
  retries: number;
  perTryMs: number | undefined;
  on: ReadonlySet<RetryOn>;
  /** HTTP statuses retried with `retriable-status-codes`. */
  statuses: ReadonlySet<number>;
  /** gRPC statuses retried when a response carries them in its headers (trailers-only). */
  grpcStatuses: ReadonlySet<number>;
  backoffBaseMs: number;
  backoffMaxMs: number;
  budgetPercent: number;
  budgetMinPerSecond: number;
}

export interface ServicePolicy {
  /** Reaching the endpoint: a tunnel session and stream, or a local connection. */
  connectMs: number | undefined;
  /** The whole request, retries included, until its response is complete. */
  requestMs: number | undefined;
  /** No byte either way for this long ends a request's stream or an opaque connection. */
  idleMs: number | undefined;
  retry: RetryPolicy | undefined;
  /** circuitBreaker.maxRetries: retries in flight to the service at once. */
  maxRetries: number | undefined;
}

const ms = (text: string | undefined): number | undefined =>
  text === undefined ? undefined : parseDuration(text);

/** Undefined when the policy sets none of what the exchange enforces. */
export function compilePolicy(spec: TrafficPolicySpec | undefined): ServicePolicy | undefined {
  if (spec === undefined) return undefined;
  const t = spec.timeouts;
  const r = spec.retries;
  const maxRetries = spec.circuitBreaker?.maxRetries;
  if (t === undefined && r === undefined && maxRetries === undefined) return undefined;
  return {
    connectMs: ms(t?.connect),
    requestMs: ms(t?.request),
    idleMs: ms(t?.idle),
    maxRetries,
    retry:
      r === undefined
        ? undefined
        : {
            retries: r.attempts,
            perTryMs: ms(r.perTryTimeout),
            on: new Set(r.on),
            statuses: new Set(r.retriableStatusCodes ?? []),
            grpcStatuses: new Set(r.retriableGrpcStatusCodes ?? []),
            backoffBaseMs: ms(r.backoff.base)!,
            backoffMaxMs: ms(r.backoff.max)!,
            budgetPercent: r.budget.percent,
            budgetMinPerSecond: r.budget.minPerSecond,
          },
  };
}
