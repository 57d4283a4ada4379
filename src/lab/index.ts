// weft's multi-host lab: hosts as network namespaces on a private bridge, for tests,
// benchmarks and `weft lab`. Everything callers need is exported from here.

export type { RunResult } from '../sys/run.js';
export { upDemo } from './demo.js';
export {
  type ExecOptions,
  Lab,
  type LabOptions,
  type LabStatus,
  type SpawnOptions,
} from './lab.js';
export {
  MeshLab,
  type MeshLabNode,
  type MeshLabOptions,
  type MeshLabWorkload,
  WEFT_BIN,
  waitUntil,
} from './mesh-lab.js';
export {
  DEFAULT_NAMESERVERS,
  DEFAULT_SUBNET,
  DEFAULT_SUBNET6,
  defaultLabSpec,
  type HostSpec,
  type LabSpec,
  type LabSpecInput,
  type ProcessSpec,
  type ProcessSpecInput,
  parseLabSpec,
  validateLabSpec,
  validateProcessSpec,
} from './spec.js';
export { DEFAULT_STATE_DIR, type LabProcess } from './state.js';
export type { DownReport } from './teardown.js';
export { BRIDGE, HOST_IFACE, type LabHost } from './topology.js';
export { ensureUser, lookupUser, type UserInfo } from './users.js';
