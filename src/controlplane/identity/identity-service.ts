// The Identity service's decisions: join with a one-time token, node certificate renewal,
// workload certificates (only for services with a workload on the calling node), and workload
// registration. Callers (src/controlplane/grpc) have already authenticated the node; every
// refusal here is a Refusal and nothing is granted or written when one is thrown.
import { isIP } from 'node:net';
import type {
  CertificateResponse,
  JoinRequest,
  JoinResponse,
  RegisterWorkloadsRequest,
  WorkloadRegistration,
} from '../../api/messages.js';
import { validateResource, type Workload } from '../../api/resources/index.js';
import { isDnsLabel, nodeSpiffeId, serviceSpiffeId } from '../../api/spiffe.js';
import { WeftError } from '../../errors.js';
import type { CertificateAuthority } from '../ca/certificate-authority.js';
import { verifyCsr } from '../ca/csr-check.js';
import type { ControlPlaneConfig } from '../config.js';
import type { ControlPlaneMetrics } from '../metrics.js';
import { invalidRequest, Refusal } from '../refusal.js';
import { canonicalJson } from '../registry/canonical-json.js';
import { kindPrefix, nodeKey, resourceKey, tokenKey } from '../store/keys.js';
import type { Store, StoreCompare, StoreEntry, StoreOp } from '../store/store.js';
import { workloadLeaseTtl } from '../sync/node-health.js';
import type { NodeRecord } from './node-record.js';
import { type TokenRecord, usableToken } from './tokens.js';

export interface IdentityDeps {
  store: Store;
  ca: CertificateAuthority;
  config: ControlPlaneConfig;
  metrics: ControlPlaneMetrics;
}

const MAX_ATTEMPTS = 8;

/** The Workload entries registered by `node` (names are <node>-<name>; spec.node decides). */
export async function workloadsOfNode(store: Store, node: string): Promise<StoreEntry<Workload>[]> {
  const { entries } = await store.list<Workload>(`${kindPrefix('Workload')}${node}-`);
  return entries.filter((e) => e.value.spec.node === node);
}

export class IdentityService {
  private readonly deps: IdentityDeps;

  constructor(deps: IdentityDeps) {
    this.deps = deps;
  }

  private get trustDomain(): string {
    return this.deps.config.trustDomain;
  }

  async join(req: JoinRequest): Promise<JoinResponse> {
    const { store, ca, config } = this.deps;
    const hostname = req.hostname ?? '';
    if (!isDnsLabel(hostname)) {
      throw invalidRequest(
        'hostname_invalid',
        `hostname "${hostname}" is not a DNS label (lowercase letters, digits and "-", at most 63)`,
      );
    }
    const badAddress = (req.addresses ?? []).find((a) => isIP(a) === 0);
    if (badAddress !== undefined) {
      throw invalidRequest(
        'address_invalid',
        `address "${badAddress}" is not an IPv4 or IPv6 address`,
      );
    }
    const token = await usableToken(store, req.token ?? '');
    const spiffeId = nodeSpiffeId(this.trustDomain, hostname);
    const publicKey = await verifyCsr(req.csrPem ?? '', spiffeId);
    // Signed before the token is consumed, handed out only after: a failed write grants nothing.
    const issued = await ca.issue({ spiffeId, publicKey, ttlMs: config.nodeCertTtl });
    const now = Date.now();
    const existing = await store.get<NodeRecord>(nodeKey(hostname));
    const record: NodeRecord = {
      name: hostname,
      spiffeId,
      addresses: req.addresses ?? [],
      zone: req.zone ?? '',
      joinedAtMs: now,
      tokenId: token.value.id,
      // Re-joining (a rebuilt host) replaces the certificate; its workloads keep their lease.
      lease: existing?.value.lease,
      certNotAfterMs: issued.notAfter.getTime(),
    };
    const used: TokenRecord = { ...token.value, usedAtMs: now, usedBy: hostname };
    const txn = await store.txn({
      compares: [
        { key: tokenKey(token.value.id), modRevision: token.modRevision },
        { key: nodeKey(hostname), modRevision: existing?.modRevision ?? 0 },
      ],
      ops: [
        { type: 'put', key: tokenKey(token.value.id), value: used },
        { type: 'put', key: nodeKey(hostname), value: record },
      ],
    });
    if (!txn.succeeded) {
      // Someone else changed the token (or this node) first: most likely a racing join.
      await usableToken(store, req.token ?? '');
      throw new Refusal('join_conflict', `node ${hostname} changed while joining; try again`);
    }
    this.deps.metrics.certificatesIssued.inc({ type: 'node' });
    return {
      certificatePem: issued.certificatePem,
      trustBundlePem: ca.trustBundlePem,
      trustDomain: this.trustDomain,
      spiffeId,
    };
  }

  private async requireNodeRecord(node: string): Promise<StoreEntry<NodeRecord>> {
    const entry = await this.deps.store.get<NodeRecord>(nodeKey(node));
    if (entry === undefined)
      throw new Refusal(
        'node_unknown',
        `node ${node} is not joined to this control plane: join again with a new token`,
      );
    return entry;
  }

  async renewNode(node: string, csrPem: string): Promise<CertificateResponse> {
    const { ca, config, store } = this.deps;
    const entry = await this.requireNodeRecord(node);
    const spiffeId = nodeSpiffeId(this.trustDomain, node);
    const publicKey = await verifyCsr(csrPem, spiffeId);
    const issued = await ca.issue({ spiffeId, publicKey, ttlMs: config.nodeCertTtl });
    await store.put(nodeKey(node), {
      ...entry.value,
      certNotAfterMs: issued.notAfter.getTime(),
    } satisfies NodeRecord);
    this.deps.metrics.certificatesIssued.inc({ type: 'node' });
    return {
      certificatePem: issued.certificatePem,
      trustBundlePem: ca.trustBundlePem,
      spiffeId,
      notAfterUnixMs: issued.notAfter.getTime(),
    };
  }

  async signWorkload(node: string, service: string, csrPem: string): Promise<CertificateResponse> {
    const { ca, config, store } = this.deps;
    if (!isDnsLabel(service))
      throw invalidRequest(
        'service_invalid',
        `service "${service}" is not a valid service name (a DNS label)`,
      );
    const onNode = (await workloadsOfNode(store, node)).some(
      (w) => w.value.spec.service === service,
    );
    if (!onNode) {
      throw new Refusal(
        'service_not_on_node',
        `no workload of service "${service}" is registered on node ${node}: a node gets certificates only for services it runs (register the workload first)`,
      );
    }
    const spiffeId = serviceSpiffeId(this.trustDomain, service);
    const publicKey = await verifyCsr(csrPem, spiffeId);
    const issued = await ca.issue({ spiffeId, publicKey, ttlMs: config.workloadCertTtl });
    this.deps.metrics.certificatesIssued.inc({ type: 'workload' });
    return {
      certificatePem: issued.certificatePem,
      trustBundlePem: ca.trustBundlePem,
      spiffeId,
      notAfterUnixMs: issued.notAfter.getTime(),
    };
  }

  /** Replaces the node's Workloads with `req.workloads`; returns the resource names. */
  async registerWorkloads(node: string, req: RegisterWorkloadsRequest): Promise<string[]> {
    const nodeEntry = await this.requireNodeRecord(node);
    const docs = this.workloadDocuments(nodeEntry.value, req.workloads ?? []);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const lease = await this.nodeLease(node);
      if (await this.replaceWorkloads(node, docs, lease)) return docs.map((d) => d.metadata.name);
    }
    throw new WeftError(
      'WEFT_E_STORE',
      `the workloads of node ${node} kept changing while being registered; try again`,
    );
  }

  private workloadDocuments(node: NodeRecord, registrations: WorkloadRegistration[]): Workload[] {
    const seen = new Set<string>();
    return registrations.map((reg, i) => {
      const local = reg.name || `${reg.service}-${reg.port}`;
      const name = `${node.name}-${local}`;
      const where = `workloads[${i}] (${local})`;
      if (seen.has(name))
        throw invalidRequest('workload_invalid', `${where}: name "${local}" is registered twice`);
      seen.add(name);
      const address = reg.address || node.addresses[0];
      if (address === undefined) {
        throw invalidRequest(
          'workload_invalid',
          `${where}: address is empty and the node joined without addresses`,
        );
      }
      const zone = reg.zone || node.zone;
      const doc = {
        apiVersion: 'weft/v1',
        kind: 'Workload',
        metadata: { name },
        spec: {
          service: reg.service,
          node: node.name,
          address,
          port: reg.port,
          health: reg.health || 'unknown',
          weight: reg.weight || 1,
          ...(zone ? { zone } : {}),
        },
      };
      const result = validateResource(doc, { allowWorkload: true });
      if (!result.ok) throw invalidRequest('workload_invalid', `${where}: ${result.problems[0]}`);
      return result.resource as Workload;
    });
  }

  /** The lease the node's workloads hang on: kept alive, or a new one recorded on the node. */
  private async nodeLease(node: string): Promise<string> {
    const { store, config } = this.deps;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const entry = await this.requireNodeRecord(node);
      const current = entry.value.lease;
      if (current !== undefined && (await store.keepAlive(current))) return current;
      const lease = await store.grantLease(workloadLeaseTtl(config));
      const txn = await store.put(nodeKey(node), { ...entry.value, lease } satisfies NodeRecord, {
        prevModRevision: entry.modRevision,
      });
      if (txn.succeeded) return lease;
      await store.revokeLease(lease);
    }
    throw new WeftError(
      'WEFT_E_STORE',
      `node ${node} kept changing while its lease was renewed; try again`,
    );
  }

  private async replaceWorkloads(node: string, docs: Workload[], lease: string): Promise<boolean> {
    const { store } = this.deps;
    const existing = new Map(
      (await workloadsOfNode(store, node)).map((e) => [e.value.metadata.name, e]),
    );
    const compares: StoreCompare[] = [];
    const ops: StoreOp[] = [];
    for (const doc of docs) {
      const key = resourceKey('Workload', doc.metadata.name);
      const old = existing.get(doc.metadata.name);
      existing.delete(doc.metadata.name);
      compares.push({ key, modRevision: old?.modRevision ?? 0 });
      if (
        old !== undefined &&
        old.lease === lease &&
        canonicalJson(old.value) === canonicalJson(doc)
      )
        continue;
      ops.push({ type: 'put', key, value: doc, lease });
    }
    for (const [name, old] of existing) {
      compares.push({ key: resourceKey('Workload', name), modRevision: old.modRevision });
      ops.push({ type: 'delete', key: resourceKey('Workload', name) });
    }
    if (ops.length === 0) return true;
    return (await store.txn({ compares, ops })).succeeded;
  }
}
