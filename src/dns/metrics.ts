// Prometheus metrics of the DNS server, on the registry the agent serves (none: no-ops).
// The `type` label is bounded to common record types so that odd queries cannot grow the
// number of series without end.
import type { Registry } from 'prom-client';
import { Counter, Histogram } from '../telemetry/prom.js';

/** How a query ended: a mesh answer (NOERROR with or without records), a mesh NXDOMAIN,
 * relayed from an upstream, SERVFAIL from us, or FORMERR for a packet that does not parse. */
export type QueryResult = 'mesh' | 'nxdomain' | 'forwarded' | 'servfail' | 'formerr';

/** How one upstream attempt ended. */
export type UpstreamOutcome = 'answer' | 'timeout' | 'error';

export interface DnsMetrics {
  query(type: string, result: QueryResult): void;
  upstream(upstream: string, outcome: UpstreamOutcome, seconds: number): void;
}

const TYPES = new Set([
  'A',
  'AAAA',
  'ANY',
  'CAA',
  'CNAME',
  'DNSKEY',
  'DS',
  'HTTPS',
  'MX',
  'NS',
  'PTR',
  'SOA',
  'SRV',
  'SVCB',
  'TXT',
]);

/** A record type as a label value: common types by name, everything else OTHER. */
export function typeLabel(type: string | undefined): string {
  if (type === undefined) return 'NONE';
  // dns-packet names types it does not know UNKNOWN_<n>: HTTPS (65) and SVCB (64) among them.
  if (type === 'UNKNOWN_65') return 'HTTPS';
  if (type === 'UNKNOWN_64') return 'SVCB';
  return TYPES.has(type) ? type : 'OTHER';
}

const QUERIES = 'weft_dns_queries_total';
const UPSTREAM = 'weft_dns_upstream_duration_seconds';

export function createDnsMetrics(registry?: Registry): DnsMetrics {
  if (!registry) return { query() {}, upstream() {} };
  // Another server on the same registry (a restart in-process) reuses the same metrics.
  const queries =
    (registry.getSingleMetric(QUERIES) as Counter<'type' | 'result'> | undefined) ??
    new Counter({
      name: QUERIES,
      help: 'DNS queries answered, by record type and result (mesh, nxdomain, forwarded, servfail, formerr)',
      labelNames: ['type', 'result'],
      registers: [registry],
    });
  const upstream =
    (registry.getSingleMetric(UPSTREAM) as Histogram<'upstream' | 'outcome'> | undefined) ??
    new Histogram({
      name: UPSTREAM,
      help: 'Time of each attempt at an upstream nameserver, by upstream and outcome (answer, timeout, error)',
      labelNames: ['upstream', 'outcome'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });
  return {
    query(type, result) {
      queries.inc({ type: typeLabel(type), result });
    },
    upstream(label, outcome, seconds) {
      upstream.observe({ upstream: label, outcome }, seconds);
    },
  };
}
