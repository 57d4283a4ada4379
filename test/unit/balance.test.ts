// Balancer choices and passive failure accrual, as pure decisions.
import { describe, expect, it } from 'vitest';
import type { BalancerKind } from '../../src/proxy/balance/balancer.js';
import { EndpointPool } from '../../src/proxy/balance/endpoint-pool.js';
import { ep, outlier, seededRandom } from '../helpers/balance.js';

function picks(pool: EndpointPool, n: number, hold = false): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const s = pool.pick()!;
    if (hold) s.active += 1;
    out.push(s.key);
  }
  return out;
}

describe('balancers', () => {
  it('round robin cycles through usable endpoints in order', () => {
    const pool = new EndpointPool('echo', 'roundRobin');
    pool.update([ep('a'), ep('b'), ep('c')], 'roundRobin');
    expect(picks(pool, 6)).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
  });

  it('least connections prefers the least loaded, weighted, and spreads ties', () => {
    const pool = new EndpointPool('echo', 'leastConnections');
    pool.update([ep('a'), ep('b', { weight: 2 })], 'leastConnections');
    // Held connections: b carries twice a's share before a is preferred again.
    expect(picks(pool, 6, true).sort()).toEqual(['a', 'a', 'b', 'b', 'b', 'b']);
    const idle = new EndpointPool('echo', 'leastConnections');
    idle.update([ep('a'), ep('b')], 'leastConnections');
    expect(new Set(picks(idle, 4))).toEqual(new Set(['a', 'b']));
  });

  it('skips unhealthy endpoints and those already tried; none usable gives undefined', () => {
    const pool = new EndpointPool('echo', 'roundRobin');
    pool.update([ep('a', { health: 'unhealthy' }), ep('b'), ep('c')], 'roundRobin');
    expect(new Set(picks(pool, 4))).toEqual(new Set(['b', 'c']));
    const tried = new Set([pool.pick()!, pool.pick()!]);
    expect(pool.pick(tried)).toBeUndefined();
    expect(pool.counts()).toEqual({ healthy: 2, unhealthy: 1, ejected: 0 });
  });

  it('ejects after consecutive failures, for longer each time, and lets one probe through', () => {
    let now = 0;
    const accrual = outlier({ consecutiveFailures: 2, maxEjectionMs: 3000 });
    const pool = new EndpointPool('echo', 'roundRobin', accrual, () => now);
    pool.update([ep('a'), ep('b')], 'roundRobin');
    const a = pool.pick()!;
    expect(a.failed(now)).toBe(false);
    expect(a.failed(now)).toBe(true);
    expect(picks(pool, 3)).toEqual(['b', 'b', 'b']);
    expect(pool.counts().ejected).toBe(1);
    now = 1000; // penalty over: exactly one probe goes to a, the rest wait for its outcome
    expect(picks(pool, 4).sort()).toEqual(['a', 'b', 'b', 'b']);
    expect(pool.counts().ejected).toBe(1); // out of rotation while its probe is out
    expect(a.failed(now)).toBe(true); // the probe failed: ejected again, for 2 x 1 s
    now = 2999;
    expect(picks(pool, 2)).toEqual(['b', 'b']);
    now = 3000;
    expect(picks(pool, 2).sort()).toEqual(['a', 'b']); // the second probe
    a.succeeded();
    expect(new Set(picks(pool, 2))).toEqual(new Set(['a', 'b']));
  });

  it('sends one probe even to the least loaded endpoint, another only after a penalty without an outcome', () => {
    let now = 0;
    const accrual = outlier();
    const pool = new EndpointPool('echo', 'leastConnections', accrual, () => now);
    pool.update([ep('a'), ep('b')], 'leastConnections');
    const a = pool.find((s) => s.key === 'a')!;
    expect(a.failed(now)).toBe(true);
    now = 1000;
    // a carries no connection, so least connections would hand it every new one: one probe.
    expect(picks(pool, 4, true).sort()).toEqual(['a', 'b', 'b', 'b']);
    // The probe never reports (its connection hangs): one more after the same penalty.
    now = 1999;
    expect(picks(pool, 2, true)).toEqual(['b', 'b']);
    now = 2000;
    expect(picks(pool, 3, true).sort()).toEqual(['a', 'b', 'b']);
    // It succeeds: back in rotation at once, and the least loaded again.
    a.succeeded();
    expect(picks(pool, 2, true)).toEqual(['a', 'a']);
  });

  it.each([['roundRobin'], ['leastConnections'], ['p2cEwma'], ['ringHash']] as [BalancerKind][])(
    '%s: an ejected endpoint gets one probe after its penalty, and only one',
    (kind) => {
      let now = 0;
      const accrual = outlier();
      const pool = new EndpointPool('echo', kind, accrual, () => now, seededRandom(11));
      pool.update([ep('a'), ep('b'), ep('c')], kind);
      // Requests with varied keys (ringHash) and connections alike.
      const spread = (n: number) =>
        Array.from({ length: n }, (_, i) =>
          i % 2 === 0
            ? pool.pick()!.key
            : pool.pick(undefined, { request: true, hashKey: `k${i}` })!.key,
        );
      const a = pool.find((s) => s.key === 'a')!;
      expect(a.failed(now)).toBe(true);
      expect(spread(60)).not.toContain('a');
      now = 1000;
      expect(spread(60).filter((k) => k === 'a')).toEqual(['a']);
      expect(a.failed(now)).toBe(true); // the probe failed: out for 2 s
      now = 2999;
      expect(spread(60)).not.toContain('a');
      now = 3000;
      expect(spread(60).filter((k) => k === 'a')).toEqual(['a']);
      a.succeeded();
      expect(spread(60)).toContain('a');
    },
  );

  it('keeps counters and ejections across a snapshot update', () => {
    const pool = new EndpointPool('echo', 'leastConnections');
    pool.update([ep('a'), ep('b')], 'leastConnections');
    const a = pool.pick()!;
    a.active = 5;
    pool.update([ep('a', { address: '10.0.0.9' }), ep('b'), ep('c')], 'leastConnections');
    expect(picks(pool, 2).sort()).toEqual(['b', 'c']);
  });
});
