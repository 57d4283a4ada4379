// TypeScript shapes of the stats messages in proto/weft.proto (HostFacts, StatsReport,
// GetStats), as @grpc/proto-loader presents them (see ./messages.ts for the conventions).

/** What a host is, as its agent reads it. */
export interface HostFacts {
  os: string;
  kernel: string;
  arch: string;
  cpus: number;
  memoryBytes: number;
  agentVersion: string;
}

export type StatsKind = 'inbound' | 'edge' | 'route';

/** One series of a report: counts since the previous report, gauges as of now. */
export interface StatsSeries {
  kind: StatsKind;
  srcService: string;
  dstService: string;
  route: string;
  requests: number;
  successes: number;
  /** Requests per latency bucket (not cumulative), over the report's latencyBoundsMs. */
  latencyBuckets: number[];
  inFlight: number;
  tcpOpened: number;
  tcpOpen: number;
  bytesIn: number;
  bytesOut: number;
}

export interface StatsReport {
  startUnixMs: number;
  endUnixMs: number;
  series: StatsSeries[];
  foldedSeries: number;
  latencyBoundsMs: number[];
  /** Absent from agents older than the dashboard. */
  denials?: DenialRecord[];
  denialsOmitted?: number;
  errors?: RequestErrorRecord[];
  errorsOmitted?: number;
}

/** One failed request, as the calling agent recorded it. */
export interface RequestErrorRecord {
  atUnixMs: number;
  source: string;
  destination: string;
  method: string;
  path: string;
  /** 0: the caller got no answer. */
  status: number;
  /** -1: not gRPC. */
  grpcStatus: number;
  /** The record's close reason: "upstream_failed", "no_healthy_endpoint", ... */
  reason: string;
  detail: string;
  endpoint: string;
}

/** One authorization denial, as the deciding agent recorded it. */
export interface DenialRecord {
  atUnixMs: number;
  direction: string;
  source: string;
  destination: string;
  reason: string;
  method: string;
  path: string;
}

export type StatsWindow = '1m' | 'last';

export interface GetStatsRequest {
  window?: string;
  service?: string;
}

/** One aggregated row: a service, an edge or a route. */
export interface StatsRow {
  srcService: string;
  dstService: string;
  route: string;
  requestsPerSecond: number;
  requests: number;
  successes: number;
  successRate: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  inFlight: number;
  tcpOpened: number;
  tcpOpen: number;
  bytesIn: number;
  bytesOut: number;
  nodes: number;
  latencyBuckets: number[];
}

export interface GetStatsResponse {
  window: string;
  windowSeconds: number;
  services: StatsRow[];
  edges: StatsRow[];
  routes: StatsRow[];
  latencyBoundsMs: number[];
  reportingNodes: number;
  foldedSeries: number;
  generatedUnixMs: number;
}
