// The users lab processes run as (the agent's `weft`, applications' `weftapp`, ...):
// looked up through NSS, created as system users when asked, and entered with setpriv.
import { WeftError } from '../errors.js';
import { run } from '../sys/run.js';
import { lookupUser, type UserInfo } from '../sys/users.js';

export { lookupUser, type UserInfo };

export function requireUser(name: string): UserInfo {
  const info = lookupUser(name);
  if (!info) {
    throw new WeftError(
      'WEFT_E_LAB',
      `user "${name}" does not exist; create it with \`useradd --system ${name}\` (ensureUser() in code)`,
    );
  }
  return info;
}

/**
 * Creates `name` as a system user without home or login shell when it is missing. Safe
 * against a concurrent creator: useradd losing that race (or the lock on /etc/passwd) is
 * retried and then judged by whether the user exists.
 */
export async function ensureUser(name: string): Promise<UserInfo> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const existing = lookupUser(name);
    if (existing) return existing;
    const r = await run(
      'useradd',
      [
        '--system',
        '--no-create-home',
        '--home-dir',
        '/nonexistent',
        '--shell',
        '/usr/sbin/nologin',
        name,
      ],
      { allowFailure: true },
    );
    if (r.exitCode === 0) continue;
    // 9: name already in use (someone else made it); 10: /etc/passwd locked: try again.
    if (r.exitCode !== 9 && r.exitCode !== 10) {
      throw new WeftError('WEFT_E_LAB', `could not create user ${name}: ${r.stderr.trim()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50 * (attempt + 1)));
  }
  return requireUser(name);
}

/** Capabilities a lab process may keep as another user (as systemd's AmbientCapabilities=). */
export type LabCapability = 'net_admin' | 'net_bind_service';

/**
 * argv prefix that drops from root to `user`, or none for root. No capabilities are left but
 * `capabilities`, kept as ambient ones (the agent's unit grants CAP_NET_ADMIN the same way).
 */
export function asUser(
  user: UserInfo | undefined,
  capabilities: readonly LabCapability[] = [],
): string[] {
  if (!user || user.uid === 0) return [];
  const caps = capabilities.map((c) => `+${c}`).join(',');
  const keep = caps === '' ? [] : [`--inh-caps=${caps}`, `--ambient-caps=${caps}`];
  return ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', ...keep, '--'];
}

/** Environment a login as `user` would have; setpriv changes ids, not the environment. */
export function userEnv(user: UserInfo | undefined): Record<string, string> {
  const u = user ?? { name: 'root', home: '/root' };
  return { HOME: u.home, USER: u.name, LOGNAME: u.name };
}
