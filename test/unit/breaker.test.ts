// Circuit breaking per destination service (TrafficPolicy.circuitBreaker) as pure state:
// connections, requests in flight and requests pending, each refused beyond its limit and
// counted, and admitted again once under it.
import { describe, expect, it } from 'vitest';
import {
  BreakerSlot,
  CircuitBreaker,
  DEFAULT_BREAKER_LIMITS,
} from '../../src/proxy/resilience/breaker.js';

const limits = { maxConnections: 2, maxPendingRequests: 2, maxRequests: 3 };

describe('circuit breaker', () => {
  it("without a policy: the schema's 1024 each", () => {
    expect(DEFAULT_BREAKER_LIMITS).toEqual({
      maxConnections: 1024,
      maxPendingRequests: 1024,
      maxRequests: 1024,
    });
    expect(new CircuitBreaker('web').limits).toBe(DEFAULT_BREAKER_LIMITS);
  });

  it('refuses a connection beyond maxConnections, and admits again once one closes', () => {
    const b = new CircuitBreaker('web', limits);
    expect([b.openConnection(), b.openConnection(), b.openConnection()]).toEqual([
      undefined,
      undefined,
      'max_connections',
    ]);
    b.closeConnection();
    expect(b.openConnection()).toBeUndefined();
    expect(b.rejections).toEqual({ max_connections: 1, max_pending_requests: 0, max_requests: 0 });
  });

  it.each([
    // requests started (the first `sent` of them sent at once), then: the next request's outcome
    { started: 2, sent: 0, next: 'max_pending_requests' }, // two wait for a session already
    { started: 2, sent: 1, next: undefined },
    { started: 3, sent: 3, next: 'max_requests' },
    { started: 3, sent: 1, next: 'max_requests' }, // in flight is judged first
  ])('$started started, $sent sent: the next gets $next', ({ started, sent, next }) => {
    const b = new CircuitBreaker('web', limits);
    for (let i = 0; i < started; i++) {
      expect(b.startRequest()).toBeUndefined();
      if (i < sent) new BreakerSlot(b).sent();
    }
    expect(b.startRequest()).toBe(next);
  });

  it('a slot releases exactly once, however often it is told; pending ends with the request', () => {
    const b = new CircuitBreaker('web', limits);
    b.startRequest();
    const s = new BreakerSlot(b);
    s.sent();
    s.sent(); // a retry's second send
    expect([b.requests, b.pending]).toEqual([1, 0]);
    s.end();
    s.end();
    expect([b.requests, b.pending]).toEqual([0, 0]);
    b.startRequest();
    new BreakerSlot(b).end(); // abandoned before it was sent
    expect([b.requests, b.pending]).toEqual([0, 0]);
  });

  it('takes new limits in place: what is in flight counts against them', () => {
    const b = new CircuitBreaker('web', limits);
    b.startRequest();
    b.startRequest();
    b.limits = { ...limits, maxRequests: 2 };
    expect(b.startRequest()).toBe('max_requests');
    expect(b.describe('max_requests')).toBe(
      'circuit breaker open for web: 2 requests in flight (circuitBreaker.maxRequests)',
    );
  });
});
