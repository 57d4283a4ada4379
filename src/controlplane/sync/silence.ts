// What the control plane concludes from a node's silence, and what a heartbeat changes. A node
// that stopped talking to the control plane is not evidence that its workloads are down: a
// partition or a control plane restart silences healthy nodes that their peers still reach.
// So silence only marks the workloads stale (shown in status, spec.health kept as the agent
// last reported it); callers' passive failure accrual takes out endpoints that really fail,
// and a node silent for workloadRemoveAfter has its workloads removed. Pure functions, tested
// table-style (test/unit/controlplane-silence.test.ts); node-health.ts does the writes.
import type { Workload } from '../../api/resources/index.js';

/** status.reason of a workload whose node went silent. */
export const NODE_SILENT = 'NodeSilent';
/** status.reason written by earlier versions, which overrode spec.health with unhealthy. */
export const LEGACY_HEARTBEAT_LOST = 'NodeHeartbeatLost';

export type Health = Workload['spec']['health'];

export interface SilenceLimits {
  workloadStaleAfter: number;
  workloadRemoveAfter: number;
}

export type NodeVerdict = 'fresh' | 'stale' | 'remove';

/** What a node's silence (ms since it was last heard from) calls for. */
export function judgeSilence(silentMs: number, limits: SilenceLimits): NodeVerdict {
  if (silentMs >= limits.workloadRemoveAfter) return 'remove';
  if (silentMs >= limits.workloadStaleAfter) return 'stale';
  return 'fresh';
}

/** True when the control plane has marked this workload (now or in an earlier version). */
export function isMarked(w: Workload): boolean {
  return w.status?.stale === true || w.status?.reason === LEGACY_HEARTBEAT_LOST;
}

/**
 * The workload marked stale for a node last heard from at `lastSeenUnixMs`, or undefined when
 * it already is. spec.health stays what the agent reported (an earlier version's override
 * is undone: it kept the reported health in status.reportedHealth).
 */
export function markedStale(w: Workload, lastSeenUnixMs: number): Workload | undefined {
  if (w.status?.stale === true) return undefined;
  const health =
    w.status?.reason === LEGACY_HEARTBEAT_LOST
      ? (w.status.reportedHealth ?? 'unknown')
      : w.spec.health;
  return {
    apiVersion: w.apiVersion,
    kind: w.kind,
    metadata: w.metadata,
    spec: { ...w.spec, health },
    status: { stale: true, reason: NODE_SILENT, lastSeen: new Date(lastSeenUnixMs).toISOString() },
  };
}

/**
 * The workload after a heartbeat that reported `reported` for it (undefined: not in the
 * heartbeat), or undefined when nothing changes. A heartbeat clears any mark: the node is back.
 */
export function afterHeartbeat(w: Workload, reported: Health | undefined): Workload | undefined {
  const marked = isMarked(w);
  const kept =
    w.status?.reason === LEGACY_HEARTBEAT_LOST
      ? (w.status.reportedHealth ?? 'unknown')
      : w.spec.health;
  const health = reported ?? kept;
  if (!marked && health === w.spec.health) return undefined;
  return {
    apiVersion: w.apiVersion,
    kind: w.kind,
    metadata: w.metadata,
    spec: { ...w.spec, health },
  };
}
