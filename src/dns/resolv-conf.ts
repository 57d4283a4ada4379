// The host's own nameservers, read once from /etc/resolv.conf when the DNS server starts:
// they are where names outside the mesh go.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

export const RESOLV_CONF = '/etc/resolv.conf';

/** glibc reads at most MAXNS = 3 nameservers and ignores the rest; so do we. */
const MAX_NAMESERVERS = 3;

/**
 * The `nameserver` addresses of a resolv.conf, in order: comments start with `#` or `;`
 * (also after a value), keywords may be indented, entries that are not IP addresses are
 * skipped as glibc skips them.
 */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const rawLine of text.split('\n')) {
    const line = rawLine.replace(/[#;].*$/, '').trim();
    const [keyword, address] = line.split(/\s+/);
    if (keyword !== 'nameserver' || address === undefined || isIP(address) === 0) continue;
    out.push(address);
    if (out.length === MAX_NAMESERVERS) break;
  }
  return out;
}

export interface SystemNameservers {
  nameservers: string[];
  /** Why the list is empty, when it is: the file is missing or names none. */
  problem?: string;
}

export function readSystemNameservers(path = RESOLV_CONF): SystemNameservers {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return { nameservers: [], problem: `${path} cannot be read (${(err as Error).message})` };
  }
  const nameservers = parseResolvConf(text);
  if (nameservers.length === 0) return { nameservers, problem: `${path} lists no nameserver` };
  return { nameservers };
}
