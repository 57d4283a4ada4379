// The JSON the dashboard page polls (/api/v1/overview): the one contract between the control
// plane (src/controlplane/dashboard/overview.ts builds it) and the page's scripts (this folder).
// Types only, so both sides compile it: the server without the DOM, the page with it.

export interface OverviewEndpoint {
  name: string;
  node: string;
  address: string;
  port: number;
  health: string;
  weight: number;
  /** The node has gone silent: health is its last report. */
  stale: boolean;
}

export interface OverviewService {
  name: string;
  vip?: string;
  ports: { port: number; protocol: string; name?: string }[];
  endpoints: OverviewEndpoint[];
  /** Endpoints healthy and not stale, out of all. */
  ready: number;
  /** Absent when no agent reported traffic for it in the window. */
  stats?: OverviewServiceStats;
}

export interface OverviewNode {
  name: string;
  state: string;
  addresses: string[];
  agentVersion: string;
  syncVersion: number;
  certNotAfterUnixMs: number;
  lastSeenUnixMs: number;
  services: string[];
  lastNack: string;
  /** As the agent reported them; absent until it did. */
  host?: { os: string; kernel: string; cpus: number; memoryBytes: number };
}

export interface OverviewPolicy {
  kind: string;
  name: string;
  /** The Service (or "Mesh") it applies to; for routes, their parent Services. */
  targets: string[];
  /** One line on what it does: "ALLOW, 2 rules", "retries, timeouts", "3 rules". */
  summary: string;
}

/** Requests from one service to another over the control plane's window (the graph's arrows). */
export interface OverviewEdge {
  source: string;
  destination: string;
  /** Requests (or, for TCP, connections) per second. */
  rps: number;
  /** Share of requests that succeeded, 0-1; null when there were none. */
  successRate: number | null;
}

/** Golden metrics of a service as its endpoints saw them over the control plane's window. */
export interface OverviewServiceStats {
  rps: number;
  successRate: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
}

/** An authorization denial an agent reported. */
export interface OverviewDenial {
  atUnixMs: number;
  /** The node whose agent refused it. */
  node: string;
  direction: string;
  /** The caller's SPIFFE ID, or "unknown". */
  source: string;
  destination: string;
  reason: string;
  method: string;
  path: string;
}

/** A request that failed, as its calling agent reported it. */
export interface OverviewError {
  atUnixMs: number;
  /** The node whose agent sent it. */
  node: string;
  source: string;
  destination: string;
  method: string;
  path: string;
  /** 0: no answer. */
  status: number;
  /** -1: not gRPC. */
  grpcStatus: number;
  reason: string;
  detail: string;
  endpoint: string;
}

export interface Overview {
  generatedAtUnixMs: number;
  /** The window the rates and percentiles cover. */
  windowSeconds: number;
  services: OverviewService[];
  edges: OverviewEdge[];
  /** The newest denials in the window, newest first (at most 50)... */
  denials: OverviewDenial[];
  /** ...out of this many in the window. */
  deniedInWindow: number;
  /** The newest failed requests in the window, newest first (at most 50)... */
  errors: OverviewError[];
  /** ...out of this many in the window. */
  erroredInWindow: number;
  nodes: OverviewNode[];
  policies: OverviewPolicy[];
}
