// What an operator (and a leaving node) changes about nodes: removing one (`weft delete node`,
// or the node's own Leave) takes its record, workloads and unused tokens away and revokes every
// certificate it holds, in one store transaction; `weft node allow|disallow` changes the
// services it may serve (disallowing one also removes its workloads of it and revokes its
// certificates for it). The revocations are followed at once by this control plane's own gRPC
// port, and by every agent through the sync stream.
import type {
  DeleteNodeResponse,
  NodeInfo,
  NodeWorkload,
  SetNodeServicesResponse,
} from '../../api/messages.js';
import type { RevocationReason, Workload } from '../../api/resources/index.js';
import { isDnsLabel } from '../../api/spiffe.js';
import type { HostFacts } from '../../api/stats-messages.js';
import { WeftError } from '../../errors.js';
import { invalidRequest } from '../refusal.js';
import { keptHostFacts, sameHostFacts } from '../stats/host-facts.js';
import { kindPrefix, NODES_PREFIX, nodeKey, resourceKey, TOKENS_PREFIX } from '../store/keys.js';
import type { Store, StoreCompare, StoreOp } from '../store/store.js';
import type { NodeLiveness } from '../sync/node-liveness.js';
import { nodeUnknown, workloadsOfNode } from './identity-service.js';
import { liveCerts, type NodeRecord } from './node-record.js';
import { changeServices } from './placement.js';
import { revocationDocument } from './revocation.js';
import type { RevocationList } from './revocation-list.js';
import type { TokenRecord } from './tokens.js';

const MAX_ATTEMPTS = 8;

export interface NodeAdminDeps {
  store: Store;
  revocations: RevocationList;
  liveness: NodeLiveness;
}

const notFound = (node: string): WeftError =>
  new WeftError('WEFT_E_NOT_FOUND', `node "${node}" not found (see weft get nodes)`);

function checkServices(names: readonly string[]): void {
  const bad = names.find((s) => !isDnsLabel(s));
  if (bad !== undefined) {
    throw invalidRequest(
      'service_invalid',
      `service "${bad}" is not a valid service name (a DNS label: lowercase letters, digits and "-")`,
    );
  }
}

export class NodeAdmin {
  constructor(private readonly deps: NodeAdminDeps) {}

  /**
   * Removes `node` and revokes its certificates. `reason` "left" is the node's own call (an
   * unknown node is then a refusal, not "not found").
   */
  async removeNode(
    node: string,
    reason: Extract<RevocationReason, 'deleted' | 'left'>,
  ): Promise<DeleteNodeResponse> {
    const { store } = this.deps;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const entry = await store.get<NodeRecord>(nodeKey(node));
      if (entry === undefined) throw reason === 'left' ? nodeUnknown(node) : notFound(node);
      const workloads = await workloadsOfNode(store, node);
      const tokens = (await store.list<TokenRecord>(TOKENS_PREFIX)).entries.filter(
        (t) => t.value.node === node && t.value.usedAtMs === undefined,
      );
      const now = Date.now();
      const certs = liveCerts(entry.value, now);
      const revocation = revocationDocument(node, reason, certs, now, { attempt });
      const compares: StoreCompare[] = [{ key: entry.key, modRevision: entry.modRevision }];
      const ops: StoreOp[] = [{ type: 'delete', key: entry.key }];
      for (const e of [...workloads, ...tokens]) {
        compares.push({ key: e.key, modRevision: e.modRevision });
        ops.push({ type: 'delete', key: e.key });
      }
      if (revocation !== undefined) {
        const key = resourceKey('Revocation', revocation.metadata.name);
        compares.push({ key, modRevision: 0 });
        ops.push({ type: 'put', key, value: revocation });
      }
      if (!(await store.txn({ compares, ops })).succeeded) continue;
      if (revocation !== undefined) this.deps.revocations.add(revocation);
      // Its workloads are gone already; the lease has nothing left to hold.
      if (entry.value.lease !== undefined)
        await store.revokeLease(entry.value.lease).catch(() => undefined);
      return {
        revokedCertificates: certs.length,
        workloadsRemoved: workloads.length,
        tokensRemoved: tokens.length,
      };
    }
    throw new WeftError(
      'WEFT_E_STORE',
      `node ${node} kept changing while being removed; try again`,
    );
  }

  /** `weft node allow|disallow`: the services `node` may serve after the change. */
  async setServices(
    node: string,
    allow: readonly string[],
    disallow: readonly string[],
  ): Promise<SetNodeServicesResponse> {
    checkServices([...allow, ...disallow]);
    const both = allow.find((s) => disallow.includes(s));
    if (both !== undefined) {
      throw invalidRequest(
        'service_invalid',
        `service "${both}" is both allowed and disallowed in one request`,
      );
    }
    const { store } = this.deps;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const entry = await store.get<NodeRecord>(nodeKey(node));
      if (entry === undefined) throw notFound(node);
      const now = Date.now();
      const gone = new Set(disallow);
      const workloads = (await workloadsOfNode(store, node)).filter((w) =>
        gone.has(w.value.spec.service),
      );
      const live = liveCerts(entry.value, now);
      const revoked = live.filter((c) => c.kind === 'workload' && gone.has(c.service ?? ''));
      const services = changeServices(entry.value.services ?? [], allow, disallow);
      const next: NodeRecord = {
        ...entry.value,
        services,
        certs: live.filter((c) => !revoked.includes(c)),
      };
      const compares: StoreCompare[] = [{ key: entry.key, modRevision: entry.modRevision }];
      const ops: StoreOp[] = [{ type: 'put', key: entry.key, value: next }];
      for (const w of workloads) {
        compares.push({ key: w.key, modRevision: w.modRevision });
        ops.push({ type: 'delete', key: w.key });
      }
      const revocation = revocationDocument(node, 'disallowed', revoked, now, {
        services: [...disallow].sort(),
        attempt,
      });
      if (revocation !== undefined) {
        const key = resourceKey('Revocation', revocation.metadata.name);
        compares.push({ key, modRevision: 0 });
        ops.push({ type: 'put', key, value: revocation });
      }
      if (!(await store.txn({ compares, ops })).succeeded) continue;
      if (revocation !== undefined) this.deps.revocations.add(revocation);
      return {
        services,
        workloadsRemoved: workloads.length,
        revokedCertificates: revoked.length,
      };
    }
    throw new WeftError('WEFT_E_STORE', `node ${node} kept changing; try again`);
  }

  /** Keeps the agent version a node reports (written only when it changes: an upgrade). */
  async noteAgentVersion(node: string, version: string): Promise<void> {
    if (version === '') return;
    const entry = await this.deps.store.get<NodeRecord>(nodeKey(node));
    if (entry === undefined || entry.value.agentVersion === version) return;
    // A conflict is harmless: the next Hello writes it again.
    await this.deps.store.put(
      nodeKey(node),
      { ...entry.value, agentVersion: version },
      { prevModRevision: entry.modRevision },
    );
  }

  /** Keeps the host facts a node reports (written only when they change). */
  async noteHostFacts(node: string, reported: Partial<HostFacts>): Promise<void> {
    const facts = keptHostFacts(reported);
    if (facts === undefined) return;
    const entry = await this.deps.store.get<NodeRecord>(nodeKey(node));
    if (entry === undefined || sameHostFacts(entry.value.hostFacts, facts)) return;
    // A conflict is harmless: the next stream sends them again.
    await this.deps.store.put(
      nodeKey(node),
      { ...entry.value, hostFacts: facts, hostFactsAtMs: Date.now() },
      { prevModRevision: entry.modRevision },
    );
  }

  /** Every node as `weft get nodes` shows it. */
  async list(): Promise<NodeInfo[]> {
    const { store, liveness } = this.deps;
    const { entries } = await store.list<NodeRecord>(NODES_PREFIX);
    const workloads = new Map<string, NodeWorkload[]>();
    for (const { value: w } of (await store.list<Workload>(kindPrefix('Workload'))).entries) {
      const list = workloads.get(w.spec.node) ?? [];
      list.push({
        name: w.metadata.name,
        service: w.spec.service,
        address: w.spec.address,
        port: w.spec.port,
        health: w.spec.health,
      });
      workloads.set(w.spec.node, list);
    }
    return entries.map(({ value: n }) => {
      const live = liveness.get(n.name);
      return {
        name: n.name,
        spiffeId: n.spiffeId,
        addresses: n.addresses,
        lastHeartbeatUnixMs: live?.lastHeartbeatMs ?? 0,
        ackedVersion: live?.ackedVersion ?? 0,
        state: (live?.connections ?? 0) > 0 ? 'connected' : 'disconnected',
        lastNack: live?.lastNack ?? '',
        services: n.services ?? [],
        agentVersion: n.agentVersion ?? '',
        certNotAfterUnixMs: n.certNotAfterMs,
        lastSeenUnixMs: live === undefined ? 0 : live.lastSeenMs,
        joinedUnixMs: n.joinedAtMs,
        workloads: workloads.get(n.name) ?? [],
        hostFacts: n.hostFacts ?? null,
        hostFactsUnixMs: n.hostFactsAtMs ?? 0,
      };
    });
  }
}
