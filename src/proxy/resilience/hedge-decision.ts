// Hedging, decided: which requests a route rule's `hedging` covers (idempotent ones only), how
// long to wait before a hedge (a fixed delay, or the rule's observed p95), and which attempt's
// outcome ends the race (a good answer; a failure waits for the other attempts). Pure: the
// executor is src/proxy/http/outbound-exchange.ts.
import type { LatencyQuantile } from './latency-quantile.js';
import type { AttemptOutcome } from './retry-decision.js';

/** A route rule's hedging, compiled once per snapshot (route-table.ts). */
export interface HedgePolicy {
  /** A fixed delay (ms); undefined: the rule's observed p95 (`p95`). */
  delayMs: number | undefined;
  /** The rule's latencies (set with a p95 delay): kept across snapshots, per route rule. */
  latency: LatencyQuantile | undefined;
  /** Extra attempts per request, at most. */
  maxHedges: number;
  /** A GRPCRoute's rule: its calls are declared idempotent by the hedging itself. */
  grpcRoute: boolean;
}

/** Methods that may be sent twice (RFC 9110 9.2.2): POST and PATCH never are. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

export type HedgeOutcome =
  | { kind: 'hedge' }
  | { kind: 'no_hedge'; why: 'unset' | 'not_idempotent' };

/**
 * Whether a request may be hedged: a gRPC call only under a GRPCRoute rule with hedging (every
 * gRPC call is a POST, so an HTTPRoute never hedges one); any other request when its method is
 * idempotent. Its body is asked later, at the hedge: only a kept body (<= 64 KiB, complete)
 * can go out twice.
 */
export function decideHedge(
  policy: HedgePolicy | undefined,
  method: string,
  grpc: boolean,
): HedgeOutcome {
  if (policy === undefined) return { kind: 'no_hedge', why: 'unset' };
  const idempotent = grpc ? policy.grpcRoute : IDEMPOTENT.has(method);
  return idempotent ? { kind: 'hedge' } : { kind: 'no_hedge', why: 'not_idempotent' };
}

/** The wait before the next hedge (ms); undefined: no p95 known yet (too few samples). */
export function hedgeDelayMs(policy: HedgePolicy): number | undefined {
  return policy.delayMs ?? policy.latency?.quantile(0.95);
}

/** gRPC UNAVAILABLE: the server could not serve it now, another one may. */
const GRPC_UNAVAILABLE = 14;

/**
 * Whether an attempt's outcome ends the race: an answer that is not a server failure (5xx, a
 * shed, a trailers-only UNAVAILABLE). A failure leaves the race to the attempts still out
 * (the first good answer wins, as Envoy's hedging takes the first non-retriable one); when
 * none is left, the last outcome goes to the retry decision.
 */
export function settles(outcome: AttemptOutcome): boolean {
  if (outcome.kind !== 'response') return false;
  if (outcome.status >= 500 || outcome.overloaded === true) return false;
  return outcome.grpcStatus !== GRPC_UNAVAILABLE;
}
