// Outlier detection (TrafficPolicy.outlierDetection) as pure decisions and as the pool applies
// them, with a fake clock: consecutive failures eject for n x baseEjectionTime, capped; each
// interval back in service takes one ejection off; maxEjectionPercent (Envoy's rule) and the
// last usable endpoint keep enough endpoints; a half-open endpoint gets exactly one probe.
import { describe, expect, it } from 'vitest';
import { EndpointPool } from '../../src/proxy/balance/endpoint-pool.js';
import {
  DEFAULT_OUTLIER_DETECTION,
  decayedEjections,
  ejectionMs,
  mayEject,
  outlierDetectionOf,
} from '../../src/proxy/balance/outlier.js';
import { ep, outlier } from '../helpers/balance.js';

describe('the settings', () => {
  it("without a policy: the schema's defaults (Envoy's)", () => {
    expect(DEFAULT_OUTLIER_DETECTION).toEqual({
      consecutiveFailures: 5,
      intervalMs: 10_000,
      baseEjectionMs: 30_000,
      maxEjectionMs: 300_000,
      maxEjectionPercent: 10,
    });
  });

  it('from a policy; the cap is 300 s, or the base when longer', () => {
    expect(
      outlierDetectionOf({
        consecutiveFailures: 2,
        interval: '1s',
        baseEjectionTime: '10m',
        maxEjectionPercent: 50,
      }),
    ).toEqual({
      consecutiveFailures: 2,
      intervalMs: 1_000,
      baseEjectionMs: 600_000,
      maxEjectionMs: 600_000,
      maxEjectionPercent: 50,
    });
  });
});

describe('decisions', () => {
  const o = { ...DEFAULT_OUTLIER_DETECTION };
  it.each([
    [1, 30_000],
    [2, 60_000],
    [3, 90_000],
    [10, 300_000],
    [50, 300_000],
  ])('ejection %i lasts %i ms (n x base, capped)', (n, ms) => {
    expect(ejectionMs(o, n)).toBe(ms);
  });

  it.each([
    // size, ejected, usable, percent, may eject?
    [3, 0, 3, 10, true], // Envoy: under 10 % ejected, so one may go even of 3
    [3, 1, 2, 10, false], // 33 % out already
    [10, 0, 10, 10, true],
    [10, 1, 9, 10, false],
    [20, 1, 19, 10, true], // 5 % out: a second of 20 may go
    [4, 1, 3, 50, true],
    [4, 2, 2, 50, false],
    [5, 0, 5, 0, false], // 0 %: never
    [2, 0, 2, 100, true],
    [2, 1, 1, 100, false], // the last usable endpoint stays
    [1, 0, 1, 100, false],
    [3, 0, 1, 100, false], // two unhealthy: the one left stays
  ])(
    '%i endpoints, %i ejected, %i usable, max %i %%: %s',
    (size, ejected, usable, percent, may) => {
      expect(mayEject({ ...o, maxEjectionPercent: percent }, { size, ejected, usable })).toBe(may);
    },
  );

  it.each([
    [0, 50_000, 0],
    [3, 9_999, 3], // under one interval back in service: unchanged
    [3, 10_000, 2],
    [3, 25_000, 1],
    [3, 120_000, 0],
  ])('%i ejections, %i ms back in service: %i', (n, ms, left) => {
    expect(decayedEjections(o, n, ms)).toBe(left);
  });
});

describe('the pool', () => {
  function pool(settings = outlier(), n = 3) {
    const clock = { now: 0 };
    const p = new EndpointPool('echo', 'roundRobin', settings, () => clock.now);
    p.update(Array.from({ length: n }, (_, i) => ep(`e${i}`)));
    const state = (key: string) => p.find((s) => s.key === key)!;
    const keys = (count: number) => Array.from({ length: count }, () => p.pick()?.key);
    return { p, clock, state, keys };
  }

  it('ejects after consecutiveFailures in a row; a success in between starts the count again', () => {
    const { p, clock, state } = pool(outlier({ consecutiveFailures: 3 }));
    const a = state('e0');
    expect([a.failed(0), a.failed(0)]).toEqual([false, false]);
    a.succeeded();
    expect([a.failed(0), a.failed(0), a.failed(0)]).toEqual([false, false, true]);
    expect(p.counts().ejected).toBe(1);
    clock.now = 999;
    expect(p.pick(new Set([state('e1'), state('e2')]))).toBeUndefined();
  });

  it('grows the ejection with repeated ejections: base, 2 x base, 3 x base; back after each probe', () => {
    const { clock, state, keys } = pool(outlier({ baseEjectionMs: 1_000, maxEjectionMs: 300_000 }));
    const a = state('e0');
    const ejectAndProbeBack = (at: number, length: number) => {
      clock.now = at;
      expect(a.failed(at)).toBe(true);
      clock.now = at + length - 1;
      expect(keys(6)).not.toContain('e0');
      clock.now = at + length;
      expect(keys(6).filter((k) => k === 'e0')).toEqual(['e0']); // exactly one probe
      a.succeeded();
      expect(keys(3)).toContain('e0');
    };
    ejectAndProbeBack(0, 1_000);
    ejectAndProbeBack(5_000, 2_000);
    ejectAndProbeBack(10_000, 3_000);
  });

  it('a failed probe ejects it again, longer; a late failure of an earlier request does not', () => {
    const { clock, state, keys } = pool();
    const a = state('e0');
    expect(a.failed(0)).toBe(true); // out for 1 s
    expect(a.failed(0)).toBe(false); // a request sent before the ejection fails late: no change
    clock.now = 1_000;
    expect(keys(6).filter((k) => k === 'e0')).toEqual(['e0']);
    expect(a.failed(1_000)).toBe(true); // the probe failed: out for 2 x 1 s
    clock.now = 2_999;
    expect(keys(6)).not.toContain('e0');
    clock.now = 3_000;
    expect(keys(6).filter((k) => k === 'e0')).toEqual(['e0']);
  });

  it('a late success of an earlier request does not bring an ejected endpoint back', () => {
    const { clock, state, keys } = pool();
    const a = state('e0');
    a.failed(0);
    a.succeeded();
    clock.now = 500;
    expect(keys(6)).not.toContain('e0');
  });

  it('interval: each interval back in service takes one ejection off the next one', () => {
    const { clock, state, keys } = pool(outlier({ intervalMs: 10_000 }));
    const a = state('e0');
    const ejectFor = (at: number): number => {
      clock.now = at;
      a.failed(at);
      let t = at;
      while (!keys(3).includes('e0')) t = clock.now += 100; // its probe
      a.succeeded();
      return t - at;
    };
    expect(ejectFor(0)).toBe(1_000);
    expect(ejectFor(2_000)).toBe(2_000); // back for under an interval: ejection 2
    expect(ejectFor(5_000)).toBe(3_000); // ejection 3
    expect(ejectFor(8_000 + 25_000)).toBe(2_000); // back for 2 intervals: 3 - 2 + 1
  });

  it('maxEjectionPercent keeps enough endpoints: 10 % of 3 ejects one, never a second', () => {
    const { p, state } = pool(outlier({ maxEjectionPercent: 10 }));
    expect(state('e0').failed(0)).toBe(true);
    expect(state('e1').failed(0)).toBe(false);
    expect(state('e1').failed(0)).toBe(false);
    expect(p.counts()).toEqual({ healthy: 2, unhealthy: 0, ejected: 1 });
  });

  it('maxEjectionPercent 50 of 4: two go; 0: none', () => {
    const half = pool(outlier({ maxEjectionPercent: 50 }), 4);
    expect(['e0', 'e1', 'e2'].map((k) => half.state(k).failed(0))).toEqual([true, true, false]);
    const none = pool(outlier({ maxEjectionPercent: 0 }), 4);
    expect(none.state('e0').failed(0)).toBe(false);
    expect(none.p.counts().ejected).toBe(0);
  });

  it('never ejects the last usable endpoint, even at 100 %', () => {
    const { p, state, keys } = pool(outlier({ maxEjectionPercent: 100 }), 2);
    expect(state('e0').failed(0)).toBe(true);
    expect(state('e1').failed(0)).toBe(false);
    expect(keys(3)).toEqual(['e1', 'e1', 'e1']);
    p.update([ep('e0'), ep('e1', { health: 'unhealthy' }), ep('e2')]);
    expect(state('e2').failed(0)).toBe(false); // e0 ejected, e1 unhealthy: e2 is the last
  });

  it('takes a new policy on update, keeping ejections', () => {
    const { p, state } = pool(outlier({ consecutiveFailures: 1 }));
    expect(state('e0').failed(0)).toBe(true);
    p.update([ep('e0'), ep('e1'), ep('e2')], undefined, outlier({ consecutiveFailures: 2 }));
    expect(p.counts().ejected).toBe(1);
    expect(state('e1').failed(0)).toBe(false);
    expect(state('e1').failed(0)).toBe(true);
  });
});
