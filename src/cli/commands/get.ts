// `weft get KIND [NAME] [-o table|yaml|json]`: resources (services with their last minute's
// rate, success rate and p99; `nodes`: each with the services it may serve, addresses, agent
// and sync version, last seen, certificate expiry, host facts and workloads) from the control
// plane. YAML output can be applied again as it is.
import { status as grpcStatus } from '@grpc/grpc-js';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { adminOptionsFrom, WeftAdminClient, withAdminOptions } from '../../api/admin-client.js';
import type { NodeInfo, StatsRow } from '../../api/messages.js';
import { kindPlural, type ResourceKind, resolveKind } from '../../api/resources/index.js';
import { WeftError } from '../../errors.js';
import { formatBytes, formatLatency, formatRate, formatSuccess } from './stats-format.js';
import { table } from './table.js';

type Doc = {
  metadata: { name: string };
  spec: Record<string, unknown>;
  status?: Record<string, unknown>;
};
type Row = string[];

const str = (v: unknown): string => (v === undefined || v === null || v === '' ? '-' : String(v));

/** Columns per kind: what an operator looks for first. */
const COLUMNS: Record<ResourceKind, { headers: string[]; row(d: Doc): Row }> = {
  Mesh: {
    headers: ['NAME', 'TRUST DOMAIN', 'MTLS', 'OUTBOUND'],
    row: (d) => [
      d.metadata.name,
      str(d.spec.trustDomain),
      str((d.spec.mtls as { mode?: string })?.mode),
      str(d.spec.outboundPolicy),
    ],
  },
  Service: {
    headers: ['NAME', 'VIP', 'PORTS', 'RATE', 'SUCCESS', 'P99'],
    row: (d) => {
      // The last minute's numbers of the service as its receiving agents saw them.
      const stats = d.status?.stats as StatsRow | undefined;
      return [
        d.metadata.name,
        str(d.status?.vip),
        ((d.spec.ports as Array<{ port: number; targetPort: number; protocol: string }>) ?? [])
          .map(
            (p) => `${p.port}${p.targetPort !== p.port ? `->${p.targetPort}` : ''}/${p.protocol}`,
          )
          .join(','),
        formatRate(stats),
        formatSuccess(stats),
        formatLatency(stats, stats?.p99Ms ?? 0),
      ];
    },
  },
  Workload: {
    headers: ['NAME', 'SERVICE', 'NODE', 'ADDRESS', 'HEALTH', 'WEIGHT', 'ZONE'],
    row: (d) => [
      d.metadata.name,
      str(d.spec.service),
      str(d.spec.node),
      `${str(d.spec.address)}:${str(d.spec.port)}`,
      workloadHealth(d),
      str(d.spec.weight),
      str(d.spec.zone),
    ],
  },
  TrafficPolicy: {
    headers: ['NAME', 'TARGET', 'BALANCER', 'POLICIES'],
    row: (d) => [
      d.metadata.name,
      policyTarget(d),
      str((d.spec.balancer as { type?: string })?.type),
      ['timeouts', 'retries', 'circuitBreaker', 'outlierDetection', 'rateLimit', 'healthCheck']
        .filter((k) => d.spec[k] !== undefined)
        .join(',') || '-',
    ],
  },
  HTTPRoute: {
    headers: ['NAME', 'PARENTS', 'RULES'],
    row: (d) => [
      d.metadata.name,
      ((d.spec.parentRefs as Array<{ name: string }>) ?? []).map((p) => p.name).join(','),
      String(((d.spec.rules as unknown[]) ?? []).length),
    ],
  },
  GRPCRoute: {
    headers: ['NAME', 'PARENTS', 'RULES'],
    row: (d) => [
      d.metadata.name,
      ((d.spec.parentRefs as Array<{ name: string }>) ?? []).map((p) => p.name).join(','),
      String(((d.spec.rules as unknown[]) ?? []).length),
    ],
  },
  AuthorizationPolicy: {
    headers: ['NAME', 'TARGET', 'ACTION', 'RULES'],
    row: (d) => [
      d.metadata.name,
      str((d.spec.targetRef as { name?: string })?.name),
      str(d.spec.action),
      String(((d.spec.rules as unknown[]) ?? []).length),
    ],
  },
  Revocation: {
    headers: ['NAME', 'NODE', 'REASON', 'REVOKED', 'CERTIFICATES', 'LAST EXPIRES'],
    row: (d) => {
      const certs = (d.spec.certificates as Array<{ notAfter: string }>) ?? [];
      return [
        d.metadata.name,
        str(d.spec.node),
        str(d.spec.reason),
        str(d.spec.revokedAt),
        String(certs.length),
        certs
          .map((c) => c.notAfter)
          .sort()
          .at(-1) ?? '-',
      ];
    },
  },
};

/** "Service/orders", or "Mesh" for the policy of every service; "(shadowed)" when not in force. */
function policyTarget(d: Doc): string {
  const ref = d.spec.targetRef as { kind?: string; name?: string } | undefined;
  const target = ref?.kind === 'Mesh' ? 'Mesh' : `Service/${str(ref?.name)}`;
  return d.status?.shadowedBy === undefined
    ? target
    : `${target} (shadowed by ${d.status.shadowedBy})`;
}

/** "45s", "3m", "5h" (rounded) for a span of milliseconds. */
function span(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}

function ago(ms: number): string {
  return ms === 0 ? 'never' : `${span(Date.now() - ms)} ago`;
}

function until(ms: number): string {
  if (ms === 0) return '-';
  return ms <= Date.now() ? `EXPIRED ${span(Date.now() - ms)} ago` : `in ${span(ms - Date.now())}`;
}

/** "healthy", or "healthy (stale, node last seen 42s ago)" while its node is silent. */
function workloadHealth(d: Doc): string {
  const status = d.status ?? {};
  const lastSeen = typeof status.lastSeen === 'string' ? Date.parse(status.lastSeen) : Number.NaN;
  if (status.stale === true)
    return `${str(d.spec.health)} (stale, node last seen ${Number.isNaN(lastSeen) ? '?' : ago(lastSeen)})`;
  return str(d.spec.health) + (status.reason ? ` (${status.reason})` : '');
}

/**
 * Services with their last minute's numbers in status.stats (so -o json/yaml carry them, and
 * the YAML still applies: status is ignored on apply). A control plane without GetStats (an
 * older one) leaves them out.
 */
async function withServiceStats(client: WeftAdminClient, docs: Doc[]): Promise<Doc[]> {
  let rows: StatsRow[];
  try {
    rows = (await client.getStats({ window: '1m' })).services;
  } catch (err) {
    const cause = err instanceof Error ? (err.cause as { code?: number } | undefined) : undefined;
    if (cause?.code === grpcStatus.UNIMPLEMENTED) return docs;
    throw err;
  }
  const byService = new Map(rows.map((r) => [r.dstService, r]));
  return docs.map((d) => {
    const stats = byService.get(d.metadata.name);
    return stats ? { ...d, status: { ...d.status, stats } } : d;
  });
}

function printNodes(nodes: NodeInfo[], output: string): void {
  if (output === 'json') {
    console.log(JSON.stringify(nodes, null, 2));
  } else if (output === 'yaml') {
    process.stdout.write(stringify(nodes));
  } else if (nodes.length === 0) {
    console.error('No nodes found.');
  } else {
    printNodeTable(nodes);
  }
}

function printNodeTable(nodes: NodeInfo[]): void {
  const rows = nodes.map((n) => [
    n.name,
    n.state,
    n.services.join(',') || '-',
    n.addresses.join(',') || '-',
    n.agentVersion || '-',
    n.ackedVersion > 0 ? `v${n.ackedVersion}` : '-',
    ago(n.lastSeenUnixMs),
    until(n.certNotAfterUnixMs),
    n.hostFacts?.os || '-',
    n.hostFacts?.kernel || '-',
    n.hostFacts?.cpus ? String(n.hostFacts.cpus) : '-',
    formatBytes(n.hostFacts?.memoryBytes ?? 0),
    n.workloads.map((w) => `${w.service}:${w.port}(${w.health})`).join(',') || '-',
  ]);
  console.log(
    table(
      [
        'NAME',
        'STATE',
        'SERVICES',
        'ADDRESSES',
        'VERSION',
        'SYNC',
        'LAST SEEN',
        'CERT EXPIRES',
        'OS',
        'KERNEL',
        'CPUS',
        'MEMORY',
        'WORKLOADS',
      ],
      rows,
    ),
  );
}

function printResources(kind: ResourceKind, docs: Doc[], output: string, single: boolean): void {
  if (output === 'json') {
    console.log(JSON.stringify(single ? docs[0] : docs, null, 2));
  } else if (output === 'yaml') {
    process.stdout.write(docs.map((d) => stringify(d)).join('---\n'));
  } else if (docs.length === 0) {
    console.error(`No ${kindPlural(kind)} found.`);
  } else {
    console.log(table(COLUMNS[kind].headers, docs.map(COLUMNS[kind].row)));
  }
}

export function registerGet(program: Command): void {
  withAdminOptions(
    program
      .command('get')
      .description(
        'show resources: mesh, services (svc), workloads, trafficpolicies (tp), httproutes, grpcroutes, authorizationpolicies (authz), revocations, nodes',
      )
      .argument('<kind>', 'a kind, case-insensitive, singular, plural or short')
      .argument('[name]', 'one resource; default all of the kind')
      .option('-o, --output <format>', 'table, yaml or json', 'table'),
  ).action(
    async (
      kindArg: string,
      name: string | undefined,
      opts: { output: string; server?: string; credentials?: string },
    ) => {
      if (!['table', 'yaml', 'json'].includes(opts.output)) {
        throw new WeftError('WEFT_E_USAGE', `-o: "${opts.output}" is not one of table, yaml, json`);
      }
      const isNodes = /^(node|nodes|no)$/i.test(kindArg);
      const kind = isNodes ? undefined : resolveKind(kindArg);
      if (!isNodes && kind === undefined) {
        throw new WeftError(
          'WEFT_E_USAGE',
          `unknown kind "${kindArg}"; try mesh, services, workloads, trafficpolicies, httproutes, grpcroutes, authorizationpolicies or nodes`,
        );
      }
      const client = WeftAdminClient.open(adminOptionsFrom(opts));
      try {
        if (kind === undefined) {
          const nodes = (await client.listNodes()).filter(
            (n) => name === undefined || n.name === name,
          );
          if (name !== undefined && nodes.length === 0)
            throw new WeftError('WEFT_E_NOT_FOUND', `node "${name}" not found`);
          return printNodes(nodes, opts.output);
        }
        let docs = (await client.get(kind, name ?? '')).map((r) => JSON.parse(r.json) as Doc);
        if (kind === 'Service') docs = await withServiceStats(client, docs);
        printResources(kind, docs, opts.output, name !== undefined);
      } finally {
        client.close();
      }
    },
  );
}
