// The pause before a retry (exponential, full jitter) and the retry budget (a share of the
// requests plus a floor per second, over a sliding 10 s window), with injected random sources
// and clocks.
import { describe, expect, it } from 'vitest';
import { backoffMs } from '../../src/proxy/resilience/backoff.js';
import { RetryBudget } from '../../src/proxy/resilience/budget.js';
import { seededRandom } from '../helpers/balance.js';

describe('backoffMs (full jitter)', () => {
  it.each([
    // retry, random draw, expected: floor(draw * min(max, base * 2^(retry-1)))
    { retry: 1, draw: 0.5, out: 12 }, // ceiling 25
    { retry: 2, draw: 0.5, out: 25 }, // ceiling 50
    { retry: 3, draw: 0.999, out: 99 }, // ceiling 100
    { retry: 4, draw: 0.5, out: 100 }, // ceiling 200
    { retry: 5, draw: 0.5, out: 125 }, // ceiling 400 capped at 250
    { retry: 60, draw: 0.5, out: 125 }, // a huge exponent stays capped, never Infinity
    { retry: 1, draw: 0, out: 0 },
  ])('retry $retry, draw $draw: $out ms', ({ retry, draw, out }) => {
    expect(backoffMs(retry, 25, 250, () => draw)).toBe(out);
  });

  it('spreads retries uniformly below the ceiling', () => {
    const random = seededRandom(7);
    const draws = Array.from({ length: 10_000 }, () => backoffMs(3, 25, 250, random));
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...draws)).toBeLessThan(100);
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    expect(mean).toBeGreaterThan(45);
    expect(mean).toBeLessThan(54);
  });
});

function budget(percent: number, minPerSecond: number, clock: { now: number }) {
  return new RetryBudget({ percent, minPerSecond, now: () => clock.now });
}

describe('RetryBudget', () => {
  it.each([
    // requests deposited at once, then how many retries it grants
    { name: '20 % of 100 requests, no floor', percent: 20, min: 0, requests: 100, granted: 20 },
    { name: '20 % of 7 requests, no floor', percent: 20, min: 0, requests: 7, granted: 1 },
    { name: 'the floor: 10/s over 10 s', percent: 20, min: 10, requests: 0, granted: 100 },
    { name: 'share plus floor', percent: 50, min: 1, requests: 10, granted: 15 },
    { name: 'no budget at all', percent: 0, min: 0, requests: 1_000, granted: 0 },
  ])('$name: $granted retries', ({ percent, min, requests, granted }) => {
    const clock = { now: 0 };
    const b = budget(percent, min, clock);
    for (let i = 0; i < requests; i++) b.deposit();
    let n = 0;
    while (b.withdraw()) n += 1;
    expect(n).toBe(granted);
    expect(b.window()).toEqual({ requests, retries: granted });
  });

  it('forgets requests and retries that left the 10 s window, bucket by bucket', () => {
    const clock = { now: 0 };
    const b = budget(20, 0, clock);
    for (let i = 0; i < 50; i++) b.deposit(); // at 0 s: 10 retries' worth
    clock.now = 5_000;
    for (let i = 0; i < 50; i++) b.deposit(); // at 5 s: 10 more
    let n = 0;
    while (b.withdraw()) n += 1;
    expect(n).toBe(20);
    // At 10.5 s the first second's bucket has left: its 50 requests no longer count, but the
    // retries taken at 5 s still do (20 taken, 10 earned): none left.
    clock.now = 10_500;
    expect(b.window()).toEqual({ requests: 50, retries: 20 });
    expect(b.withdraw()).toBe(false);
    // At 16 s everything has left the window.
    clock.now = 16_000;
    expect(b.window()).toEqual({ requests: 0, retries: 0 });
  });

  it('keeps every endpoint failing within 1 + percent of the load (plus the floor)', () => {
    const clock = { now: 0 };
    const b = budget(20, 2, clock);
    let attempts = 0;
    const requests = 5_000;
    for (let i = 0; i < requests; i++) {
      clock.now = i * 4; // 250 requests/s over 20 s
      b.deposit();
      attempts += 1;
      // every try fails and the policy would retry up to 3 times
      for (let r = 0; r < 3 && b.withdraw(); r++) attempts += 1;
    }
    // Over each 10 s window: 20 % of the requests plus 2/s x 10 s.
    const windows = (requests * 4) / 10_000;
    expect(attempts).toBeLessThanOrEqual(requests * 1.2 + 20 * (windows + 1));
    expect(attempts).toBeGreaterThan(requests * 1.15);
  });
});
