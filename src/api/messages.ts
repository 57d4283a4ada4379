// TypeScript shapes of the messages in proto/weft.proto as @grpc/proto-loader presents them with
// the options in ./proto.ts: camelCase fields, 64-bit integers as JS numbers, every field
// present (defaults filled in) on received messages, and the Sync oneof named in `msg`.

// ---------------------------------------------------------------- Identity

export interface JoinRequest {
  token: string;
  hostname: string;
  csrPem: string;
  addresses?: string[];
  zone?: string;
}

export interface JoinResponse {
  certificatePem: string;
  trustBundlePem: string;
  trustDomain: string;
  spiffeId: string;
}

export interface CsrRequest {
  csrPem: string;
}

export interface WorkloadCsrRequest {
  service: string;
  csrPem: string;
}

export interface CertificateResponse {
  certificatePem: string;
  trustBundlePem: string;
  spiffeId: string;
  notAfterUnixMs: number;
}

export type WorkloadHealthState = 'healthy' | 'unhealthy' | 'unknown';

export interface WorkloadRegistration {
  service: string;
  /** Empty: the node's first address given at join. */
  address?: string;
  port: number;
  /** Empty: "unknown". */
  health?: WorkloadHealthState | '';
  /** 0: 1. */
  weight?: number;
  zone?: string;
  /** Unique per node; empty: `<service>-<port>`. The Workload resource is `<node>-<name>`. */
  name?: string;
}

export interface RegisterWorkloadsRequest {
  workloads: WorkloadRegistration[];
}

export interface RegisterWorkloadsResponse {
  names: string[];
}

// ---------------------------------------------------------------- Sync

export interface Hello {
  version: number;
  agentVersion?: string;
}

export interface Ack {
  version: number;
}

export interface Nack {
  version: number;
  reason: string;
}

export interface WorkloadHealth {
  /** The workload's name on the node (as registered) or its Workload resource name. */
  name: string;
  health: WorkloadHealthState;
}

export interface Heartbeat {
  workloads: WorkloadHealth[];
}

/** Send exactly one of the fields; received messages also say which in `msg`. */
export interface SyncRequest {
  hello?: Hello | null;
  ack?: Ack | null;
  nack?: Nack | null;
  heartbeat?: Heartbeat | null;
  msg?: 'hello' | 'ack' | 'nack' | 'heartbeat';
}

export interface ResourceKey {
  kind: string;
  name: string;
}

export interface ResourceMessage {
  kind: string;
  name: string;
  /** The whole document as JSON: apiVersion, kind, metadata, spec, status. */
  json: string;
  revision: number;
  /** Apply only: where the document came from, for error messages. */
  source?: string;
}

export interface SyncResponse {
  version: number;
  /** The version this delta applies on; 0 with full = true. */
  baseVersion: number;
  full: boolean;
  upserts: ResourceMessage[];
  removals: ResourceKey[];
  /** Set when it changed; always with full. */
  trustBundlePem: string;
}

// ---------------------------------------------------------------- Admin

export interface ApplyRequest {
  resources: ResourceMessage[];
  source?: string;
}

export type ApplyOutcome = 'created' | 'configured' | 'unchanged';

export interface ApplyResult {
  kind: string;
  name: string;
  outcome: ApplyOutcome;
}

export interface ApplyResponse {
  results: ApplyResult[];
}

export interface GetRequest {
  kind: string;
  name?: string;
}

export interface GetResponse {
  resources: ResourceMessage[];
}

export interface DeleteRequest {
  kind: string;
  name: string;
}

export interface DeleteResponse {
  deleted: boolean;
}

export interface CreateTokenRequest {
  ttlSeconds?: number;
  description?: string;
}

export interface CreateTokenResponse {
  token: string;
  expiresUnixMs: number;
  caPin: string;
}

export type ListNodesRequest = Record<string, never>;

export interface NodeInfo {
  name: string;
  spiffeId: string;
  addresses: string[];
  lastHeartbeatUnixMs: number;
  ackedVersion: number;
  state: 'connected' | 'disconnected';
  lastNack: string;
}

export interface ListNodesResponse {
  nodes: NodeInfo[];
}
