// The agent's control plane client: what the agent process and the data path use.
export type { BackoffOptions } from './backoff.js';
export { type RenewalTarget, renewAt } from './certificates.js';
export type { Identity } from './identity-store.js';
export type { Health, LocalWorkload } from './local-workloads.js';
export type { EndpointView, MeshView, ServiceView } from './mesh-view.js';
export type { CertInfo } from './pki.js';
export {
  ControlPlaneSession,
  type SessionEvents,
  type SessionOptions,
  type SessionStatus,
  type SyncState,
  startControlPlaneSession,
} from './session.js';
export type { Snapshot, SnapshotResource } from './snapshot.js';
