// The Identity service's decisions: join with a token scoped to one node, node certificate
// renewal, workload certificates (only for services the node may serve and has a workload
// of), and workload registration (the allowed ones stored, the others refused). Callers
// (src/controlplane/grpc) have already authenticated the node; every refusal here is a Refusal
// and nothing is granted or written when one is thrown. Each certificate issued is recorded on
// the node before it is handed out, so that removing the node can revoke it.
import { isIP } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { canonicalSerial } from '../../api/cert-serial.js';
import type {
  CertificateResponse,
  JoinRequest,
  JoinResponse,
  RefusedWorkload,
  RegisterWorkloadsRequest,
  WorkloadRegistration,
} from '../../api/messages.js';
import { validateResource, type Workload } from '../../api/resources/index.js';
import { isDnsLabel, nodeSpiffeId, serviceSpiffeId } from '../../api/spiffe.js';
import { WeftError } from '../../errors.js';
import type { CertificateAuthority, IssuedCertificate } from '../ca/certificate-authority.js';
import { verifyCsr } from '../ca/csr-check.js';
import type { ControlPlaneConfig } from '../config.js';
import type { ControlPlaneMetrics } from '../metrics.js';
import { failedPrecondition, invalidRequest, Refusal } from '../refusal.js';
import { canonicalJson } from '../registry/canonical-json.js';
import { keptHostFacts } from '../stats/host-facts.js';
import { kindPrefix, nodeKey, resourceKey, tokenKey } from '../store/keys.js';
import type { Store, StoreCompare, StoreEntry, StoreOp } from '../store/store.js';
import { workloadLeaseTtl } from '../sync/node-health.js';
import { decideJoin } from './join-decision.js';
import {
  allowedServices,
  type IssuedCert,
  liveCerts,
  type NodeRecord,
  withIssued,
} from './node-record.js';
import { MAX_WORKLOADS_PER_NODE, notAllowedMessage, placeWorkloads } from './placement.js';
import { csrDigest, earlierRedemption } from './redemption.js';
import { revocationDocument } from './revocation.js';
import type { RevocationList } from './revocation-list.js';
import { knownToken, type TokenRecord, usableToken } from './tokens.js';

export interface IdentityDeps {
  store: Store;
  ca: CertificateAuthority;
  config: ControlPlaneConfig;
  metrics: ControlPlaneMetrics;
  revocations: RevocationList;
}

export interface JoinOutcome {
  response: JoinResponse;
  /** The node this join replaced (a rebuilt host), if any. */
  replaced: NodeRecord | undefined;
}

export interface Registered {
  names: string[];
  refused: RefusedWorkload[];
}

const MAX_ATTEMPTS = 8;

/** The Workload entries registered by `node` (names are <node>-<name>; spec.node decides). */
export async function workloadsOfNode(store: Store, node: string): Promise<StoreEntry<Workload>[]> {
  const { entries } = await store.list<Workload>(`${kindPrefix('Workload')}${node}-`);
  return entries.filter((e) => e.value.spec.node === node);
}

/** The refusal for a call of a node the store does not know (deleted, or never joined). */
export function nodeUnknown(node: string): Refusal {
  return new Refusal(
    'node_unknown',
    `node ${node} is not joined to this control plane: join again with a new token`,
  );
}

const issuedCert = (
  issued: IssuedCertificate,
  kind: IssuedCert['kind'],
  service?: string,
): IssuedCert => ({
  serial: canonicalSerial(issued.serialNumber),
  notAfterMs: issued.notAfter.getTime(),
  kind,
  ...(service === undefined ? {} : { service }),
});

export class IdentityService {
  private readonly deps: IdentityDeps;

  constructor(deps: IdentityDeps) {
    this.deps = deps;
  }

  private get trustDomain(): string {
    return this.deps.config.trustDomain;
  }

  async join(req: JoinRequest): Promise<JoinOutcome> {
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
    const digest = csrDigest(req.csrPem ?? '');
    const again = await this.answerAgain(req.token ?? '', hostname, digest);
    if (again !== undefined) return again;
    const token = await usableToken(store, req.token ?? '');
    const existing = await store.get<NodeRecord>(nodeKey(hostname));
    const decision = decideJoin(token.value, hostname, existing?.value);
    const id = token.value.id;
    if (decision.outcome === 'wrong_node') {
      throw new Refusal(
        'token_wrong_node',
        `join token ${id} is for node ${decision.tokenNode}, not ${hostname}: create one for this host with \`weft token create --node ${hostname}\``,
      );
    }
    if (decision.outcome === 'node_exists') {
      const at = decision.existing.addresses.join(', ') || 'no address';
      throw failedPrecondition(
        'node_exists',
        `node ${hostname} already exists (joined at ${at}): for a rebuilt host create a token with \`weft token create --node ${hostname} --replace\`, or remove the node first with \`weft delete node ${hostname}\``,
      );
    }
    const spiffeId = nodeSpiffeId(this.trustDomain, hostname);
    const publicKey = await verifyCsr(req.csrPem ?? '', spiffeId);
    // Signed before the token is consumed, handed out only after: a failed write grants nothing.
    const issued = await ca.issue({ spiffeId, publicKey, ttlMs: config.nodeCertTtl });
    const now = Date.now();
    const record: NodeRecord = {
      name: hostname,
      spiffeId,
      addresses: req.addresses ?? [],
      zone: req.zone ?? '',
      joinedAtMs: now,
      tokenId: id,
      // A rebuilt host's workloads keep their lease: its agent registers them again at once.
      lease: existing?.value.lease,
      certNotAfterMs: issued.notAfter.getTime(),
      services: decision.services,
      certs: [issuedCert(issued, 'node')],
      ...hostFactsAt(req.hostFacts, now),
    };
    const used: TokenRecord = {
      ...token.value,
      usedAtMs: now,
      usedBy: hostname,
      usedFor: digest,
      usedCertificatePem: issued.certificatePem,
    };
    const ops: StoreOp[] = [
      { type: 'put', key: tokenKey(id), value: used },
      { type: 'put', key: nodeKey(hostname), value: record },
    ];
    // The replaced host's certificates are of no use to the new one: they are taken back.
    const revocation =
      decision.outcome === 'replace'
        ? revocationDocument(hostname, 'replaced', liveCerts(decision.previous, now), now)
        : undefined;
    const compares: StoreCompare[] = [
      { key: tokenKey(id), modRevision: token.modRevision },
      { key: nodeKey(hostname), modRevision: existing?.modRevision ?? 0 },
    ];
    if (revocation !== undefined) {
      const key = resourceKey('Revocation', revocation.metadata.name);
      compares.push({ key, modRevision: 0 });
      ops.push({ type: 'put', key, value: revocation });
    }
    const txn = await store.txn({ compares, ops });
    // Failed compares after a commit of this very request (etcd3 retried a Txn whose reply it
    // lost) mean it is done: it goes on as if the first reply had come.
    if (
      !txn.succeeded &&
      (await this.answerAgain(req.token ?? '', hostname, digest)) === undefined
    ) {
      // Someone else changed the token (or this node) first: most likely a racing join.
      await usableToken(store, req.token ?? '');
      // ABORTED, not a refusal an agent should give up on: a second attempt decides.
      throw new Refusal(
        'join_conflict',
        `node ${hostname} changed while joining; try again`,
        grpc.status.ABORTED,
        'WEFT_E_UNAVAILABLE',
      );
    }
    if (revocation !== undefined) this.deps.revocations.add(revocation);
    this.deps.metrics.certificatesIssued.inc({ type: 'node' });
    return {
      response: {
        certificatePem: issued.certificatePem,
        trustBundlePem: ca.trustBundlePem,
        trustDomain: this.trustDomain,
        spiffeId,
      },
      replaced: decision.outcome === 'replace' ? decision.previous : undefined,
    };
  }

  /** The answer a join already got with this token, host and CSR (see redemption.ts). */
  private async answerAgain(
    token: string,
    hostname: string,
    digest: string,
  ): Promise<JoinOutcome | undefined> {
    const entry = await knownToken(this.deps.store, token);
    if (entry.value.usedAtMs === undefined) return undefined;
    const node = (await this.deps.store.get<NodeRecord>(nodeKey(hostname)))?.value;
    const earlier = earlierRedemption(entry.value, hostname, digest, node);
    if (earlier.outcome !== 'answer-again') return undefined;
    return {
      response: {
        certificatePem: earlier.certificatePem,
        trustBundlePem: this.deps.ca.trustBundlePem,
        trustDomain: this.trustDomain,
        spiffeId: node!.spiffeId,
      },
      replaced: undefined,
    };
  }

  private async requireNodeRecord(node: string): Promise<StoreEntry<NodeRecord>> {
    const entry = await this.deps.store.get<NodeRecord>(nodeKey(node));
    if (entry === undefined) throw nodeUnknown(node);
    return entry;
  }

  /**
   * Records a certificate on the node (compare-and-swap, retried); refuses when the node went
   * away meanwhile, so that a certificate is never handed out unrecorded.
   */
  private async recordIssued(
    node: string,
    cert: IssuedCert,
    change: (record: NodeRecord) => NodeRecord = (r) => r,
  ): Promise<void> {
    const { store } = this.deps;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const entry = await this.requireNodeRecord(node);
      const next = change(withIssued(entry.value, cert, Date.now()));
      const txn = await store.put(nodeKey(node), next, { prevModRevision: entry.modRevision });
      if (txn.succeeded) return;
    }
    throw new WeftError(
      'WEFT_E_STORE',
      `node ${node} kept changing while a certificate was recorded; try again`,
    );
  }

  async renewNode(node: string, csrPem: string): Promise<CertificateResponse> {
    const { ca, config } = this.deps;
    await this.requireNodeRecord(node);
    const spiffeId = nodeSpiffeId(this.trustDomain, node);
    const publicKey = await verifyCsr(csrPem, spiffeId);
    const issued = await ca.issue({ spiffeId, publicKey, ttlMs: config.nodeCertTtl });
    await this.recordIssued(node, issuedCert(issued, 'node'), (r) => ({
      ...r,
      certNotAfterMs: issued.notAfter.getTime(),
    }));
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
    const record = await this.requireNodeRecord(node);
    if (!allowedServices(record.value).includes(service)) {
      throw new Refusal('service_not_allowed', notAllowedMessage(node, service));
    }
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
    await this.recordIssued(node, issuedCert(issued, 'workload', service));
    this.deps.metrics.certificatesIssued.inc({ type: 'workload' });
    return {
      certificatePem: issued.certificatePem,
      trustBundlePem: ca.trustBundlePem,
      spiffeId,
      notAfterUnixMs: issued.notAfter.getTime(),
    };
  }

  /**
   * Replaces the node's Workloads with the registrations of services it may serve; returns the
   * resource names stored and the registrations refused.
   */
  async registerWorkloads(node: string, req: RegisterWorkloadsRequest): Promise<Registered> {
    const registrations = req.workloads ?? [];
    if (registrations.length > MAX_WORKLOADS_PER_NODE) {
      throw invalidRequest(
        'too_many_workloads',
        `${registrations.length} workloads in one registration; a node may register at most ${MAX_WORKLOADS_PER_NODE}`,
      );
    }
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const lease = await this.nodeLease(node);
      // Read after the lease: the placement and the write below compare this very record, so a
      // concurrent `node disallow` or delete makes the write fail and the loop look again.
      const nodeEntry = await this.requireNodeRecord(node);
      const docs = this.workloadDocuments(nodeEntry.value, registrations);
      const placed = placeWorkloads(node, allowedServices(nodeEntry.value), docs);
      const stored = placed.accepted.map((d) => d.doc);
      if (await this.replaceWorkloads(nodeEntry, stored, lease))
        return { names: stored.map((d) => d.metadata.name), refused: placed.refused };
    }
    throw new WeftError(
      'WEFT_E_STORE',
      `the workloads of node ${node} kept changing while being registered; try again`,
    );
  }

  private workloadDocuments(
    node: NodeRecord,
    registrations: WorkloadRegistration[],
  ): Array<{ name: string; item: { service: string; doc: Workload } }> {
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
      const result = validateResource(doc, { allowInternal: true });
      if (!result.ok) throw invalidRequest('workload_invalid', `${where}: ${result.problems[0]}`);
      const workload = result.resource as Workload;
      return { name: local, item: { service: workload.spec.service, doc: workload } };
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

  private async replaceWorkloads(
    nodeEntry: StoreEntry<NodeRecord>,
    docs: Workload[],
    lease: string,
  ): Promise<boolean> {
    const { store } = this.deps;
    const node = nodeEntry.value.name;
    const existing = new Map(
      (await workloadsOfNode(store, node)).map((e) => [e.value.metadata.name, e]),
    );
    const compares: StoreCompare[] = [{ key: nodeEntry.key, modRevision: nodeEntry.modRevision }];
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
    if (ops.length === 0) {
      // Nothing to write; the node must still exist for the answer to mean anything.
      const now = await store.get(nodeEntry.key);
      return now?.modRevision === nodeEntry.modRevision;
    }
    return (await store.txn({ compares, ops })).succeeded;
  }
}

/** The join's host facts for the node record, when it carried any. */
function hostFactsAt(
  facts: JoinRequest['hostFacts'],
  now: number,
): Pick<NodeRecord, 'hostFacts' | 'hostFactsAtMs'> {
  const kept = keptHostFacts(facts);
  return kept ? { hostFacts: kept, hostFactsAtMs: now } : {};
}
