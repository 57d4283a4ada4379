// A local rate limit per destination service on the receiving agent: a token bucket in
// Envoy's shape (maxTokens, tokensPerFill every fillInterval; it starts full). Every request (or
// opaque connection) to the service takes one token; none left: 429 with retry-after (or
// RESOURCE_EXHAUSTED, or the connection refused). Refilled lazily from an injected monotonic
// clock: no timer, and nothing at all for a service without a rateLimit.
import { parseDuration } from '../../api/duration-text.js';
import type { TrafficPolicySpec } from '../../api/resources/index.js';

export interface RateLimitSpec {
  maxTokens: number;
  tokensPerFill: number;
  fillIntervalMs: number;
}

/** TrafficPolicy.rateLimit as the bucket reads it (the schema refuses a zero fillInterval). */
export function rateLimitSpec(policy: NonNullable<TrafficPolicySpec['rateLimit']>): RateLimitSpec {
  return {
    maxTokens: policy.maxTokens,
    tokensPerFill: policy.tokensPerFill,
    fillIntervalMs: parseDuration(policy.fillInterval) ?? 1_000,
  };
}

export function sameRateLimit(a: RateLimitSpec, b: RateLimitSpec): boolean {
  return (
    a.maxTokens === b.maxTokens &&
    a.tokensPerFill === b.tokensPerFill &&
    a.fillIntervalMs === b.fillIntervalMs
  );
}

export class TokenBucket {
  private tokens: number;
  /** When the last whole fill interval ended (the clock's ms). */
  private filledAt: number;
  /** Requests and connections refused since start (weft_rate_limited_total). */
  limited = 0;

  constructor(
    readonly spec: RateLimitSpec,
    now: number,
  ) {
    this.tokens = spec.maxTokens;
    this.filledAt = now;
  }

  /**
   * Takes one token at `now`: 0 when there was one (admitted), else the milliseconds until the
   * next fill brings one (> 0: refused, counted).
   */
  take(now: number): number {
    const { fillIntervalMs, tokensPerFill, maxTokens } = this.spec;
    const elapsed = now - this.filledAt;
    if (elapsed >= fillIntervalMs) {
      const fills = Math.floor(elapsed / fillIntervalMs);
      this.tokens = Math.min(maxTokens, this.tokens + fills * tokensPerFill);
      this.filledAt += fills * fillIntervalMs;
    }
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    this.limited += 1;
    return Math.max(1, this.filledAt + fillIntervalMs - now);
  }
}

/** `retry-after` (RFC 9110 10.2.3: whole seconds) for a wait in milliseconds: at least 1. */
export function retryAfterSeconds(waitMs: number): number {
  return Math.max(1, Math.ceil(waitMs / 1_000));
}
