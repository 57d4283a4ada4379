// The control plane's Prometheus metrics (served on :15014/metrics). Each control plane has its
// own registry, so several can run in one process (tests).
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface MetricsSources {
  /** Current sync version (the store revision of the last change agents need). */
  syncVersion(): number;
  storeRevision(): Promise<number>;
  /** Acked version of every known node. */
  ackedVersions(): number[];
  connectedAgents(): number;
  /** Full snapshots being written, and streams waiting for a slot to get theirs. */
  fullSnapshots(): { active: number; waiting: number };
  outstandingTokens(): Promise<number>;
}

export class ControlPlaneMetrics {
  readonly registry = new Registry();
  readonly certificatesIssued: Counter<'type'>;
  readonly refusals: Counter<'method' | 'reason'>;
  readonly tokensCreated: Counter;
  readonly joins: Counter;
  readonly syncPushes: Counter<'type'>;
  readonly syncPushBytes: Counter;
  readonly syncAcks: Counter;
  readonly syncNacks: Counter;
  readonly syncLatency: Histogram;
  readonly workloadsMarkedStale: Counter;
  readonly workloadsRemoved: Counter;

  constructor(sources: MetricsSources, options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics !== false)
      collectDefaultMetrics({ register: this.registry, prefix: 'weft_controlplane_' });
    this.certificatesIssued = new Counter({
      name: 'weft_controlplane_certificates_issued_total',
      help: 'Certificates signed, by type (node, workload)',
      labelNames: ['type'],
      registers,
    });
    this.refusals = new Counter({
      name: 'weft_controlplane_refusals_total',
      help: 'Requests refused, by gRPC method and reason (token_used, spiffe_id_mismatch, ...)',
      labelNames: ['method', 'reason'],
      registers,
    });
    this.tokensCreated = new Counter({
      name: 'weft_controlplane_tokens_created_total',
      help: 'Join tokens created',
      registers,
    });
    this.joins = new Counter({
      name: 'weft_controlplane_joins_total',
      help: 'Nodes joined with a token',
      registers,
    });
    this.syncPushes = new Counter({
      name: 'weft_controlplane_sync_pushes_total',
      help: 'Messages sent on sync streams, by type (full, delta)',
      labelNames: ['type'],
      registers,
    });
    this.syncPushBytes = new Counter({
      name: 'weft_controlplane_sync_push_bytes_total',
      help: 'Bytes sent on sync streams',
      registers,
    });
    this.syncAcks = new Counter({
      name: 'weft_controlplane_sync_acks_total',
      help: 'Versions acknowledged by agents',
      registers,
    });
    this.syncNacks = new Counter({
      name: 'weft_controlplane_sync_nacks_total',
      help: 'Versions rejected by agents',
      registers,
    });
    this.syncLatency = new Histogram({
      name: 'weft_controlplane_sync_latency_seconds',
      help: 'From a change committed in the store to its push being written to the sync streams',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.workloadsMarkedStale = new Counter({
      name: 'weft_controlplane_workloads_marked_stale_total',
      help: 'Workloads marked stale because their node went silent (their health is kept)',
      registers,
    });
    this.workloadsRemoved = new Counter({
      name: 'weft_controlplane_workloads_removed_total',
      help: 'Workloads removed because their node stayed silent',
      registers,
    });
    new Gauge({
      name: 'weft_controlplane_connected_agents',
      help: 'Agents with an open sync stream',
      registers,
      collect() {
        this.set(sources.connectedAgents());
      },
    });
    new Gauge({
      name: 'weft_controlplane_sync_full_snapshots',
      help: 'Full snapshots being written (state=sending) or waiting for a slot (state=waiting)',
      labelNames: ['state'],
      registers,
      collect() {
        const { active, waiting } = sources.fullSnapshots();
        this.set({ state: 'sending' }, active);
        this.set({ state: 'waiting' }, waiting);
      },
    });
    new Gauge({
      name: 'weft_controlplane_sync_version',
      help: 'The version agents are brought to (store revision of the last relevant change)',
      registers,
      collect() {
        this.set(sources.syncVersion());
      },
    });
    new Gauge({
      name: 'weft_controlplane_agents_current',
      help: 'Agents that acknowledged the current sync version',
      registers,
      collect() {
        const v = sources.syncVersion();
        this.set(sources.ackedVersions().filter((a) => a >= v).length);
      },
    });
    new Gauge({
      name: 'weft_controlplane_store_revision',
      help: 'The store revision',
      registers,
      async collect() {
        this.set(await sources.storeRevision());
      },
    });
    new Gauge({
      name: 'weft_controlplane_tokens_outstanding',
      help: 'Join tokens neither used nor expired',
      registers,
      async collect() {
        this.set(await sources.outstandingTokens());
      },
    });
  }
}
