// The messages between the agent's master and its workers, over the private IPC socketpair of
// child_process.fork (advanced serialization: Maps, Dates and byte arrays travel as they are).
// The master owns the control plane session; a worker learns what its data plane needs of it
// from these, and sends back what the master reports for the whole agent.
import type { DenialRecord, RequestErrorRecord } from '../../api/stats-messages.js';
import type { Identity } from '../../controlplane-client/identity-store.js';
import type { Snapshot } from '../../controlplane-client/snapshot.js';
import type { ResolvedTraffic } from '../../proxy/mesh-state.js';
import type { Readout } from '../../telemetry/stats-readout.js';
import type { TapFilter } from '../../telemetry/tap-filter.js';
import type { TapRecord } from '../../telemetry/tap-record.js';
import type { AgentConfig } from '../config.js';

/**
 * The version of these messages. A reload after an upgrade runs new worker code under the
 * running master: a worker that does not speak the master's version refuses to start (the
 * reload fails, the old workers keep serving) and asks for a restart. Bump it with any change
 * to these messages.
 */
export const WORKER_PROTOCOL = 3;

/** Which certificate an identity is: the node's or a local service's. */
export type CertificateRole = { kind: 'node' } | { kind: 'service'; service: string };

/**
 * A snapshot as a worker gets it, v8-serialized once by the master for all workers: with its
 * effective TrafficPolicies, which the master computes (their defaults come from the schema,
 * and a worker loads no schema library).
 */
export interface MirroredSnapshot {
  snapshot: Snapshot;
  traffic: ResolvedTraffic;
}

/** The session's state a worker starts from; later changes come as MirrorUpdate messages. */
export interface MirrorState {
  /** A MirroredSnapshot, v8-serialized; absent before the first snapshot. */
  snapshot: Uint8Array | undefined;
  trustBundlePem: string;
  node: Identity | undefined;
  services: [string, Identity][];
}

export type MirrorUpdate =
  | { type: 'snapshot'; snapshot: Uint8Array; trustBundlePem: string }
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
