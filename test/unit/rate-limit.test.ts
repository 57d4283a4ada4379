// The local rate limit (TrafficPolicy.rateLimit) as a token bucket driven by a fake clock:
// it starts full, refills tokensPerFill each whole fillInterval up to maxTokens, says how long
// until the next token, and admits N per second over 10 s.
import { describe, expect, it } from 'vitest';
import {
  rateLimitSpec,
  retryAfterSeconds,
  TokenBucket,
} from '../../src/proxy/resilience/rate-limit.js';

describe('token bucket', () => {
  it('starts full, then refuses with the wait until the next fill', () => {
    const b = new TokenBucket({ maxTokens: 3, tokensPerFill: 1, fillIntervalMs: 1_000 }, 0);
    expect([b.take(0), b.take(0), b.take(0)]).toEqual([0, 0, 0]);
    expect(b.take(0)).toBe(1_000);
    expect(b.take(400)).toBe(600);
    expect(b.take(1_000)).toBe(0);
    expect(b.take(1_000)).toBe(1_000);
    expect(b.limited).toBe(3);
  });

  it.each([
    // spec, idle for, tokens available after
    [{ maxTokens: 5, tokensPerFill: 2, fillIntervalMs: 100 }, 250, 4], // two whole fills
    [{ maxTokens: 5, tokensPerFill: 2, fillIntervalMs: 100 }, 10_000, 5], // capped
    [{ maxTokens: 5, tokensPerFill: 2, fillIntervalMs: 100 }, 99, 0],
    [{ maxTokens: 1, tokensPerFill: 10, fillIntervalMs: 1_000 }, 1_000, 1],
  ])('%o empty, idle %i ms: %i tokens', (spec, idle, tokens) => {
    const b = new TokenBucket(spec, 0);
    while (b.take(0) === 0);
    let admitted = 0;
    while (b.take(idle) === 0) admitted += 1;
    expect(admitted).toBe(tokens);
  });

  it('a partial interval is not lost: fills keep their schedule', () => {
    const b = new TokenBucket({ maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 100 }, 0);
    b.take(0);
    expect(b.take(150)).toBe(0); // the fill at 100
    expect(b.take(160)).toBe(40); // the next is at 200, not 250
  });

  it.each([
    [100, { maxTokens: 100, tokensPerFill: 100, fillIntervalMs: 1_000 }],
    [100, { maxTokens: 10, tokensPerFill: 1, fillIntervalMs: 10 }],
    [1_000, { maxTokens: 50, tokensPerFill: 5, fillIntervalMs: 5 }],
  ])('admits %i per second, +-5 %%, over 10 s of a client asking every ms (%o)', (n, spec) => {
    const b = new TokenBucket(spec, 0);
    let admitted = 0;
    for (let t = 0; t < 10_000; t++) if (b.take(t) === 0) admitted += 1;
    expect(Math.abs(admitted - 10 * n)).toBeLessThanOrEqual(0.05 * 10 * n);
  });

  it('reads the policy; retry-after is whole seconds, at least 1', () => {
    expect(rateLimitSpec({ maxTokens: 10, tokensPerFill: 2, fillInterval: '250ms' })).toEqual({
      maxTokens: 10,
      tokensPerFill: 2,
      fillIntervalMs: 250,
    });
    expect([1, 999, 1_000, 1_001, 2_500].map(retryAfterSeconds)).toEqual([1, 1, 1, 2, 3]);
  });
});
