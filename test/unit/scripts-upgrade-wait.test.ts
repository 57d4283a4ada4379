// install.sh's wait for an agent upgrade (scripts/systemd/upgrade-wait.mjs): when the agent
// runs the new code, and when the upgrade did not take and why, from the admin's /workers.
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script of install.sh's, without types
import { upgradeState } from '../../scripts/systemd/upgrade-wait.mjs';

const worker = (generation: number, state: string, build: string) => ({
  pid: 100 + generation,
  generation,
  state,
  connections: 0,
  build,
});
const master = (execs: number, build: string, lastUpgrade?: object) => ({
  pid: 7,
  version: '0.1.0',
  build,
  execs,
  startedAt: `2026-11-28T22:0${execs}:00Z`,
  ...(lastUpgrade ? { lastUpgrade } : {}),
});
const before = { master: master(0, 'old'), workers: [worker(1, 'serving', 'old')] };
const refusal = { at: '2026-11-28T22:05:00Z', outcome: 'refused', reason: 'cannot change capture' };

describe("install.sh's wait for an agent upgrade", () => {
  it.each([
    { what: 'the admin does not answer (the master execs)', now: undefined, state: 'waiting' },
    { what: 'the old master still runs', now: before, state: 'waiting' },
    {
      what: 'the new master runs, its workers still start',
      now: {
        master: master(1, 'new'),
        workers: [worker(1, 'serving', 'old'), worker(2, 'starting', '')],
      },
      state: 'waiting',
    },
    {
      what: 'the new master and its workers run the new build',
      now: {
        master: master(1, 'new'),
        workers: [worker(1, 'retiring', 'old'), worker(2, 'serving', 'new')],
      },
      state: 'done',
      says: /master pid 7 and 1 worker\(s\) run build new/,
    },
    {
      what: 'the master refused the upgrade',
      now: { master: master(0, 'old', refusal), workers: before.workers },
      state: 'failed',
      says: /upgrade refused: cannot change capture/,
    },
    {
      what: 'the new master could not start its workers',
      now: {
        master: master(1, 'new', { ...refusal, outcome: 'failed', reason: 'workers died' }),
        workers: [worker(1, 'serving', 'old')],
      },
      state: 'failed',
      says: /upgrade failed: workers died/,
    },
    {
      what: "the master exec'd into other code than was installed",
      now: { master: master(1, 'other'), workers: [worker(2, 'serving', 'other')] },
      state: 'failed',
      says: /runs build other, not the installed new/,
    },
  ])('$what: $state', ({ now, state, says }) => {
    const r = upgradeState(before, now, 'new');
    expect(r.state).toBe(state);
    if (says) expect(r.detail ?? r.reason).toMatch(says);
  });

  it('a new master image that died (systemd restarted the agent) is a failure, once known', () => {
    const restarted = { ...master(0, 'new'), pid: 8 };
    expect(
      upgradeState(before, { master: restarted, workers: [worker(1, 'starting', '')] }, 'new')
        .state,
    ).toBe('waiting');
    expect(
      upgradeState(before, { master: restarted, workers: [worker(1, 'serving', 'new')] }, 'new'),
    ).toMatchObject({
      state: 'failed',
      keepCode: true,
      reason: expect.stringMatching(/restarted \(pid 7 -> 8\), not upgraded in place/),
    });
  });

  it("a refusal already there before the upgrade is not this upgrade's", () => {
    const earlier = { ...before, master: master(0, 'old', refusal) };
    expect(upgradeState(earlier, earlier, 'new').state).toBe('waiting');
  });

  it('an agent from before master re-exec (reloaded): a newer generation serving is enough', () => {
    const old = { workers: [worker(3, 'serving', '')] };
    expect(upgradeState(old, old, 'new').state).toBe('waiting');
    const now = { workers: [worker(3, 'retiring', ''), worker(4, 'serving', '')] };
    expect(upgradeState(old, now, 'new')).toMatchObject({
      state: 'done',
      detail: expect.stringMatching(/systemctl restart/),
    });
  });
});
