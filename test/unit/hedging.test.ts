// Hedging's pure parts, table-style: which requests a rule's hedging covers, which outcome ends
// the race, the delay (fixed, or the rule's p95), the p95 estimator on a fake clock, and the
// compiled route table (hedging on the rule's exchange, its estimator kept across snapshots).
import { describe, expect, it } from 'vitest';
import { MeshState } from '../../src/proxy/mesh-state.js';
import {
  decideHedge,
  type HedgePolicy,
  hedgeDelayMs,
  settles,
} from '../../src/proxy/resilience/hedge-decision.js';
import {
  bucketOf,
  LatencyQuantile,
  upperBound,
} from '../../src/proxy/resilience/latency-quantile.js';
import type { AttemptOutcome } from '../../src/proxy/resilience/retry-decision.js';
import { computedTraffic } from '../../src/proxy/traffic-policies.js';
import { serviceDoc, viewOf } from '../helpers/mesh-views.js';

const fixed = (ms: number, grpcRoute = false): HedgePolicy => ({
  delayMs: ms,
  latency: undefined,
  maxHedges: 1,
  grpcRoute,
});

describe('who is hedged', () => {
  const table: Array<[string, HedgePolicy | undefined, string, boolean, string]> = [
    ['no hedging on the rule', undefined, 'GET', false, 'unset'],
    ['GET', fixed(10), 'GET', false, 'hedge'],
    ['HEAD', fixed(10), 'HEAD', false, 'hedge'],
    ['OPTIONS', fixed(10), 'OPTIONS', false, 'hedge'],
    ['PUT', fixed(10), 'PUT', false, 'hedge'],
    ['DELETE', fixed(10), 'DELETE', false, 'hedge'],
    ['POST', fixed(10), 'POST', false, 'not_idempotent'],
    ['PATCH', fixed(10), 'PATCH', false, 'not_idempotent'],
    ['a gRPC call under an HTTPRoute rule (a POST)', fixed(10), 'POST', true, 'not_idempotent'],
    ['a gRPC call under a GRPCRoute rule with hedging', fixed(10, true), 'POST', true, 'hedge'],
  ];
  for (const [what, policy, method, grpc, want] of table) {
    it(`${what} -> ${want}`, () => {
      const d = decideHedge(policy, method, grpc);
      expect(d.kind === 'hedge' ? 'hedge' : d.why).toBe(want);
    });
  }
});

describe('which outcome ends the race', () => {
  const table: Array<[string, AttemptOutcome, boolean]> = [
    ['a 200', { kind: 'response', status: 200, grpcStatus: undefined }, true],
    [
      'a 404 (an answer, not a failure)',
      { kind: 'response', status: 404, grpcStatus: undefined },
      true,
    ],
    ['a gRPC NOT_FOUND', { kind: 'response', status: 200, grpcStatus: 5 }, true],
    ['a 503', { kind: 'response', status: 503, grpcStatus: undefined }, false],
    ['a shed', { kind: 'response', status: 503, grpcStatus: undefined, overloaded: true }, false],
    ['a gRPC UNAVAILABLE', { kind: 'response', status: 200, grpcStatus: 14 }, false],
    ['a reset', { kind: 'reset' }, false],
    ['a connect failure', { kind: 'connect-failure' }, false],
    ['a per-try timeout', { kind: 'per-try-timeout' }, false],
  ];
  for (const [what, outcome, want] of table) {
    it(`${what} -> ${want ? 'settles' : 'waits for the others'}`, () =>
      expect(settles(outcome)).toBe(want));
  }
});

describe('the delay', () => {
  it('a fixed delay is itself', () => {
    expect(hedgeDelayMs(fixed(50))).toBe(50);
  });

  it("p95: none until enough samples, then the rule's observed p95", () => {
    let now = 0;
    const latency = new LatencyQuantile({ now: () => now, minSamples: 20 });
    const policy: HedgePolicy = { delayMs: undefined, latency, maxHedges: 1, grpcRoute: false };
    for (let i = 0; i < 19; i++) latency.observe(10);
    expect(hedgeDelayMs(policy)).toBeUndefined();
    // 95 fast answers and 5 slow ones: the p95 is a fast one; a sixth slow one tips it.
    for (let i = 0; i < 76; i++) latency.observe(10);
    for (let i = 0; i < 5; i++) latency.observe(400);
    const p95 = hedgeDelayMs(policy)!;
    expect(p95).toBeGreaterThanOrEqual(10);
    expect(p95).toBeLessThan(10 * 1.2);
    latency.observe(400);
    expect(hedgeDelayMs(policy)).toBeGreaterThanOrEqual(400);
    now += 1;
    expect(hedgeDelayMs(policy)).toBeGreaterThanOrEqual(400);
  });
});

describe('the p95 estimator', () => {
  it('each sample lands in the bucket whose bound is within a quarter doubling above it', () => {
    for (const ms of [0.1, 0.3, 1, 7, 50, 123.4, 999, 60_000]) {
      const bound = upperBound(bucketOf(ms));
      expect(bound).toBeGreaterThanOrEqual(ms > 0.25 ? ms * 0.9999 : 0.25);
      if (ms > 0.25) expect(bound).toBeLessThan(ms * 2 ** 0.25 * 1.0001);
    }
    // Beyond the last bucket: the last bucket.
    expect(bucketOf(1e12)).toBe(bucketOf(1e13));
  });

  it('follows a change within two windows (fake clock)', () => {
    let now = 0;
    const q = new LatencyQuantile({ now: () => now, windowMs: 10_000, minSamples: 10 });
    for (let i = 0; i < 100; i++) q.observe(200);
    expect(q.quantile(0.95)).toBeGreaterThanOrEqual(200);
    // One window later the slow samples are the previous window, still counted.
    now = 10_000;
    for (let i = 0; i < 100; i++) q.observe(5);
    expect(q.quantile(0.95)).toBeGreaterThanOrEqual(200);
    // Two windows later only the fast ones are left.
    now = 20_000;
    for (let i = 0; i < 100; i++) q.observe(5);
    expect(q.quantile(0.95)).toBeLessThan(5 * 1.2);
    // A long silence: nothing recent, no estimate.
    now = 60_000;
    expect(q.quantile(0.95)).toBeUndefined();
  });
});

describe('the compiled route table', () => {
  const services = [serviceDoc('web', '240.240.0.1', [{ port: 80, targetPort: 8080 }])];
  const route = (hedging: Record<string, unknown> | undefined, name = 'r') => ({
    apiVersion: 'weft/v1',
    kind: 'HTTPRoute',
    metadata: { name },
    spec: { parentRefs: [{ name: 'web' }], rules: [hedging ? { hedging } : {}] },
  });
  const exchangeOf = (state: MeshState) => state.routeTable('web')!.get(80)!.http[0]!.rule.exchange;

  it('a rule without hedging has none (no cost per request)', () => {
    const state = new MeshState('node-a', computedTraffic());
    state.update(viewOf([...services, route(undefined)]));
    expect(exchangeOf(state)).toEqual({ name: 'r' });
  });

  it('a fixed delay and maxHedges are compiled in ms', () => {
    const state = new MeshState('node-a', computedTraffic());
    state.update(viewOf([...services, route({ delay: '50ms', maxHedges: 2 })]));
    expect(exchangeOf(state).hedging).toEqual({
      delayMs: 50,
      latency: undefined,
      maxHedges: 2,
      grpcRoute: false,
    });
  });

  it('a p95 rule keeps its estimator across snapshots, and loses it when the rule goes', () => {
    const state = new MeshState('node-a', computedTraffic());
    state.update(viewOf([...services, route({ delay: 'p95' })]));
    const first = exchangeOf(state).hedging!.latency!;
    expect(first).toBeInstanceOf(LatencyQuantile);
    state.update(viewOf([...services, route({ delay: 'p95' }), route(undefined, 'zz')]));
    expect(exchangeOf(state).hedging!.latency).toBe(first);
    state.update(viewOf([...services, route(undefined)]));
    state.update(viewOf([...services, route({ delay: 'p95' })]));
    expect(exchangeOf(state).hedging!.latency).not.toBe(first);
  });
});
