// Which agent.yaml changes a reload (SIGHUP) or an upgrade (SIGUSR2, the master re-executing
// itself) can take. A reload's new workers get the new config, but the master keeps its
// sockets, its control plane session and its own servers, so changes to what those were built
// from need a restart. An upgrade builds a new master too, and so can take all of that except
// the listening sockets it hands over (and the capture rules, applied as root before start)
// and the identity on disk. Either is refused (the running workers keep serving) with the
// fields named, rather than half applied.
import { isDeepStrictEqual } from 'node:util';
import type { AgentConfig } from '../config.js';

/** Top-level fields a reload cannot change, and why. */
const NEEDS_RESTART: ReadonlyArray<[keyof AgentConfig, string]> = [
  ['hostname', "the node's identity"],
  ['dataDir', 'the identity and snapshot cache'],
  ['controlPlane', 'the control plane session'],
  ['capture', 'the listening sockets and capture rules'],
  ['admin', 'the admin endpoint'],
  ['metrics', 'the metrics endpoint'],
  ['tap', 'the tap socket'],
];

/** Of those, the ones a new master built by an upgrade cannot change either. */
const UPGRADE_KEEPS = new Set<keyof AgentConfig>(['hostname', 'dataDir', 'capture']);

/** Undefined when `next` can be reloaded into; else what stops it and what to do. */
export function reloadRefusal(
  running: AgentConfig,
  next: AgentConfig,
  kind: 'reload' | 'upgrade' = 'reload',
): string | undefined {
  const changed = NEEDS_RESTART.filter(
    ([field]) =>
      (kind === 'reload' || UPGRADE_KEEPS.has(field)) &&
      !isDeepStrictEqual(running[field], next[field]),
  );
  if (changed.length === 0) return undefined;
  const list = changed.map(([field, what]) => `${field} (${what})`).join(', ');
  return `${kind === 'reload' ? 'a reload' : 'an upgrade in place'} cannot change ${list}: restart the agent (systemctl restart weft-agent) to apply it`;
}
