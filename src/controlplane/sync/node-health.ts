// Workload health as the control plane sees it: heartbeats carry each workload's health (a
// change is written once, and syncs to every agent). A sweeper marks the workloads of a node
// silent for workloadStaleAfter as stale (their health stays the node's last report: silence
// is not a failure, see silence.ts) and removes them after workloadRemoveAfter. Silence counts
// from this control plane's start at the earliest, so a restart never judges agents that are
// still reconnecting. The node's store lease (a little longer than workloadRemoveAfter) is the
// backstop that removes them even when no control plane is left to sweep.
import type { Logger } from 'pino';
import type { WorkloadHealth } from '../../api/messages.js';
import type { ControlPlaneConfig } from '../config.js';
import type { NodeRecord } from '../identity/node-record.js';
import type { TokenRecord } from '../identity/tokens.js';
import type { ControlPlaneMetrics } from '../metrics.js';
import { nodeKey, resourceKey, TOKENS_PREFIX } from '../store/keys.js';
import type { Store, StoreCompare, StoreOp } from '../store/store.js';
import type { NodeLiveness } from './node-liveness.js';
import { afterHeartbeat, judgeSilence, markedStale } from './silence.js';
import type { SyncHub } from './sync-hub.js';

/** Expired tokens (and their used markers) are kept this long, then deleted. */
const TOKEN_RETENTION_MS = 3_600_000;
const TOKEN_SWEEP_EVERY_MS = 60_000;
/** A lease is renewed at most this often per node (each renewal is a call to etcd). */
const KEEPALIVE_EVERY_MS = 1_000;

export interface NodeHealthDeps {
  store: Store;
  hub: SyncHub;
  liveness: NodeLiveness;
  config: ControlPlaneConfig;
  metrics: ControlPlaneMetrics;
  log: Logger;
  /** The clock lease renewals are spaced by (tests drive it). */
  now?: () => number;
}

/** The workload lease outlives workloadRemoveAfter so that the sweeper, which logs, goes first. */
export function workloadLeaseTtl(config: ControlPlaneConfig): number {
  return Math.round(config.workloadRemoveAfter * 1.2) + 1_000;
}

export class NodeHealth {
  private readonly deps: NodeHealthDeps;
  private timer: NodeJS.Timeout | undefined;
  private lastTokenSweep = 0;
  private readonly lastKeepAlive = new Map<string, number>();
  /** The lease each node's workloads hang on, as last read from its record. */
  private readonly leases = new Map<string, string>();
  private sweeping = false;

  constructor(deps: NodeHealthDeps) {
    this.deps = deps;
  }

  start(): void {
    const every = Math.min(
      1_000,
      Math.max(50, Math.floor(this.deps.config.workloadStaleAfter / 4)),
    );
    this.timer = setInterval(() => {
      if (this.sweeping) return;
      this.sweeping = true;
      this.sweep()
        .catch((err: unknown) => this.deps.log.warn({ err }, 'workload sweep failed; retrying'))
        .finally(() => {
          this.sweeping = false;
        });
    }, every);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }

  /** A heartbeat from `node`: it is alive, and these are its workloads' health. */
  async heartbeat(node: string, reported: readonly WorkloadHealth[]): Promise<void> {
    const { liveness, hub, store } = this.deps;
    liveness.seen(node, true);
    await this.keepLease(node);
    const byName = new Map(reported.map((w) => [w.name, w.health]));
    const compares: StoreCompare[] = [];
    const ops: StoreOp[] = [];
    let wereStale = 0;
    for (const [name, entry] of hub.workloadsOf(node)) {
      const local = name.startsWith(`${node}-`) ? name.slice(node.length + 1) : name;
      const next = afterHeartbeat(entry.value, byName.get(local) ?? byName.get(name));
      if (next === undefined) continue;
      if (entry.value.status !== undefined) wereStale++;
      compares.push({ key: entry.key, modRevision: entry.modRevision });
      ops.push({ type: 'put', key: entry.key, value: next, lease: entry.lease });
    }
    if (ops.length === 0) return;
    // A conflict means the workloads changed under us (a re-registration): the next
    // heartbeat compares again.
    const txn = await store.txn({ compares, ops });
    if (txn.succeeded && wereStale > 0)
      this.deps.log.info(
        { node, workloads: wereStale },
        'node is heard from again: workloads fresh',
      );
  }

  private async keepLease(node: string): Promise<void> {
    const now = (this.deps.now ?? Date.now)();
    if (now - (this.lastKeepAlive.get(node) ?? 0) < KEEPALIVE_EVERY_MS) return;
    this.lastKeepAlive.set(node, now);
    // The node's lease is remembered: reading its record at every renewal cost one more etcd
    // call per node a second (bench scenario 6). A node gets a new lease only once its old one
    // is gone (identity-service nodeLease, node removal), so a renewal that finds the remembered
    // lease gone reads the record again.
    const known = this.leases.get(node);
    if (known !== undefined && (await this.deps.store.keepAlive(known))) return;
    const record = await this.deps.store.get<NodeRecord>(nodeKey(node));
    const lease = record?.value.lease;
    if (lease === undefined) {
      this.leases.delete(node);
      return;
    }
    this.leases.set(node, lease);
    if (lease !== known) await this.deps.store.keepAlive(lease);
  }

  /** One pass: mark silent nodes' workloads stale, remove long-silent ones, drop old tokens. */
  async sweep(now = Date.now()): Promise<void> {
    const { hub, liveness, config } = this.deps;
    for (const node of hub.nodesWithWorkloads()) {
      let lastSeen = liveness.lastSeen(node);
      let verdict = judgeSilence(now - lastSeen, config);
      if (verdict !== 'fresh') {
        // Silent here, maybe not elsewhere: another replica sharing the store may hear it (its
        // heartbeats keep the node's lease alive there). Asked only of nodes silent here, and
        // remembered, so a node on another replica costs one lookup per workloadStaleAfter.
        const elsewhere = await this.lastKeptAlive(node, now);
        if (elsewhere !== undefined && elsewhere > lastSeen) {
          liveness.heardElsewhere(node, elsewhere);
          lastSeen = elsewhere;
          verdict = judgeSilence(now - lastSeen, config);
        }
      }
      if (verdict === 'remove') await this.remove(node, now - lastSeen);
      else if (verdict === 'stale') await this.markStale(node, lastSeen, now - lastSeen);
    }
    if (now - this.lastTokenSweep >= TOKEN_SWEEP_EVERY_MS) {
      this.lastTokenSweep = now;
      await this.dropOldTokens(now);
    }
  }

  /** When the node's lease was last kept alive (by any replica), if it has one. */
  private async lastKeptAlive(node: string, now: number): Promise<number | undefined> {
    const { store } = this.deps;
    const lease = (await store.get<NodeRecord>(nodeKey(node)))?.value.lease;
    if (lease === undefined) return undefined;
    const left = await store.leaseTimeToLive(lease);
    return left === undefined ? undefined : now - (left.ttlMs - left.remainingMs);
  }

  private async markStale(node: string, lastSeen: number, silentMs: number): Promise<void> {
    const compares: StoreCompare[] = [];
    const ops: StoreOp[] = [];
    for (const entry of this.deps.hub.workloadsOf(node).values()) {
      const next = markedStale(entry.value, lastSeen);
      if (next === undefined) continue;
      compares.push({ key: entry.key, modRevision: entry.modRevision });
      ops.push({ type: 'put', key: entry.key, value: next, lease: entry.lease });
    }
    if (ops.length === 0) return;
    const txn = await this.deps.store.txn({ compares, ops });
    if (!txn.succeeded) return;
    this.deps.metrics.workloadsMarkedStale.inc(ops.length);
    this.deps.log.warn(
      { node, silentMs, workloads: ops.length },
      'node is silent: its workloads are marked stale and keep their last reported health',
    );
  }

  private async remove(node: string, silentMs: number): Promise<void> {
    const entries = [...this.deps.hub.workloadsOf(node).values()];
    const txn = await this.deps.store.txn({
      compares: entries.map((e) => ({ key: e.key, modRevision: e.modRevision })),
      ops: entries.map((e) => ({
        type: 'delete' as const,
        key: resourceKey('Workload', e.value.metadata.name),
      })),
    });
    if (!txn.succeeded) return;
    this.deps.metrics.workloadsRemoved.inc(entries.length);
    this.deps.log.warn(
      { node, silentMs, workloads: entries.length },
      'node stayed silent: its workloads are removed',
    );
  }

  private async dropOldTokens(now: number): Promise<void> {
    const { entries } = await this.deps.store.list<TokenRecord>(TOKENS_PREFIX);
    const old = entries.filter((e) => e.value.expiresAtMs + TOKEN_RETENTION_MS < now);
    if (old.length === 0) return;
    await this.deps.store.txn({
      compares: old.map((e) => ({ key: e.key, modRevision: e.modRevision })),
      ops: old.map((e) => ({ type: 'delete' as const, key: e.key })),
    });
  }
}
