// The messages between the agent's master and its workers, over the private IPC socketpair of
// child_process.fork (advanced serialization: Maps, Dates and byte arrays travel as they are).
// The master owns the control plane session; a worker learns what its data plane needs of it
// from these, and sends back what the master reports for the whole agent.

import type { EffectivePolicy } from '../../api/resources/traffic-policy-scopes.js';
import type { DenialRecord, RequestErrorRecord } from '../../api/stats-messages.js';
import type { Identity } from '../../controlplane-client/identity-store.js';
import type { ViewResource } from '../../controlplane-client/mesh-view.js';
import type { Readout } from '../../telemetry/stats-readout.js';
import type { TapFilter } from '../../telemetry/tap-filter.js';
import type { TapRecord } from '../../telemetry/tap-record.js';
import type { AgentConfig } from '../config.js';
import type { MapChanges } from './mirror-delta.js';

/**
 * The version of these messages. A reload after an upgrade runs new worker code under the
 * running master: a worker that does not speak the master's version refuses to start (the
 * reload fails, the old workers keep serving) and asks for a restart. Bump it with any change
 * to these messages.
 */
export const WORKER_PROTOCOL = 4;

/** Which certificate an identity is: the node's or a local service's. */
export type CertificateRole = { kind: 'node' } | { kind: 'service'; service: string };

/**
 * A snapshot version as a worker gets it: what changed since the version the worker holds
 * (mirror-delta.ts), or all of it when `baseVersion` is undefined (a worker's first), with the
 * effective TrafficPolicies the master computed (their defaults come from the schema, and a
 * worker loads no schema library), changed ones only, by service.
 */
export interface MirroredSnapshot {
  version: number;
  /** The version these changes apply to; undefined: the whole snapshot. */
  baseVersion: number | undefined;
  trustBundlePem: string;
  /** By `${kind}/${name}`; no wire JSON (only the master writes the cache and dumps). */
  resources: MapChanges<ViewResource>;
  /** The effective TrafficPolicies of services with a policy of their own. */
  services: MapChanges<EffectivePolicy>;
  /** The Mesh's effective TrafficPolicy, when it changed (always in a whole snapshot). */
  mesh?: { policy: EffectivePolicy | undefined };
}

/** The session's state a worker starts from; later changes come as MirrorUpdate messages. */
export interface MirrorState {
  /** The whole snapshot; absent before the first one. */
  snapshot: MirroredSnapshot | undefined;
  trustBundlePem: string;
  node: Identity | undefined;
  services: [string, Identity][];
}

export type MirrorUpdate =
  | { type: 'snapshot'; snapshot: MirroredSnapshot; trustBundlePem: string }
  | { type: 'certificate'; role: CertificateRole; identity: Identity; trustBundlePem: string };

/** The listening sockets a worker serves, as fd numbers in the worker (its stdio slots). */
export interface WorkerFds {
  outbound: number;
  inbound: number;
  /** Absent when the tunnel is bound by the worker itself (see worker-main.ts). */
  tunnel: number | undefined;
}

export type MasterMessage =
  | {
      type: 'init';
      protocol: number;
      generation: number;
      config: AgentConfig;
      fds: WorkerFds;
      state: MirrorState;
    }
  | MirrorUpdate
  /** Stop accepting, ask clients to go away, drain for up to drainMs, exit. */
  | { type: 'retire'; drainMs: number }
  /** The master is about to exec into new code (an upgrade): when the channel closes, keep
   * serving until SIGUSR2 from the new master, then retire with drainMs. null: it will not. */
  | { type: 'handover'; drainMs: number | null }
  /** Answer with a 'metrics' message carrying the same id. */
  | { type: 'metrics'; id: number }
  | { type: 'tapOpen'; id: string; filter: TapFilter }
  | { type: 'tapClose'; id: string };

export type WorkerMessage =
  /** The data plane listens: the master may retire the generation this one replaces. */
  | { type: 'ready'; build: string }
  /** Its registry as getMetricsAsJSON(), its stats readout, the connections it holds. */
  | { type: 'metrics'; id: number; metrics: unknown[]; readout: Readout; connections: number }
  /** Denials and failed requests seen since the last such message (at most every second). */
  | { type: 'events'; denials: DenialRecord[]; errors: RequestErrorRecord[]; omitted: number }
  | { type: 'tapRecords'; id: string; records: TapRecord[] }
  | { type: 'tapDropped'; id: string; total: number }
  /** The connections it holds, when that changed (at most every second), and when it starts
   * retiring (no listener open any more). */
  | { type: 'connections'; connections: number };
