// What the store keeps about a joined host (/nodes/<name>): where it is, which services it may
// serve, and every certificate the CA issued to it that has not expired yet (so that deleting
// the node can revoke each of them by serial).
import type { HostFacts } from '../../api/stats-messages.js';

export interface NodeRecord {
  name: string;
  spiffeId: string;
  addresses: string[];
  zone: string;
  joinedAtMs: number;
  /** The token it joined with (last join). */
  tokenId: string;
  /** The lease its Workloads hang on: they go when the node stops heart-beating. */
  lease?: string;
  /** Expiry of its newest node certificate. */
  certNotAfterMs: number;
  /** The services it may serve, sorted: from its token, then `weft node allow|disallow`. */
  services?: string[];
  /** Certificates issued to it and not yet expired, oldest first. */
  certs?: IssuedCert[];
  /** What its agent said it runs (Hello), last time it opened a sync stream. */
  agentVersion?: string;
  /** What the host is (OS, kernel, CPUs, memory), as its agent last reported (join, sync). */
  hostFacts?: HostFacts;
  hostFactsAtMs?: number;
}

export interface IssuedCert {
  /** Canonical serial (see canonicalSerial). */
  serial: string;
  notAfterMs: number;
  kind: 'node' | 'workload';
  /** For workload certificates: the service. */
  service?: string;
}

/** The node's certificates still valid at `now`. */
export function liveCerts(record: NodeRecord, now: number): IssuedCert[] {
  return (record.certs ?? []).filter((c) => c.notAfterMs > now);
}

/** The record with one more issued certificate, expired ones pruned. */
export function withIssued(record: NodeRecord, cert: IssuedCert, now: number): NodeRecord {
  return { ...record, certs: [...liveCerts(record, now), cert] };
}

/** The services a node may serve (none recorded: none). */
export function allowedServices(record: NodeRecord): readonly string[] {
  return record.services ?? [];
}
