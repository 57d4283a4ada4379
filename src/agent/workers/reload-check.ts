// Which agent.yaml changes a reload (SIGHUP) can take: the new workers get the new config, but
// the master keeps its sockets, its control plane session and its own servers, so changes to
// what those were built from need a restart. Such a reload is refused (the running workers
// keep serving) with the fields named, rather than half applied.
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

/** Undefined when `next` can be reloaded into; else what stops it and what to do. */
export function reloadRefusal(running: AgentConfig, next: AgentConfig): string | undefined {
  const changed = NEEDS_RESTART.filter(
    ([field]) => !isDeepStrictEqual(running[field], next[field]),
  );
  if (changed.length === 0) return undefined;
  const list = changed.map(([field, what]) => `${field} (${what})`).join(', ');
  return `a reload cannot change ${list}: restart the agent (systemctl restart weft-agent) to apply it`;
}
