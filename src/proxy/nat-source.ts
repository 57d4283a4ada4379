// REDIRECT rewrites the destination to the agent, and, when two connections would otherwise
// share one translated tuple (same source port to 127.0.0.1:15001, e.g. a port reused while
// an older connection's conntrack entry lingers in TIME_WAIT), also the source port. The
// agent then sees a port the app's socket never had, and the owner lookup misses. conntrack
// keeps both tuples: this finds the original source port from the one the agent sees.
// Rare (well under 1 % of connections on a busy host), so a scan of the procfs table, read
// asynchronously, is cheaper than holding a ctnetlink socket for it.
import { readFile } from 'node:fs/promises';

const TABLE = '/proc/net/nf_conntrack';

export interface SeenTuple {
  /** The client as the agent's accepted socket sees it. */
  remoteAddress: string;
  remotePort: number;
  /** The agent's listener address and port the connection was redirected to. */
  localAddress: string;
  localPort: number;
}

/** The app socket's real source port, or undefined when conntrack has no such entry. */
export async function originalSourcePort(
  seen: SeenTuple,
  table = TABLE,
): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile(table, 'utf8');
  } catch {
    return undefined; // no conntrack procfs (CONFIG_NF_CONNTRACK_PROCFS off): nothing to learn
  }
  return findOriginalSourcePort(text, seen);
}

/** Parses conntrack lines: the second (reply) tuple is what the agent sees, reversed. */
export function findOriginalSourcePort(table: string, seen: SeenTuple): number | undefined {
  const reply = `src=${seen.localAddress} dst=${seen.remoteAddress} sport=${seen.localPort} dport=${seen.remotePort} `;
  for (const line of table.split('\n')) {
    const at = line.indexOf(reply);
    if (at < 0 || !line.includes(' tcp ')) continue;
    const original = line.slice(0, at);
    const sport = / sport=(\d+) /.exec(original)?.[1];
    if (sport !== undefined) return Number(sport);
  }
  return undefined;
}
