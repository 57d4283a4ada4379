// TypeScript shapes of the messages in proto/weft.proto as @grpc/proto-loader presents them with
// the options in ./proto.ts: camelCase fields, 64-bit integers as JS numbers, every field
// present (defaults filled in) on received messages, and the Sync oneof named in `msg`.

import type { HostFacts, StatsReport } from './stats-messages.js';

export type * from './stats-messages.js';

// ---------------------------------------------------------------- Identity

export interface JoinRequest {
  token: string;
  hostname: string;
  csrPem: string;
  addresses?: string[];
  zone?: string;
  hostFacts?: HostFacts | null;
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

export interface RefusedWorkload {
  /** The workload's name on the node. */
  name: string;
  service: string;
  /** Stable label: "service_not_allowed". */
  reason: string;
  /** What happened and what to do. */
  message: string;
}

export interface RegisterWorkloadsResponse {
  /** The Workload resource names stored. */
  names: string[];
  /** Registrations not stored. */
  refused: RefusedWorkload[];
}

export type LeaveRequest = Record<string, never>;

export interface LeaveResponse {
  revokedCertificates: number;
  workloadsRemoved: number;
}

// ---------------------------------------------------------------- Sync

export interface Hello {
  version: number;
  agentVersion?: string;
  /** Encodings of SyncResponse.encoded the agent decodes, best first (field 50). */
  acceptEncodings?: string[];
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
  stats?: StatsReport | null;
  hostFacts?: HostFacts | null;
  /** Records of a tap the control plane started (field 7). */
  tapBatch?: TapBatch | null;
  /** This agent runs taps (field 8): sent once, after Hello. */
  tapReady?: Record<string, never> | null;
  msg?: 'hello' | 'ack' | 'nack' | 'heartbeat' | 'stats' | 'hostFacts' | 'tapBatch' | 'tapReady';
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
  /** A tap control message (fields 20-21): not a version, neither applied nor acknowledged. */
  tapStart?: TapStart | null;
  tapStop?: TapStop | null;
  /** Fields 50-51: upserts, removals and trust bundle compressed (sync-encoding.ts). */
  encoding?: string;
  encoded?: Buffer;
}

// ---------------------------------------------------------------- Tap

/** Which request records a tap sees; empty fields match everything. */
export interface TapFilter {
  /** Requests to this service (the record's dst_service). */
  service?: string;
  pathPrefix?: string;
  method?: string;
  /** "2xx" .. "5xx", or one status code. */
  status?: string;
  /** The caller: a service name or a SPIFFE ID. */
  source?: string;
  headers?: boolean;
  /** Records per second per agent; 0: the default (100). */
  maxPerSecond?: number;
}

export interface TapStart {
  id: string;
  filter: TapFilter | null;
}

export interface TapStop {
  id: string;
}

export interface TapBatch {
  tapId: string;
  node: string;
  /** Each one JSON object: the agent's tap record (src/telemetry/tap-record.ts). */
  records: string[];
  /** Records the tap dropped on that agent so far. */
  dropped: number;
  /** The agent could not start the tap: why. */
  error: string;
}

export interface TapRequest {
  filter: TapFilter | null;
  node?: string;
  /** Only this replica's agents: set by a replica asking its peers (tap/tap-peers.ts). */
  localOnly?: boolean;
}

// ---------------------------------------------------------------- Admin

export interface ApplyRequest {
  resources: ResourceMessage[];
  source?: string;
  /** Overwrite even when a document's metadata.resourceVersion is not the current one. */
  force?: boolean;
}

export type ApplyOutcome = 'created' | 'configured' | 'unchanged';

export interface ApplyResult {
  kind: string;
  name: string;
  outcome: ApplyOutcome;
  /** Its version after the apply: the one written, or the one found when unchanged. */
  resourceVersion: number;
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
  /** Required: the hostname that may join with it. */
  node: string;
  /** Services that node may serve. */
  services?: string[];
  /** It may replace an existing node of that name (a rebuilt host). */
  replace?: boolean;
}

export interface CreateTokenResponse {
  token: string;
  expiresUnixMs: number;
  caPin: string;
  info: TokenInfo;
}

export type TokenState = 'unused' | 'used' | 'expired' | 'revoked';

/** A join token as listed: never its secret. 0 / '' where a field does not apply. */
export interface TokenInfo {
  id: string;
  node: string;
  services: string[];
  replace: boolean;
  description: string;
  createdUnixMs: number;
  expiresUnixMs: number;
  state: TokenState;
  usedBy: string;
  usedAtUnixMs: number;
  revokedAtUnixMs: number;
}

export type ListTokensRequest = Record<string, never>;

export interface ListTokensResponse {
  tokens: TokenInfo[];
}

export interface RevokeTokenRequest {
  id: string;
}

export interface RevokeTokenResponse {
  token: TokenInfo;
}

export type ListNodesRequest = Record<string, never>;

export interface NodeWorkload {
  /** The Workload resource name. */
  name: string;
  service: string;
  address: string;
  port: number;
  health: string;
}

export interface NodeInfo {
  name: string;
  spiffeId: string;
  addresses: string[];
  lastHeartbeatUnixMs: number;
  ackedVersion: number;
  state: 'connected' | 'disconnected';
  lastNack: string;
  /** The services it may serve. */
  services: string[];
  /** From the agent's Hello; '' until it opened a sync stream to this control plane. */
  agentVersion: string;
  certNotAfterUnixMs: number;
  /** Any call or stream message; 0 when not heard from since this control plane started. */
  lastSeenUnixMs: number;
  joinedUnixMs: number;
  workloads: NodeWorkload[];
  /** As the agent last reported them; null before its first report. */
  hostFacts: HostFacts | null;
  hostFactsUnixMs: number;
}

export interface ListNodesResponse {
  nodes: NodeInfo[];
}

export interface DeleteNodeRequest {
  name: string;
}

export interface DeleteNodeResponse {
  revokedCertificates: number;
  workloadsRemoved: number;
  tokensRemoved: number;
}

export interface SetNodeServicesRequest {
  node: string;
  allow?: string[];
  /** Its workloads of these are removed and their certificates on this node revoked. */
  disallow?: string[];
}

export interface SetNodeServicesResponse {
  /** What the node may serve now, sorted. */
  services: string[];
  workloadsRemoved: number;
  revokedCertificates: number;
}

export type CreateDashboardLoginRequest = Record<string, never>;

export interface CreateDashboardLoginResponse {
  token: string;
  expiresUnixMs: number;
  httpPort: number;
}
