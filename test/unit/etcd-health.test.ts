// When a replica counts etcd as unreachable, and as back: the step function over probe results
// (down after `downAfter` failed probes in a row, up at the first answer), and the monitor's
// message and listeners driven by it.
import { describe, expect, it } from 'vitest';
import {
  EtcdHealth,
  type EtcdHealthState,
  type EtcdProbeResult,
  etcdHealthStep,
  INITIAL_ETCD_HEALTH,
} from '../../src/controlplane/store/etcd-health.js';

const ok: EtcdProbeResult = { ok: true };
const fail = (error = 'deadline exceeded'): EtcdProbeResult => ({ ok: false, error });

/** Runs probes through the step function; returns the changes seen and the final state. */
function run(probes: EtcdProbeResult[], downAfter = 2) {
  let state: EtcdHealthState = INITIAL_ETCD_HEALTH;
  const changes: Array<string | undefined> = [];
  probes.forEach((probe, i) => {
    const step = etcdHealthStep(state, probe, 1_000 * (i + 1), downAfter);
    state = step.state;
    changes.push(step.change);
  });
  return { state, changes };
}

describe('etcd health from probes', () => {
  it.each([
    ['every probe answered', [ok, ok, ok], [undefined, undefined, undefined], false],
    ['one lost probe is not an outage', [ok, fail(), ok], [undefined, undefined, undefined], false],
    ['two failed in a row: down', [fail(), fail()], [undefined, 'down'], true],
    [
      'down once, however long it lasts',
      [fail(), fail(), fail(), fail()],
      [undefined, 'down', undefined, undefined],
      true,
    ],
    ['up at the first answer', [fail(), fail(), ok], [undefined, 'down', 'up'], false],
    [
      'failures between answers do not add up',
      [fail(), ok, fail(), ok],
      [undefined, undefined, undefined, undefined],
      false,
    ],
    [
      'down again after it came back',
      [fail(), fail(), ok, fail(), fail()],
      [undefined, 'down', 'up', undefined, 'down'],
      true,
    ],
  ])('%s', (_name, probes, changes, down) => {
    const result = run(probes as EtcdProbeResult[]);
    expect(result.changes).toEqual(changes);
    expect(result.state.problem !== undefined).toBe(down);
  });

  it('keeps the first failure as the reason and its time as the start', () => {
    const { state } = run([fail('connect ECONNREFUSED'), fail('no leader'), fail('timeout')]);
    expect(state).toMatchObject({
      problem: 'connect ECONNREFUSED',
      sinceUnixMs: 1_000,
      failures: 3,
    });
  });

  it('honours downAfter', () => {
    expect(run([fail(), fail()], 3).changes).toEqual([undefined, undefined]);
    expect(run([fail()], 1).changes).toEqual(['down']);
  });
});

describe('the etcd health monitor', () => {
  it('names etcd, why and since when, and tells its listeners of each change once', () => {
    let now = Date.parse('2026-11-28T16:00:00Z');
    const health = new EtcdHealth({ probe: async () => {}, now: () => now });
    const heard: Array<string | undefined> = [];
    health.onChange((p) => heard.push(p));
    expect(health.problem()).toBeUndefined();
    health.note(fail('14 UNAVAILABLE: No connection established'));
    now += 1_000;
    health.note(fail('14 UNAVAILABLE: No connection established'));
    // Two slow or lost reads are not an outage (by default three in a row are).
    expect(health.problem()).toBeUndefined();
    expect(heard).toEqual([]);
    health.note(fail('14 UNAVAILABLE: No connection established'));
    const problem =
      'etcd unreachable since 2026-11-28T16:00:00.000Z: 14 UNAVAILABLE: No connection established';
    expect(health.problem()).toBe(problem);
    health.note(ok);
    expect(health.problem()).toBeUndefined();
    expect(heard).toEqual([problem, undefined]);
    health.stop();
  });
});
