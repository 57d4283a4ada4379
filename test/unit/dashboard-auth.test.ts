// The dashboard's login tokens and sessions: one use per token, expiry by idle time and by
// age, nothing kept in clear, and bounded however many are made.
import { describe, expect, it } from 'vitest';
import { DashboardAuth, sameSecret } from '../../src/controlplane/dashboard/dashboard-auth.js';

function clockedAuth() {
  const clock = { now: 1_000_000 };
  const auth = new DashboardAuth({
    loginTtlMs: 5 * 60_000,
    sessionIdleMs: 30 * 60_000,
    sessionMaxMs: 12 * 3_600_000,
    now: () => clock.now,
  });
  return { auth, clock };
}

describe('dashboard login tokens', () => {
  it('work once', () => {
    const { auth } = clockedAuth();
    const { token } = auth.issueLogin();
    const session = auth.redeemLogin(token);
    expect(session?.id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(auth.redeemLogin(token)).toBeUndefined();
  });

  it('stop working after their time', () => {
    const { auth, clock } = clockedAuth();
    const { token, expiresAtMs } = auth.issueLogin();
    clock.now = expiresAtMs;
    expect(auth.redeemLogin(token)).toBeUndefined();
  });

  it.each([
    ['empty', ''],
    ['unknown', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'],
    ['a session id', 'session'],
  ])('refuse a token that was never issued (%s)', (_name, token) => {
    const { auth } = clockedAuth();
    auth.issueLogin();
    const id = auth.redeemLogin(auth.issueLogin().token)?.id ?? '';
    expect(auth.redeemLogin(token === 'session' ? id : token)).toBeUndefined();
  });

  it('are bounded: the oldest unused one goes first', () => {
    const { auth } = clockedAuth();
    const first = auth.issueLogin().token;
    const rest = Array.from({ length: 64 }, () => auth.issueLogin().token);
    expect(auth.redeemLogin(first)).toBeUndefined();
    expect(auth.redeemLogin(rest[63] as string)).toBeDefined();
    expect(auth.redeemLogin(rest[1] as string)).toBeDefined();
  });

  it('keep no token or session id in clear', () => {
    const { auth } = clockedAuth();
    const { token } = auth.issueLogin();
    const pending = JSON.stringify([
      ...(auth as unknown as { logins: Map<string, number> }).logins,
    ]);
    expect(pending).not.toContain(token);
    const session = auth.redeemLogin(auth.issueLogin().token);
    const sessions = JSON.stringify([
      ...(auth as unknown as { sessions: Map<string, unknown> }).sessions.keys(),
    ]);
    expect(sessions).not.toContain(session?.id);
  });
});

describe('dashboard sessions', () => {
  it('are found by their cookie and carry a CSRF token of their own', () => {
    const { auth } = clockedAuth();
    const a = auth.redeemLogin(auth.issueLogin().token);
    const b = auth.redeemLogin(auth.issueLogin().token);
    expect(auth.session(a?.id)?.csrf).toBe(a?.csrf);
    expect(a?.csrf).not.toBe(b?.csrf);
    expect(auth.session(undefined)).toBeUndefined();
    expect(auth.session('')).toBeUndefined();
    expect(auth.session(a?.csrf)).toBeUndefined();
  });

  it('end after 30 idle minutes, and each use restarts the idle time', () => {
    const { auth, clock } = clockedAuth();
    const id = auth.redeemLogin(auth.issueLogin().token)?.id;
    clock.now += 29 * 60_000;
    expect(auth.session(id)).toBeDefined();
    clock.now += 29 * 60_000;
    expect(auth.session(id)).toBeDefined();
    clock.now += 30 * 60_000;
    expect(auth.session(id)).toBeUndefined();
  });

  it('end 12 hours after login however busy', () => {
    const { auth, clock } = clockedAuth();
    const id = auth.redeemLogin(auth.issueLogin().token)?.id;
    for (let minutes = 0; minutes < 12 * 60 - 20; minutes += 20) {
      clock.now += 20 * 60_000;
      expect(auth.session(id)).toBeDefined();
    }
    clock.now += 20 * 60_000;
    expect(auth.session(id)).toBeUndefined();
  });

  it('end at logout', () => {
    const { auth } = clockedAuth();
    const id = auth.redeemLogin(auth.issueLogin().token)?.id as string;
    auth.logout(id);
    expect(auth.session(id)).toBeUndefined();
    expect(auth.sessionCount).toBe(0);
  });

  it('are bounded', () => {
    const { auth } = clockedAuth();
    for (let i = 0; i < 300; i++) auth.redeemLogin(auth.issueLogin().token);
    expect(auth.sessionCount).toBe(256);
  });
});

describe('sameSecret', () => {
  it.each([
    ['abc', 'abc', true],
    ['abc', 'abd', false],
    ['abc', 'abcd', false],
    ['', '', true],
  ])('%s vs %s -> %s', (a, b, same) => {
    expect(sameSecret(a, b)).toBe(same);
  });
});
