// Who may see the dashboard: one-time login tokens (made through the Admin API, so only an
// admin certificate can make one: `weft dashboard`) are exchanged for a session cookie. Both
// live in this replica's memory only: a login link names the replica that made it, and a
// restart logs everyone out, which is the safe way to fail. Only hashes are kept, so a heap
// dump of the control plane gives no usable token or session.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export interface DashboardAuthOptions {
  /** How long a login token may wait to be used. */
  loginTtlMs: number;
  /** A session ends this long after its last request... */
  sessionIdleMs: number;
  /** ...and at the latest this long after login. */
  sessionMaxMs: number;
  now?: () => number;
}

export const DEFAULT_DASHBOARD_AUTH: DashboardAuthOptions = {
  loginTtlMs: 5 * 60_000,
  sessionIdleMs: 30 * 60_000,
  sessionMaxMs: 12 * 3_600_000,
};

/** Outstanding logins and sessions are bounded: a flood of `weft dashboard` costs no memory. */
const MAX_PENDING_LOGINS = 64;
const MAX_SESSIONS = 256;

export interface DashboardSession {
  /** The cookie value: shown once, at login. */
  id: string;
  /** Sent by the page with every write (the double-submit defence against CSRF). */
  csrf: string;
  expiresAtMs: number;
}

interface SessionRecord {
  csrf: string;
  createdAtMs: number;
  lastUsedAtMs: number;
}

function secret(): string {
  return randomBytes(32).toString('base64url');
}

function digest(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/** Equal strings, in time that does not tell how much of them matched. */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class DashboardAuth {
  private readonly logins = new Map<string, number>(); // digest -> expiry
  private readonly sessions = new Map<string, SessionRecord>(); // digest -> record
  private readonly now: () => number;

  constructor(private readonly options: DashboardAuthOptions = DEFAULT_DASHBOARD_AUTH) {
    this.now = options.now ?? Date.now;
  }

  /** A new one-time login token and when it stops working. */
  issueLogin(): { token: string; expiresAtMs: number } {
    const now = this.now();
    this.sweep(now);
    if (this.logins.size >= MAX_PENDING_LOGINS) {
      // The oldest unused link goes: the newest is the one someone is about to open.
      const oldest = this.logins.keys().next().value;
      if (oldest !== undefined) this.logins.delete(oldest);
    }
    const token = secret();
    const expiresAtMs = now + this.options.loginTtlMs;
    this.logins.set(digest(token), expiresAtMs);
    return { token, expiresAtMs };
  }

  /** The token's session, once; undefined for an unknown, used or expired token. */
  redeemLogin(token: string): DashboardSession | undefined {
    const now = this.now();
    const key = digest(token);
    const expiresAtMs = this.logins.get(key);
    if (expiresAtMs === undefined) return undefined;
    this.logins.delete(key);
    if (expiresAtMs <= now) return undefined;
    this.sweep(now);
    if (this.sessions.size >= MAX_SESSIONS) {
      const oldest = this.sessions.keys().next().value;
      if (oldest !== undefined) this.sessions.delete(oldest);
    }
    const id = secret();
    const record = { csrf: secret(), createdAtMs: now, lastUsedAtMs: now };
    this.sessions.set(digest(id), record);
    return { id, csrf: record.csrf, expiresAtMs: this.expiryOf(record) };
  }

  /** The live session a cookie names (its idle time restarts), or undefined. */
  session(id: string | undefined): DashboardSession | undefined {
    if (id === undefined || id === '') return undefined;
    const now = this.now();
    const key = digest(id);
    const record = this.sessions.get(key);
    if (record === undefined) return undefined;
    if (this.expiryOf(record) <= now) {
      this.sessions.delete(key);
      return undefined;
    }
    record.lastUsedAtMs = now;
    return { id, csrf: record.csrf, expiresAtMs: this.expiryOf(record) };
  }

  logout(id: string): void {
    this.sessions.delete(digest(id));
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  private expiryOf(record: SessionRecord): number {
    return Math.min(
      record.lastUsedAtMs + this.options.sessionIdleMs,
      record.createdAtMs + this.options.sessionMaxMs,
    );
  }

  private sweep(now: number): void {
    for (const [key, expiresAtMs] of this.logins) if (expiresAtMs <= now) this.logins.delete(key);
    for (const [key, record] of this.sessions)
      if (this.expiryOf(record) <= now) this.sessions.delete(key);
  }
}
