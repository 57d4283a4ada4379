// Traffic capture with iptables: what the agent, the CLI and the tests call.
export { type Backend, type BackendChoice, type BackendKind, resolveBackend } from './backend.js';
export {
  type CaptureConfig,
  type CaptureConfigInput,
  captureConfigSchema,
  defaultCaptureConfig,
  loadCaptureConfig,
  parseCaptureConfig,
} from './config.js';
export { FAMILIES, type Family, familyLabel } from './family.js';
export { type CaptureOptions, type InstallResult, installCapture } from './install.js';
export type { DiffLine } from './line-diff.js';
export {
  type CaptureEnv,
  type CapturePlan,
  type FamilyPlan,
  type PolicyRouting,
  planCapture,
} from './plan.js';
export { convergePayload } from './restore-payload.js';
export { agentOwnPorts, buildWeftState, CHAINS, SSH_PORT } from './rules.js';
export {
  type CaptureStatus,
  captureStatus,
  type FamilyStatus,
  type RoutingCheck,
  type SyncState,
} from './status.js';
export { type UninstallResult, uninstallCapture } from './uninstall.js';
export { extractWeftState, stateLines, type WeftState, type WeftTable } from './weft-state.js';
