// Looking up local users through NSS (getent), cached: the agent maps socket owners' uids to
// workloads by user name, and the lab runs processes as named users.
import { execFileSync } from 'node:child_process';

export interface UserInfo {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

const cache = new Map<string, UserInfo>();

function parsePasswd(line: string): UserInfo | undefined {
  const [name, , uid, gid, , home] = line.trim().split(':');
  if (!name || uid === undefined || gid === undefined) return undefined;
  return { name, uid: Number(uid), gid: Number(gid), home: home || '/' };
}

/** The user's passwd entry, or undefined when there is none. Synchronous for spawn(). */
export function lookupUser(name: string): UserInfo | undefined {
  const known = cache.get(name);
  if (known) return known;
  let line: string;
  try {
    line = execFileSync('getent', ['passwd', name], { encoding: 'utf8', stdio: 'pipe' });
  } catch {
    return undefined; // getent exits 2 for an unknown user
  }
  const info = parsePasswd(line);
  if (info) cache.set(name, info);
  return info;
}
