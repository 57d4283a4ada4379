// Adaptive concurrency (Envoy's gradient controller) and QoS classes: the limit's step, its
// minRTT measurements, its course under rising and falling latency on a fake clock, a
// simulated upstream of fixed capacity at twice its load, the class decision, the per-service
// registry, the TrafficPolicy fields as `weft apply` takes or refuses them, and the retry
// decision on a shed answer.
import { describe, expect, it } from 'vitest';
import { validateResource } from '../../src/api/resources/index.js';
import type { TrafficPolicySpec } from '../../src/api/resources/traffic-policy.js';
import { isWeftError } from '../../src/errors.js';
import {
  admits,
  classOf,
  NO_QOS,
  type QosClass,
  type QosPolicy,
} from '../../src/proxy/resilience/adaptive-admission.js';
import { AdaptiveConcurrency, qosPolicy } from '../../src/proxy/resilience/adaptive-concurrency.js';
import {
  GradientLimit,
  type GradientOptions,
  nextLimit,
  percentileOf,
} from '../../src/proxy/resilience/adaptive-limit.js';
import { decideRetry } from '../../src/proxy/resilience/retry-decision.js';
import { compilePolicy } from '../../src/proxy/resilience/retry-policy.js';

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function validate(extra: Record<string, unknown>) {
  return validateResource({
    apiVersion: 'weft/v1',
    kind: 'TrafficPolicy',
    metadata: { name: 'tp' },
    spec: { targetRef: { name: 'orders' }, ...extra },
  });
}

function spec(extra: Record<string, unknown>): TrafficPolicySpec {
  const r = validate(extra);
  if (!r.ok) throw new Error(String(r.problems));
  return (r.resource as unknown as { spec: TrafficPolicySpec }).spec;
}

/** A fake monotonic clock and a fixed random source. */
function clock(start = 1_000) {
  const c = { t: start, now: () => c.t, random: () => 0.5 };
  return c;
}

function options(
  c: ReturnType<typeof clock>,
  more: Partial<GradientOptions> = {},
): GradientOptions {
  return {
    minConcurrency: 3,
    maxConcurrency: 1000,
    windowMs: 100,
    percentile: 50,
    minRttIntervalMs: 60_000,
    minRttRequests: 5,
    jitterPercent: 10,
    bufferPercent: 25,
    now: c.now,
    random: c.random,
    ...more,
  };
}

/** Requests that each take `ms`, started one after another and answered; the clock moves. */
function serve(limit: GradientLimit, c: ReturnType<typeof clock>, count: number, ms: number) {
  for (let i = 0; i < count; i++) {
    const a = limit.start();
    c.t += ms;
    limit.answered(a);
    limit.release();
  }
}

/**
 * One window in which `count` requests (default: as many as the limit admits) answered in
 * `ms` each, started together; then the window ends and the limit moves.
 */
function window(
  limit: GradientLimit,
  c: ReturnType<typeof clock>,
  count: number | 'full',
  ms: number,
) {
  if (count === 'full') count = limit.current();
  const started = Array.from({ length: count }, () => limit.start());
  c.t += ms;
  for (const a of started) {
    limit.answered(a);
    limit.release();
  }
  c.t += Math.max(0, 100 - ms);
  return limit.current(); // the window ends: the limit moves
}

describe('nextLimit: the gradient step (limit * gradient + sqrt, clamped)', () => {
  const o = { minConcurrency: 3, maxConcurrency: 1000, bufferPercent: 25 };
  it.each([
    // limit, minRTT, sample, next
    [100, 10, 12.5, 100 + 10], // at the buffer: gradient 1, the headroom alone
    [100, 10, 10, 100 + 10], // (12.5 / 10) = 1.25, capped at 1 (Gradient2; Envoy: 2)
    [100, 10, 1, 100 + 10], // however fast
    [100, 10, 20, 62.5 + 7.5], // 0.625: floor(62.5 + 7.9)
    [100, 10, 25, 50 + 7], // 0.5
    [100, 10, 1_000, 50 + 7], // never below half a step
    [3, 10, 100, 3], // the floor
    [990, 10, 5, 1000], // the ceiling
    [10, 10, 0, 10 + 3], // a zero sample: gradient 1
  ])('limit %d, minRTT %d ms, sample %d ms -> %d', (limit, minRtt, sample, next) => {
    expect(nextLimit(limit, minRtt, sample, o)).toBe(next);
  });

  it('percentileOf is nearest-rank', () => {
    expect(percentileOf([5, 1, 4, 2, 3], 50)).toBe(3);
    expect(percentileOf([5, 1, 4, 2, 3], 90)).toBe(5);
    expect(percentileOf([5, 1, 4, 2, 3], 1)).toBe(1);
    expect(percentileOf([7], 100)).toBe(7);
  });
});

describe('GradientLimit on a fake clock', () => {
  it('starts by measuring minRTT at minConcurrency, then grows while latency stays there', () => {
    const c = clock();
    const limit = new GradientLimit(options(c));
    expect(limit.measuring).toBe(true);
    expect(limit.current()).toBe(3);
    serve(limit, c, 5, 10);
    expect(limit.measuring).toBe(false);
    expect(limit.minRttMs).toBe(10);
    const seen = [3];
    for (let i = 0; i < 4; i++) seen.push(window(limit, c, 'full', 10));
    // 3 -> 3 + sqrt(3) = 4 -> 4 + 2 = 6 -> ...: up by the headroom, every window
    expect(seen).toEqual([3, 4, 6, 8, 10]);
  });

  it('does not grow while the load stays under half the limit (Gradient2: app limited)', () => {
    const c = clock();
    const limit = new GradientLimit(options(c));
    serve(limit, c, 5, 10);
    for (let i = 0; i < 3; i++) window(limit, c, 'full', 10);
    expect(limit.current()).toBe(8);
    for (let i = 0; i < 10; i++) expect(window(limit, c, 3, 10)).toBe(8);
    expect(window(limit, c, 4, 10)).toBe(10);
    // It still shrinks when latency says so, however light the load.
    expect(window(limit, c, 2, 40)).toBeLessThan(10);
  });

  it('converges down under rising latency, and recovers when it falls back', () => {
    const c = clock();
    const limit = new GradientLimit(options(c));
    serve(limit, c, 5, 10);
    for (let i = 0; i < 12; i++) window(limit, c, 'full', 10);
    const high = limit.current();
    expect(high).toBe(44);
    // Latency four times the unloaded one: the limit halves (plus headroom) every window.
    const down = [high];
    for (let i = 0; i < 4; i++) down.push(window(limit, c, 10, 40));
    expect(down).toEqual([44, 26, 16, 10, 7]);
    // Back to the unloaded latency: it grows again, every window.
    const up = [limit.current()];
    for (let i = 0; i < 8; i++) up.push(window(limit, c, 'full', 10));
    for (let i = 1; i < up.length; i++) expect(up[i]).toBeGreaterThan(up[i - 1]!);
    expect(up.at(-1)).toBeGreaterThan(30);
  });

  it('a window with no answer leaves the limit alone', () => {
    const c = clock();
    const limit = new GradientLimit(options(c));
    serve(limit, c, 5, 10);
    window(limit, c, 'full', 10);
    const before = limit.current();
    c.t += 1_000;
    expect(limit.current()).toBe(before);
  });

  it('measures minRTT again after interval plus jitter, pinned to minConcurrency meanwhile', () => {
    const c = clock();
    // random 0.5, jitter 10 % of 60 s: the next measurement starts 63 s after the first ended.
    const limit = new GradientLimit(options(c));
    serve(limit, c, 5, 10);
    const ended = c.t;
    for (let i = 0; i < 5; i++) window(limit, c, 'full', 10);
    const grown = limit.current();
    c.t = ended + 62_999;
    expect(limit.measuring).toBe(false);
    c.t = ended + 63_000;
    expect(limit.current()).toBe(3);
    expect(limit.measuring).toBe(true);
    // The app got slower: the new minRTT says so, and the limit comes back where it was.
    serve(limit, c, 5, 30);
    expect(limit.minRttMs).toBe(30);
    expect(limit.current()).toBe(grown);
  });

  it('a request admitted before a measurement does not count in it', () => {
    const c = clock();
    const limit = new GradientLimit(options(c, { minRttIntervalMs: 1_000, jitterPercent: 0 }));
    serve(limit, c, 5, 10);
    const old = limit.start(); // admitted in the steady phase, under load
    c.t += 1_000;
    expect(limit.current()).toBe(3); // measuring now
    c.t += 500;
    limit.answered(old); // 1.5 s: not an unloaded latency
    limit.release();
    serve(limit, c, 5, 12);
    expect(limit.minRttMs).toBe(12);
  });

  it('five windows in a row at the floor measure minRTT again (the app may have slowed)', () => {
    const c = clock();
    const limit = new GradientLimit(options(c));
    serve(limit, c, 5, 10);
    for (let i = 0; i < 4; i++) expect(window(limit, c, 3, 50)).toBe(3);
    expect(limit.measuring).toBe(false);
    window(limit, c, 3, 50);
    expect(limit.measuring).toBe(true);
  });

  it.each([
    [{ minConcurrency: 0 }, 'minConcurrency must be a whole number >= 1 (got 0)'],
    [{ maxConcurrency: 2 }, 'maxConcurrency must be >= minConcurrency'],
    [{ windowMs: 0 }, 'windowMs must be > 0'],
    [{ percentile: 0 }, 'percentile must be in (0, 100]'],
    [{ bufferPercent: 150 }, 'bufferPercent must be 0-100'],
    [{ minRttRequests: 1.5 }, 'minRttRequests must be a whole number >= 1 (got 1.5)'],
  ])('refuses bad options when built: %o', (bad, message) => {
    const c = clock();
    try {
      new GradientLimit(options(c, bad));
      expect.unreachable('built with bad options');
    } catch (err) {
      expect(isWeftError(err, 'WEFT_E_CONFIG')).toBe(true);
      expect((err as Error).message).toBe(`adaptive concurrency: ${message}`);
    }
  });
});

describe('QoS classes', () => {
  const qos: QosPolicy = {
    classes: new Map<string, QosClass>([
      ['checkout', 'critical'],
      ['reports', 'sheddable'],
    ]),
    standardPercent: 90,
    sheddablePercent: 50,
  };

  it('a class comes from the source service; any other source (and none) is standard', () => {
    expect(classOf('checkout', qos)).toBe('critical');
    expect(classOf('reports', qos)).toBe('sheddable');
    expect(classOf('frontend', qos)).toBe('standard');
    expect(classOf('unknown', qos)).toBe('standard');
    expect(classOf('checkout', NO_QOS)).toBe('standard');
  });

  it.each([
    // class, in flight (all, critical), limit, admitted
    ['critical', 19, 0, 20, true],
    ['critical', 30, 19, 20, true], // critical counts only against critical
    ['critical', 20, 20, 20, false],
    ['standard', 17, 0, 20, true],
    ['standard', 18, 0, 20, false], // 90 % of 20
    ['standard', 18, 18, 20, false], // critical ones held it too
    ['sheddable', 9, 0, 20, true],
    ['sheddable', 10, 0, 20, false], // half the limit
    ['sheddable', 1, 0, 3, true],
    ['sheddable', 2, 0, 3, false],
    ['standard', 0, 0, 1, true], // an idle service admits anyone
    ['sheddable', 0, 0, 1, true],
    ['sheddable', 1, 0, 1, false],
  ] as const)(
    '%s with %d in flight (%d critical) under a limit of %d: %s',
    (cls, all, critical, limit, ok) => {
      expect(admits(cls, { all, critical }, limit, qos)).toBe(ok);
    },
  );

  it('without qos, standard gets the whole limit', () => {
    expect(admits('standard', { all: 19, critical: 0 }, 20, NO_QOS)).toBe(true);
    expect(admits('standard', { all: 20, critical: 0 }, 20, NO_QOS)).toBe(false);
  });
});

/**
 * A discrete-event upstream: `capacity` requests at a time, each `serviceMs`, the rest queued
 * in order (what an app's accept queue does). For the first 2 s one request arrives every
 * 25 ms (unloaded: minRTT is measured then), then one every `gapMs`, each from a class in
 * turn; only the loaded phase is counted. Admission is the stage's own: classOf, admits and
 * the limit.
 */
function simulate(opts: {
  capacity: number;
  serviceMs: number;
  gapMs: number;
  durationMs: number;
  classes: QosClass[];
  limited: boolean;
}) {
  const c = clock(0);
  const limit = new GradientLimit(options(c, { minRttRequests: 20 }));
  const qos = qosPolicy({
    classes: { critical: ['c'], sheddable: ['s'] },
    limitPercent: { standard: 80, sheddable: 50 },
  });
  const source: Record<QosClass, string> = { critical: 'c', standard: 'x', sheddable: 's' };
  // Busy-until time of each slot of the upstream.
  const slots = Array.from({ length: opts.capacity }, () => 0);
  type Pending = {
    done: number;
    admitted: ReturnType<GradientLimit['start']>;
    cls: QosClass;
    counted: boolean;
  };
  const pending: Pending[] = [];
  const result = {
    latencies: [] as number[],
    sent: { critical: 0, standard: 0, sheddable: 0 },
    ok: { critical: 0, standard: 0, sheddable: 0 },
  };
  let n = 0;
  let criticalInFlight = 0;
  const unloadedMs = 2_000;
  for (let t = 0; t < unloadedMs + opts.durationMs; t += t < unloadedMs ? 25 : opts.gapMs) {
    const counted = t >= unloadedMs;
    // Answers due before this arrival, in time order.
    pending.sort((a, b) => a.done - b.done);
    while (pending.length > 0 && pending[0]!.done <= t) {
      const p = pending.shift()!;
      c.t = p.done;
      limit.answered(p.admitted);
      limit.release();
      if (p.cls === 'critical') criticalInFlight -= 1;
      if (!p.counted) continue;
      result.latencies.push(p.done - p.admitted.startedAt);
      result.ok[p.cls] += 1;
    }
    c.t = t;
    const cls = opts.classes[n++ % opts.classes.length]!;
    if (counted) result.sent[cls] += 1;
    const lim = limit.current();
    const inFlight = { all: limit.inFlight, critical: criticalInFlight };
    if (opts.limited && !admits(classOf(source[cls], qos), inFlight, lim, qos)) continue;
    if (cls === 'critical') criticalInFlight += 1;
    const admitted = limit.start();
    const slot = slots.indexOf(Math.min(...slots));
    const begin = Math.max(t, slots[slot]!);
    slots[slot] = begin + opts.serviceMs;
    pending.push({ done: slots[slot]!, admitted, cls, counted });
  }
  // Requests still being served when the arrivals stop are answered too.
  for (const p of pending) {
    if (!p.counted) continue;
    result.latencies.push(p.done - p.admitted.startedAt);
    result.ok[p.cls] += 1;
  }
  return result;
}

describe('a simulated upstream of fixed capacity at twice its load', () => {
  // 10 at a time, 20 ms each: 500 requests/s. One arrives every 1 ms: 1,000/s.
  const base = { capacity: 10, serviceMs: 20, gapMs: 1, durationMs: 20_000 };
  const classes: QosClass[] = ['critical', 'standard', 'sheddable', 'sheddable'];

  it('admitted requests keep near the unloaded latency; critical ones all pass, sheddable ones are shed first', () => {
    const r = simulate({ ...base, classes, limited: true });
    const p99 = percentileOf(r.latencies.slice(), 99);
    expect(p99).toBeLessThanOrEqual(3 * base.serviceMs);
    expect(r.ok.critical / r.sent.critical).toBeGreaterThanOrEqual(0.99);
    expect(r.ok.sheddable / r.sent.sheddable).toBeLessThan(r.ok.standard / r.sent.standard);
    // Goodput stays near the capacity: shedding does not starve the upstream.
    const perSecond = (r.ok.critical + r.ok.standard + r.ok.sheddable) / (base.durationMs / 1000);
    expect(perSecond).toBeGreaterThan(0.9 * 500);
  });

  it('without the limit, the queue grows without bound (the latency the limit prevents)', () => {
    const r = simulate({ ...base, classes, limited: false });
    expect(percentileOf(r.latencies.slice(), 99)).toBeGreaterThan(100 * base.serviceMs);
  });
});

describe('AdaptiveConcurrency: per local service', () => {
  const withLimit = spec({
    adaptiveConcurrency: { minRtt: { requests: 2 } },
    qos: { classes: { critical: ['checkout'], sheddable: ['reports'] } },
  });

  it('does nothing for a service whose policy sets no adaptiveConcurrency', () => {
    const ac = new AdaptiveConcurrency();
    expect(ac.admit('orders', undefined, 'frontend')).toBeUndefined();
    expect(ac.admit('orders', spec({ timeouts: { request: '1s' } }), 'frontend')).toBeUndefined();
  });

  it('sheds over the limit with a reason naming the class, and frees the slot on release', () => {
    const c = clock();
    const ac = new AdaptiveConcurrency({ now: c.now, random: c.random });
    // Measuring at first: the limit is minConcurrency (3); sheddable below 50 % of it.
    const a = ac.admit('orders', withLimit, 'reports');
    expect(a?.kind).toBe('admit');
    expect(ac.admit('orders', withLimit, 'reports')?.kind).toBe('admit');
    const shed = ac.admit('orders', withLimit, 'reports');
    expect(shed).toMatchObject({ kind: 'shed', qosClass: 'sheddable', limit: 3 });
    expect(shed?.kind === 'shed' && shed.detail).toBe(
      'orders is overloaded: 2 requests in flight, limit 3 while its unloaded latency is measured (sheddable request shed)',
    );
    // Standard: below 80 % of 3; critical: while fewer than 3 critical ones are in flight.
    expect(ac.admit('orders', withLimit, 'frontend')?.kind).toBe('admit');
    expect(ac.admit('orders', withLimit, 'frontend')?.kind).toBe('shed');
    const critical = [1, 2, 3].map(() => ac.admit('orders', withLimit, 'checkout'));
    expect(critical.map((d) => d?.kind)).toEqual(['admit', 'admit', 'admit']);
    expect(ac.admit('orders', withLimit, 'checkout')?.kind).toBe('shed');
    if (a?.kind !== 'admit') throw new Error('admitted above');
    a.ticket.release();
    a.ticket.release(); // twice is once
    expect(ac.admit('orders', withLimit, 'checkout')?.kind).toBe('shed');
    const c0 = critical[0];
    if (c0?.kind !== 'admit') throw new Error('admitted above');
    c0.ticket.release();
    expect(ac.admit('orders', withLimit, 'checkout')?.kind).toBe('admit');
  });

  it('keeps the limit across snapshots with the same settings, and when only qos changes', () => {
    const ac = new AdaptiveConcurrency();
    const first = ac.forService('orders', withLimit)!;
    const same = spec({
      adaptiveConcurrency: { minRtt: { requests: 2 } },
      qos: { classes: { critical: ['checkout'], sheddable: ['reports'] } },
    });
    expect(ac.forService('orders', same)).toBe(first);
    const qosOnly = spec({
      adaptiveConcurrency: { minRtt: { requests: 2 } },
      qos: { classes: { critical: ['checkout'] } },
    });
    const second = ac.forService('orders', qosOnly)!;
    expect(second.limit).toBe(first.limit);
    expect(classOf('reports', second.qos)).toBe('standard');
    const other = ac.forService('orders', spec({ adaptiveConcurrency: { minConcurrency: 5 } }))!;
    expect(other.limit).not.toBe(first.limit);
    expect(other.limit.current()).toBe(5);
  });
});

describe('TrafficPolicy adaptiveConcurrency and qos as `weft apply` takes them', () => {
  it('fills in the defaults (Envoy gradient controller defaults)', () => {
    const s = spec({ adaptiveConcurrency: {}, qos: { classes: { sheddable: ['batch'] } } });
    expect(s.adaptiveConcurrency).toEqual({
      minConcurrency: 3,
      maxConcurrency: 1000,
      sampleWindow: '100ms',
      samplePercentile: 50,
      minRtt: { interval: '60s', requests: 50, jitterPercent: 10, bufferPercent: 25 },
    });
    expect(s.qos?.limitPercent).toEqual({ standard: 80, sheddable: 50 });
  });

  it.each([
    // A Mesh policy inherits nothing (a Service's qos may rely on the Mesh's
    // adaptiveConcurrency: checked on the merged policy, traffic-policy-scopes.test.ts).
    [
      { targetRef: { kind: 'Mesh' }, qos: { classes: { critical: ['a'] } } },
      "spec.qos: classes act only on adaptiveConcurrency's limit: set adaptiveConcurrency too (here or in the Mesh's policy), or remove qos",
    ],
    [
      { adaptiveConcurrency: { minConcurrency: 10, maxConcurrency: 5 } },
      'spec.adaptiveConcurrency.maxConcurrency: must be at least minConcurrency (10)',
    ],
    [
      { adaptiveConcurrency: { sampleWindow: '2m' } },
      'spec.adaptiveConcurrency.sampleWindow: must be more than 0 and at most 1m',
    ],
    [
      { adaptiveConcurrency: { minRtt: { interval: '2d' } } },
      'spec.adaptiveConcurrency.minRtt.interval: must be more than 0 and at most 24h',
    ],
    [
      { adaptiveConcurrency: { samplePercentile: 0 } },
      'spec.adaptiveConcurrency.samplePercentile: must be 1-100',
    ],
    [{ adaptiveConcurrency: { limit: 5 } }, 'spec.adaptiveConcurrency.limit: unknown field'],
    [
      {
        adaptiveConcurrency: {},
        qos: { classes: { critical: ['a', 'b'], sheddable: ['b'] } },
      },
      'spec.qos.classes.sheddable[0]: b is also listed as critical: a service has one class',
    ],
    [
      {
        adaptiveConcurrency: {},
        qos: { classes: {}, limitPercent: { standard: 40, sheddable: 60 } },
      },
      'spec.qos.limitPercent.sheddable: must be at most limitPercent.standard (40): sheddable requests are shed first',
    ],
    [
      { adaptiveConcurrency: {}, qos: { classes: { critical: ['Not_A_Service'] } } },
      'spec.qos.classes.critical[0]: must be a DNS label',
    ],
    [
      { adaptiveConcurrency: {}, qos: { classes: {}, header: 'x-priority' } },
      'spec.qos.header: unknown field',
    ],
  ])('refuses %o', (extra, problem) => {
    const r = validate(extra);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems).toContainEqual(expect.stringMatching(`^${escapeRegExp(problem)}`));
  });
});

describe('retries of a shed answer', () => {
  it('are never made, whatever `on` lists (retries would load an overloaded service)', () => {
    const policy = compilePolicy(spec({ retries: { attempts: 3, on: ['5xx', 'gateway-error'] } }))!
      .retry!;
    const shed = { kind: 'response' as const, status: 503, grpcStatus: undefined };
    const input = { policy, tries: 1, failovers: 0, resendable: true, failoverTries: 3 };
    expect(decideRetry({ ...input, outcome: shed }).kind).toBe('retry');
    expect(decideRetry({ ...input, outcome: { ...shed, overloaded: true } })).toEqual({
      kind: 'final',
      why: 'not_retryable',
    });
    const grpcShed = { kind: 'response' as const, status: 200, grpcStatus: 14, overloaded: true };
    const grpcPolicy = compilePolicy(
      spec({ retries: { attempts: 3, retriableGrpcStatusCodes: [14] } }),
    )!.retry!;
    expect(decideRetry({ ...input, policy: grpcPolicy, outcome: grpcShed }).kind).toBe('final');
  });
});
