// What the dashboard shows, as one JSON document the page polls: services with their endpoints'
// health, nodes, and the policies and routes that shape traffic. A pure function of the stored
// documents and the node list, so that what a page can see is decided (and tested) in one place.
import type { NodeInfo } from '../../api/messages.js';
import type {
  Overview,
  OverviewDenial,
  OverviewEdge,
  OverviewEndpoint,
  OverviewError,
  OverviewNode,
  OverviewService,
  OverviewServiceStats,
} from '../../dashboard-ui/overview-types.js';

export type { Overview } from '../../dashboard-ui/overview-types.js';

/** A stored document as the registry returns it (already validated when it was applied). */
export interface StoredDoc {
  kind: string;
  metadata: { name: string };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

export const POLICY_KINDS = ['AuthorizationPolicy', 'TrafficPolicy', 'HTTPRoute', 'GRPCRoute'];

const TRAFFIC_FIELDS = [
  'balancer',
  'timeouts',
  'retries',
  'circuitBreaker',
  'outlierDetection',
  'rateLimit',
  'healthCheck',
  'adaptiveConcurrency',
  'qos',
];

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}

function endpointOf(doc: StoredDoc): OverviewEndpoint & { service: string } {
  const spec = record(doc.spec);
  return {
    service: str(spec.service) ?? '',
    name: doc.metadata.name,
    node: str(spec.node) ?? '',
    address: str(spec.address) ?? '',
    port: typeof spec.port === 'number' ? spec.port : 0,
    health: str(spec.health) ?? 'unknown',
    weight: typeof spec.weight === 'number' ? spec.weight : 1,
    stale: record(doc.status).stale === true,
  };
}

/** What the agents' reports add: golden metrics per service and the edges between services. */
export interface OverviewTraffic {
  windowSeconds: number;
  byService: ReadonlyMap<string, OverviewServiceStats>;
  edges: OverviewEdge[];
  denials: OverviewDenial[];
  deniedInWindow: number;
  errors: OverviewError[];
  erroredInWindow: number;
}

function serviceOf(
  doc: StoredDoc,
  endpoints: OverviewEndpoint[],
  stats: OverviewServiceStats | undefined,
): OverviewService {
  const ports = list(record(doc.spec).ports).map((p) => {
    const port = record(p);
    return {
      port: typeof port.port === 'number' ? port.port : 0,
      protocol: str(port.protocol) ?? 'tcp',
      ...(str(port.name) !== undefined ? { name: str(port.name) } : {}),
    };
  });
  const vip = str(record(doc.status).vip);
  return {
    name: doc.metadata.name,
    ...(vip !== undefined ? { vip } : {}),
    ports,
    endpoints,
    ready: endpoints.filter((e) => e.health === 'healthy' && !e.stale).length,
    ...(stats !== undefined ? { stats } : {}),
  };
}

function targetsOf(doc: StoredDoc): string[] {
  const spec = record(doc.spec);
  if (doc.kind === 'HTTPRoute' || doc.kind === 'GRPCRoute')
    return list(spec.parentRefs).flatMap((p) => str(record(p).name) ?? []);
  const target = record(spec.targetRef);
  if (str(target.kind) === 'Mesh') return ['Mesh'];
  return str(target.name) !== undefined ? [str(target.name) as string] : [];
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function summaryOf(doc: StoredDoc): string {
  const spec = record(doc.spec);
  switch (doc.kind) {
    case 'AuthorizationPolicy':
      return `${str(spec.action) ?? 'ALLOW'}, ${plural(list(spec.rules).length, 'rule')}`;
    case 'TrafficPolicy': {
      const fields = TRAFFIC_FIELDS.filter((f) => spec[f] !== undefined);
      return fields.length > 0 ? fields.join(', ') : 'defaults';
    }
    default:
      return plural(list(spec.rules).length, 'rule');
  }
}

function nodeOf(node: NodeInfo): OverviewNode {
  return {
    name: node.name,
    state: node.state,
    addresses: node.addresses,
    agentVersion: node.agentVersion,
    syncVersion: node.ackedVersion,
    certNotAfterUnixMs: node.certNotAfterUnixMs,
    lastSeenUnixMs: node.lastSeenUnixMs,
    services: node.services,
    lastNack: node.lastNack,
    ...(node.hostFacts
      ? {
          host: {
            os: node.hostFacts.os,
            kernel: node.hostFacts.kernel,
            cpus: node.hostFacts.cpus,
            memoryBytes: node.hostFacts.memoryBytes,
          },
        }
      : {}),
  };
}

const byName = <T extends { name: string }>(a: T, b: T): number => a.name.localeCompare(b.name);

export function buildOverview(input: {
  services: StoredDoc[];
  workloads: StoredDoc[];
  policies: StoredDoc[];
  nodes: NodeInfo[];
  traffic: OverviewTraffic;
  now: number;
}): Overview {
  const endpointsByService = new Map<string, OverviewEndpoint[]>();
  for (const doc of input.workloads) {
    const { service, ...endpoint } = endpointOf(doc);
    const endpoints = endpointsByService.get(service) ?? [];
    endpoints.push(endpoint);
    endpointsByService.set(service, endpoints);
  }
  return {
    generatedAtUnixMs: input.now,
    windowSeconds: input.traffic.windowSeconds,
    services: input.services
      .map((doc) =>
        serviceOf(
          doc,
          (endpointsByService.get(doc.metadata.name) ?? []).sort(byName),
          input.traffic.byService.get(doc.metadata.name),
        ),
      )
      .sort(byName),
    edges: [...input.traffic.edges].sort(
      (a, b) => a.source.localeCompare(b.source) || a.destination.localeCompare(b.destination),
    ),
    denials: input.traffic.denials,
    deniedInWindow: input.traffic.deniedInWindow,
    errors: input.traffic.errors,
    erroredInWindow: input.traffic.erroredInWindow,
    nodes: input.nodes.map(nodeOf).sort(byName),
    policies: input.policies
      .map((doc) => ({
        kind: doc.kind,
        name: doc.metadata.name,
        targets: targetsOf(doc),
        summary: summaryOf(doc),
      }))
      .sort((a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name)),
  };
}
