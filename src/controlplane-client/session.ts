// The agent's side of the control plane, assembled: join once, then keep one connection with
// the node certificate, keep identities current over it, and follow the Sync stream. When the
// control plane is unreachable it serves the last-known-good snapshot and certificates from the
// data directory (fail static) and reconnects with jittered backoff. The data path reads the
// current state from here through getters and events; nothing here is on the per-byte path.
// Workload registrations the control plane refuses (the node may not serve the service) are
// reported and retried every refusedRetryMs, so that `weft node allow` takes effect without a
// restart; a node the control plane removed (its certificates revoked) joins again when the
// config holds a new token.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { AgentConfig } from '../agent/config.js';
import { fromGrpcError, REPLICA_STOPPING, refusalReason } from '../api/grpc-errors.js';
import type {
  RefusedWorkload,
  RegisterWorkloadsResponse,
  SyncRequest,
  SyncResponse,
} from '../api/messages.js';
import type { IdentityClient } from '../api/proto.js';
import type { HostFacts, StatsReport } from '../api/stats-messages.js';
import { controlPlaneCredentials } from '../api/tls.js';
import { WEFT_VERSION } from '../api/weft-version.js';
import { describeError, isWeftError, WeftError } from '../errors.js';
import { Backoff, type BackoffOptions, defaultBackoff } from './backoff.js';
import { Certificates } from './certificates.js';
import { openClients } from './clients.js';
import { policyHealthChecks } from './health-check.js';
import type { ListeningQuery } from './health-probes.js';
import { type Identity, IdentityStore, type NodeRecord } from './identity-store.js';
import { upkeep } from './identity-upkeep.js';
import { JoinKey, join } from './join.js';
import { joinFailure } from './join-failure.js';
import { hostAddresses, type LocalWorkload, resolveWorkloads } from './local-workloads.js';
import { changedResources, type MeshView, meshView, nextMeshView } from './mesh-view.js';
import { type ResolveAll, resolveCandidates } from './replica-candidates.js';
import {
  chooseReplica,
  orderReplicas,
  type ReplicaCandidate,
  type ReplicaOutcome,
  replicaOutcome,
} from './replica-choice.js';
import { snapshotRules } from './resource-rules.js';
import { applyDelta, type Snapshot, type SnapshotRules, type SyncDelta } from './snapshot.js';
import { SnapshotCache } from './snapshot-cache.js';
import { openSyncStream, type StreamEnd, type SyncStream, type Verdict } from './sync-stream.js';
import { type WorkloadCheckStatus, WorkloadHealth } from './workload-health.js';

/** connected: following the control plane; stale: serving a cached snapshot; starting: nothing yet. */
export type SyncState = 'starting' | 'connected' | 'stale';

export interface SessionOptions {
  /** Reconnect backoff (default 250 ms base, 10 s cap, full jitter). */
  backoff?: BackoffOptions;
  /** Sent in Hello, for the control plane's node list. */
  agentVersion?: string;
  /** Deadline of each unary call (join, register, sign), ms. */
  callTimeoutMs?: number;
  /** Validation of resources; the shared schemas by default. */
  rules?: SnapshotRules;
  /** The workloads' listening check (SocketOps.listening); default: the native addon. */
  listening?: ListeningQuery;
  /** How often refused workload registrations are tried again (default 30 s). */
  refusedRetryMs?: number;
  /** Resolves a control plane DNS name to all its addresses (default: the system's). */
  resolve?: ResolveAll;
  /** What the host is, sent at join and on every new stream (`weft get nodes`). */
  hostFacts?: () => Promise<HostFacts | undefined>;
}

/** Refusals that mean the control plane no longer has this node (its certificates revoked). */
const REMOVED = new Set([
  'certificate_revoked',
  'node_unknown',
  'node_deleted',
  'node_left',
  'node_replaced',
]);

export interface SessionStatus {
  state: SyncState;
  /** Version of the snapshot held (0: none). */
  version: number;
  /** When the held snapshot was accepted (from the control plane, or earlier, if cached). */
  lastUpdateUnixMs: number | undefined;
  /** Last message received from the control plane. */
  lastContactUnixMs: number | undefined;
  /** Since when the agent has not had a working stream (undefined while connected). */
  disconnectedSinceUnixMs: number | undefined;
  /** The replica connected to (or being tried): host:port, "name (ip:port)" when resolved. */
  controlPlane: string;
  /** The replicas the config names (controlPlane.addresses). */
  controlPlanes: string[];
  node: { hostname: string; spiffeId: string; trustDomain: string } | undefined;
  nacks: number;
  lastNack: { version: number; reason: string; atUnixMs: number } | undefined;
  /** The last failure to reach or use the control plane, cleared by success. */
  lastError: string | undefined;
  workloads: ({
    service: string;
    address: string;
    port: number;
    /** Why the control plane refused its registration, and what to do. */
    refused?: string;
  } & WorkloadCheckStatus)[];
}

export interface SessionEvents {
  state: [state: SyncState];
  /** A new snapshot was accepted (also emitted once for a cached one at start). */
  snapshot: [view: MeshView];
  /** A certificate was issued or renewed. */
  certificate: [identity: Identity];
  nack: [nack: { version: number; reason: string }];
  /** This host never joined and the control plane refused it for good: the session gave up. */
  refused: [err: WeftError];
  /** A control message on the sync stream (a tap start or stop), and how to answer on it. */
  control: [message: SyncResponse, send: (message: SyncRequest) => void];
  /** The sync stream ended: what its control messages started ends with it. */
  streamEnded: [];
}

interface Connection {
  client: IdentityClient;
  stream: SyncStream | undefined;
  /** Identity upkeep on this connection: running, asked to run again, asked to register. */
  upkeepRunning: boolean;
  upkeepAgain: boolean;
  register: boolean;
  /** Cancelled because the control plane removed this node (not a failure of its own). */
  removed?: boolean;
}

export class ControlPlaneSession extends EventEmitter<SessionEvents> {
  readonly certificates: Certificates;
  private readonly store: IdentityStore;
  private readonly cache: SnapshotCache;
  private readonly rules: SnapshotRules;
  private readonly backoff: Backoff;
  /** The key of a join in progress, the same for each attempt until one succeeds. */
  private readonly joinKey = new JoinKey();
  private readonly replicas: string[];
  /** The replica of the current (or last) attempt. */
  private replica: ReplicaCandidate;
  private workloadList: LocalWorkload[];
  private health: WorkloadHealth;
  private record: NodeRecord | undefined;
  private trustBundlePem = '';
  private current: Snapshot | undefined;
  private currentView: MeshView | undefined;
  /** The snapshot currentView was made from. */
  private viewSource: Snapshot | undefined;
  private syncState: SyncState = 'starting';
  private acceptedUnixMs: number | undefined;
  private lastContactUnixMs: number | undefined;
  private disconnectedSinceUnixMs: number | undefined = Date.now();
  private nacks = 0;
  private lastNack: SessionStatus['lastNack'];
  /** The current failure of each activity; cleared by its next success. */
  private readonly errors = new Map<'sync' | 'identity', string>();
  private conn: Connection | undefined;
  /** Local workloads whose registration the control plane refuses, by name. */
  private refusedWorkloads = new Map<string, RefusedWorkload>();
  /** The Workload resource names the last registration stored, comma-separated. */
  private registeredNames = '';
  /** Of those, the ones a snapshot has shown (a later snapshot without one means removed). */
  private readonly seenRegistered = new Set<string>();
  private retryTimer: NodeJS.Timeout | undefined;
  /** Set when the control plane says this node is gone: why. */
  private removed: string | undefined;
  private stopped = false;
  private refusedWith: WeftError | undefined;
  private readonly sleepers = new Set<() => void>();
  private loop: Promise<void> = Promise.resolve();

  constructor(
    private readonly config: AgentConfig,
    private readonly logger: Logger,
    private readonly options: SessionOptions = {},
  ) {
    super();
    if (config.controlPlane === undefined) {
      throw new WeftError(
        'WEFT_E_CONFIG',
        'controlPlane.address is not set: the agent has no control plane to join',
      );
    }
    this.replicas = config.controlPlane.addresses;
    this.replica = { dial: this.replicas[0]!, name: this.replicas[0]! };
    this.store = new IdentityStore(config.dataDir);
    this.cache = new SnapshotCache(config.dataDir);
    this.certificates = new Certificates(this.store);
    this.rules = options.rules ?? snapshotRules;
    this.backoff = new Backoff(options.backoff ?? defaultBackoff);
    this.workloadList = resolveWorkloads(config);
    this.health = this.newHealth();
  }

  // ---------------------------------------------------------------- what the agent reads

  get state(): SyncState {
    return this.syncState;
  }

  /** The snapshot held (fresh or cached), or undefined before the first one. */
  snapshot(): Snapshot | undefined {
    return this.current;
  }

  /** The snapshot as the data path wants it: services, endpoints, policies, trust bundle. */
  view(): MeshView | undefined {
    const current = this.current;
    if (current && this.currentView?.version !== current.version) {
      // From the view before, in proportion to what changed (10,000 endpoints register or go
      // stale a version at a time: a whole view each time was most of the master's garbage).
      const before = this.viewSource;
      this.currentView =
        before && this.currentView
          ? nextMeshView(
              this.currentView,
              current,
              changedResources(before.resources, current.resources),
            )
          : meshView(current);
      this.viewSource = current;
    }
    return this.currentView;
  }

  /** The trust bundle to verify peers with: the snapshot's, else the one from joining. */
  trustBundle(): string {
    return this.current?.trustBundlePem || this.trustBundlePem;
  }

  workloads(): readonly LocalWorkload[] {
    return this.workloadList;
  }

  /**
   * Sends a stats report on the live stream; false when there is none (the caller keeps the
   * counts for the next report, so an outage loses no request from the numbers).
   */
  sendStats(report: StatsReport): boolean {
    return this.conn?.stream?.send({ stats: report }) ?? false;
  }

  /** The host's facts changed: tells the control plane now (new streams send them too). */
  sendHostFacts(facts: HostFacts): void {
    this.conn?.stream?.send({ hostFacts: facts });
  }

  /** The host's facts, or undefined when they could not be read (never fatal). */
  private async hostFacts(): Promise<HostFacts | undefined> {
    try {
      return await this.options.hostFacts?.();
    } catch (err) {
      this.logger.warn({ err: describeError(err) }, 'host facts not read');
      return undefined;
    }
  }

  /** Why the session gave up joining (also emitted as 'refused'); undefined while it tries. */
  refusal(): WeftError | undefined {
    return this.refusedWith;
  }

  status(): SessionStatus {
    return {
      state: this.syncState,
      version: this.current?.version ?? 0,
      lastUpdateUnixMs: this.acceptedUnixMs,
      lastContactUnixMs: this.lastContactUnixMs,
      disconnectedSinceUnixMs: this.disconnectedSinceUnixMs,
      controlPlane:
        this.replica.dial === this.replica.name
          ? this.replica.dial
          : `${this.replica.name} (${this.replica.dial})`,
      controlPlanes: this.replicas,
      node: this.record
        ? {
            hostname: this.record.hostname,
            spiffeId: this.record.spiffeId,
            trustDomain: this.record.trustDomain,
          }
        : undefined,
      nacks: this.nacks,
      lastNack: this.lastNack,
      lastError: this.errors.get('sync') ?? this.errors.get('identity'),
      workloads: this.workloadStatus(),
    };
  }

  private workloadStatus(): SessionStatus['workloads'] {
    const checks = new Map(this.health.status().map((h) => [h.name, h]));
    return this.workloadList.map((w) => {
      const refused = this.refusedWorkloads.get(w.name);
      return {
        ...checks.get(w.name)!,
        service: w.service,
        address: w.address,
        port: w.port,
        ...(refused ? { refused: refused.message } : {}),
      };
    });
  }

  // ---------------------------------------------------------------- lifecycle

  /** Loads what the data directory holds, then connects in the background. */
  async start(): Promise<void> {
    await this.store.init();
    await this.loadCached();
    this.certificates.on('certificate', (identity) => this.emit('certificate', identity));
    this.certificates.on('due', () => this.kickUpkeep(false));
    this.watchHealth();
    this.loop = this.run();
  }

  /** Re-reads the workloads from a new config: re-registers them and fetches certificates. */
  updateWorkloads(config: Pick<AgentConfig, 'workloads' | 'addresses' | 'zone'>): void {
    this.workloadList = resolveWorkloads(config);
    this.health.stop();
    this.health = this.newHealth();
    this.watchHealth();
    this.kickUpkeep(true);
  }

  /**
   * Stops talking to the control plane. Workloads stay registered: a restarting agent should
   * not make its endpoints vanish fleet-wide; the control plane marks them unhealthy if the
   * heartbeats do not come back.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.health.stop();
    this.certificates.stop();
    this.conn?.stream?.cancel();
    for (const wake of this.sleepers) wake();
    await this.loop;
  }

  private async loadCached(): Promise<void> {
    const node = await this.store.loadNode();
    if (node) {
      this.record = node.record;
      this.trustBundlePem = node.trustBundlePem;
      this.certificates.adoptNode(node.identity);
    }
    for (const [service, identity] of await this.store.loadWorkloads()) {
      this.certificates.adoptService(service, identity);
    }
    const cached = await this.cache.load(this.rules);
    if (cached && 'error' in cached) {
      this.logger.warn({ err: cached.error }, 'ignoring the cached snapshot');
    } else if (cached) {
      this.current = cached.snapshot;
      this.acceptedUnixMs = cached.acceptedUnixMs;
      this.setState('stale');
      this.logger.info(
        { version: cached.snapshot.version },
        'serving the cached snapshot until the control plane answers',
      );
      this.emit('snapshot', this.view()!);
    }
  }

  private newHealth(): WorkloadHealth {
    return new WorkloadHealth(this.workloadList, {
      listening: this.options.listening,
      logger: this.logger,
    });
  }

  private watchHealth(): void {
    this.health.on('change', (name, health) => {
      this.logger.info({ workload: name, health }, 'workload health changed');
      this.conn?.stream?.heartbeatNow();
    });
    this.useHealthPolicies();
    this.health.start();
  }

  /** Services' TrafficPolicy.healthCheck choose their workloads' checks. */
  private useHealthPolicies(): void {
    const policies = this.view()?.policies.get('TrafficPolicy') ?? [];
    this.health.usePolicies(policyHealthChecks(policies));
  }

  // ---------------------------------------------------------------- connection loop

  private async run(): Promise<void> {
    let outcome: ReplicaOutcome | undefined;
    while (!this.stopped) {
      let end: StreamEnd = { received: 0 };
      let reason: string | undefined;
      try {
        await this.pickReplica(outcome);
        await this.ensureJoined();
        end = await this.runConnection();
        reason = refusalReason(end.error);
      } catch (err) {
        reason = refusalReason(err);
        this.noteError(err, 'sync');
      }
      if (this.refusedWith) {
        this.emit('refused', this.refusedWith);
        break;
      }
      if (this.stopped) break;
      outcome = replicaOutcome(end, reason, REPLICA_STOPPING);
      const healthy = end.received > 0;
      // A resync is the agent's own choice, the control plane is still there.
      if (outcome !== 'resync') this.setState(this.current ? 'stale' : 'starting');
      // A stream that delivered something was healthy: the next failure starts from the base.
      if (healthy) this.backoff.reset();
      // A replica that is stopping said so: the next one is dialed at once.
      if (outcome !== 'stopping') await this.sleep(this.backoff.next());
    }
  }

  /** Resolves the replicas now (DNS answers change) and picks the one to dial. */
  private async pickReplica(outcome: ReplicaOutcome | undefined): Promise<void> {
    const candidates = await resolveCandidates(this.replicas, this.options.resolve);
    const ordered = orderReplicas(candidates, this.config.hostname);
    const choice = chooseReplica(ordered, this.replica.dial, outcome);
    if (choice === undefined) return;
    if (choice.replica.dial !== this.replica.dial && outcome !== undefined)
      this.logger.info(
        { from: this.replica.dial, to: choice.replica.dial, why: outcome },
        'moving to another control plane replica',
      );
    this.replica = choice.replica;
  }

  private async ensureJoined(): Promise<void> {
    const node = this.certificates.node;
    const hostname = this.config.hostname;
    if (
      node &&
      this.removed === undefined &&
      this.record?.hostname === hostname &&
      node.info.notAfter.getTime() > Date.now()
    )
      return;
    const newToken = `put a new token from \`weft token create --node ${hostname}\` in controlPlane.token`;
    if (node && !this.config.controlPlane?.token) {
      const why =
        this.removed !== undefined
          ? this.removed
          : this.record?.hostname !== hostname
            ? `this host was joined as ${this.record?.hostname}`
            : 'this host has an expired node certificate';
      throw new WeftError('WEFT_E_DENIED', `${why}: ${newToken}`);
    }
    if (this.removed !== undefined) {
      try {
        await this.rejoin();
      } catch (err) {
        const e = describeError(err).replace(/^WEFT_E_\w+: /, '');
        throw new WeftError('WEFT_E_DENIED', `${this.removed}; joining again failed: ${e}`, {
          cause: err,
        });
      }
      return;
    }
    await this.rejoin();
  }

  private async rejoin(): Promise<void> {
    const hostname = this.config.hostname;
    const hadIdentity = this.certificates.node !== undefined;
    const cp = this.config.controlPlane!;
    const hostFacts = await this.hostFacts();
    const joined = await join(
      {
        address: this.replica.dial,
        token: cp.token,
        caPin: cp.caPin,
        caFile: cp.caFile,
        hostname,
        addresses: hostAddresses(this.config),
        zone: this.config.zone ?? '',
        timeoutMs: this.options.callTimeoutMs ?? 10_000,
        ...(hostFacts ? { hostFacts } : {}),
        joinKey: this.joinKey,
      },
      this.logger,
    ).catch((err: unknown) => {
      // Never joined, so nothing served depends on this session: a final refusal ends it, and
      // whoever waits for the agent hears the reason now instead of after a timeout. A host
      // that has an identity keeps retrying and keeps serving what it has (fail static).
      if (!hadIdentity && joinFailure(err) === 'refused' && err instanceof WeftError)
        this.refusedWith = err;
      throw err;
    });
    await this.store.saveNode(joined.record, joined.identity, joined.trustBundlePem);
    this.record = joined.record;
    this.trustBundlePem = joined.trustBundlePem;
    this.certificates.adoptNode(joined.identity);
    if (this.removed !== undefined) {
      // The workload certificates were revoked with the old node: new ones are needed.
      for (const service of this.certificates.serviceNames())
        await this.certificates.dropService(service);
      this.removed = undefined;
    }
    this.logger.info({ spiffeId: joined.record.spiffeId }, 'joined the mesh');
  }

  /** Notes a refusal that means this node is gone; true when it was one. */
  private noteRemoved(err: unknown): boolean {
    const reason = refusalReason(err);
    if (reason === undefined || !REMOVED.has(reason)) return false;
    const message = `this node was removed from the mesh (${fromGrpcError(err).message})`;
    if (this.removed === undefined)
      this.logger.error(
        { reason, err: message },
        'the control plane removed this node: joining again needs a new token',
      );
    this.removed = message;
    this.errors.set(
      'sync',
      `${message}: put a new token from \`weft token create --node ${this.config.hostname}\` in controlPlane.token`,
    );
    return true;
  }

  /** One connection: resolves when its stream ends, saying how. */
  private async runConnection(): Promise<StreamEnd> {
    const node = this.certificates.node!;
    const creds = controlPlaneCredentials(
      { caPem: this.trustBundle(), certPem: node.certPem, keyPem: node.keyPem },
      this.record!.trustDomain,
    );
    const clients = openClients(this.replica.dial, creds);
    const conn: Connection = {
      client: clients.identity,
      stream: undefined,
      upkeepRunning: false,
      upkeepAgain: false,
      register: false,
    };
    this.conn = conn;
    try {
      this.kickUpkeep(true);
      conn.stream = openSyncStream(
        clients.sync,
        {
          agentVersion: this.options.agentVersion ?? `weft-agent/${WEFT_VERSION}`,
          heartbeatIntervalMs: this.config.heartbeatIntervalMs,
        },
        {
          heldVersion: () => this.current?.version ?? 0,
          heartbeat: () => this.health.all(),
          apply: (delta) => this.apply(delta),
          control: (message, send) => this.emit('control', message, send),
        },
      );
      const stream = conn.stream;
      void this.hostFacts().then((facts) => {
        if (facts) stream.send({ hostFacts: facts });
      });
      const end = await conn.stream.done.finally(() => this.emit('streamEnded'));
      if (end.resync) this.logger.info({ reason: end.resync }, 'reconnecting to resynchronise');
      if (refusalReason(end.error) === REPLICA_STOPPING)
        this.logger.info({ replica: this.replica.dial }, 'the control plane replica is stopping');
      else if (end.error && !this.stopped && !conn.removed && !this.noteRemoved(end.error))
        this.noteError(
          fromGrpcError(end.error, `the control plane at ${this.replica.dial}`),
          'sync',
        );
      return end;
    } finally {
      this.conn = undefined;
      clients.close();
    }
  }

  // ---------------------------------------------------------------- applying snapshots

  private async apply(delta: SyncDelta): Promise<Verdict> {
    const now = Date.now();
    this.lastContactUnixMs = now;
    const result = applyDelta(this.current, delta, this.rules);
    if (!result.ok) return this.reject(delta.version, result.reason, result.resync ?? false);
    this.errors.delete('sync');
    if (result.unchanged) {
      // The control plane confirmed the version held: up to date, nothing to write.
      this.setState('connected');
      return { accepted: true };
    }
    try {
      // On disk before the Ack: an acknowledged version survives a crash of the agent.
      await this.cache.save(result.snapshot, now);
      await this.adoptTrustBundle(result.snapshot.trustBundlePem);
    } catch (err) {
      return this.reject(delta.version, describeError(err), false);
    }
    const previous = this.current?.version ?? 0;
    this.current = result.snapshot;
    this.acceptedUnixMs = now;
    this.logger.info({ version: delta.version, previous, full: delta.full }, 'snapshot accepted');
    this.setState('connected');
    this.emit('snapshot', this.view()!);
    this.useHealthPolicies();
    this.checkRegistered(result.snapshot);
    return { accepted: true };
  }

  private reject(version: number, reason: string, resync: boolean): Verdict {
    this.nacks += 1;
    this.lastNack = { version, reason, atUnixMs: Date.now() };
    this.logger.warn({ version, held: this.current?.version ?? 0, reason }, 'snapshot rejected');
    if (this.current) this.setState('connected');
    this.emit('nack', { version, reason });
    return { accepted: false, reason, resync };
  }

  // ---------------------------------------------------------------- identities

  /**
   * Runs identity upkeep on the live connection; kicks during a run coalesce into one more run.
   * Without a connection there is nothing to do: every new connection starts with a full run.
   */
  private kickUpkeep(register: boolean): void {
    const conn = this.conn;
    if (!conn) return;
    conn.register ||= register;
    if (conn.upkeepRunning) {
      conn.upkeepAgain = true;
      return;
    }
    conn.upkeepRunning = true;
    void this.upkeepLoop(conn).finally(() => {
      conn.upkeepRunning = false;
    });
  }

  private async upkeepLoop(conn: Connection): Promise<void> {
    const retry = new Backoff({ baseMs: 1_000, capMs: 30_000 });
    while (conn === this.conn && !this.stopped) {
      const register = conn.register;
      conn.register = false;
      conn.upkeepAgain = false;
      try {
        await upkeep(
          {
            client: conn.client,
            certs: this.certificates,
            workloads: this.workloadList,
            health: (name) => this.health.get(name),
            trustDomain: this.record!.trustDomain,
            timeoutMs: this.options.callTimeoutMs ?? 10_000,
            logger: this.logger,
            onTrustBundle: (pem) => this.adoptTrustBundle(pem),
            onRegistered: (res) => this.onRegistered(res),
            refused: () => new Set(this.refusedWorkloads.keys()),
          },
          register,
        );
        this.errors.delete('identity');
        if (!conn.upkeepAgain) return;
      } catch (err) {
        conn.register ||= register;
        if (conn !== this.conn) return;
        this.noteError(err, 'identity');
        if (this.noteRemoved(err)) {
          // Nothing more to do on this connection: the loop joins again, if it can.
          conn.removed = true;
          conn.stream?.cancel();
          return;
        }
        await this.sleep(Math.max(200, retry.next()));
      }
    }
  }

  /**
   * Registers again when a workload this agent registered, and saw in a snapshot, is gone from
   * a later one: the control plane removed it (`weft node disallow`, or after a silence), and
   * the answer to a new registration says which, and why.
   */
  private checkRegistered(snapshot: Snapshot): void {
    if (this.registeredNames === '' || !this.conn) return;
    let gone = false;
    for (const name of this.registeredNames.split(',')) {
      if (snapshot.resources.has(`Workload/${name}`)) this.seenRegistered.add(name);
      else if (this.seenRegistered.delete(name)) gone = true;
    }
    if (!gone) return;
    this.logger.info('a registered workload is gone from the control plane: registering again');
    this.kickUpkeep(true);
  }

  /**
   * What a registration stored and refused: logs each change (a workload newly refused, at
   * error with the fix; one accepted again, at info) and keeps trying the refused ones.
   */
  private onRegistered(res: RegisterWorkloadsResponse): void {
    const next = new Map(res.refused.map((r) => [r.name, r]));
    for (const [name, r] of next) {
      if (this.refusedWorkloads.get(name)?.message === r.message) continue;
      this.logger.error(
        { workload: name, service: r.service, reason: r.reason, err: r.message },
        'workload registration refused',
      );
    }
    for (const name of this.refusedWorkloads.keys()) {
      if (!next.has(name)) this.logger.info({ workload: name }, 'workload registration accepted');
    }
    this.refusedWorkloads = next;
    const names = res.names.join(',');
    for (const name of this.seenRegistered)
      if (!res.names.includes(name)) this.seenRegistered.delete(name);
    if (names !== this.registeredNames)
      this.logger.info({ workloads: res.names }, 'workloads registered');
    this.registeredNames = names;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (next.size > 0 && !this.stopped) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.kickUpkeep(true);
      }, this.options.refusedRetryMs ?? 30_000);
      this.retryTimer.unref();
    }
  }

  private async adoptTrustBundle(pem: string): Promise<void> {
    if (pem === this.trustBundlePem) return;
    await this.store.saveTrustBundle(pem);
    this.trustBundlePem = pem;
  }

  // ---------------------------------------------------------------- helpers

  private setState(state: SyncState): void {
    if (state === this.syncState) return;
    this.logger.info(
      { from: this.syncState, to: state, version: this.current?.version ?? 0 },
      'sync state',
    );
    this.syncState = state;
    if (state === 'connected') this.disconnectedSinceUnixMs = undefined;
    else this.disconnectedSinceUnixMs ??= Date.now();
    this.emit('state', state);
  }

  /**
   * Records a failure for status, and logs it when it differs from the last one of its
   * source: during an outage every reconnect fails the same way, and one line says so.
   */
  private noteError(err: unknown, source: 'sync' | 'identity'): void {
    // grpc-js ends connection errors with an empty "Resolution note: ".
    const message = describeError(err).replace(/\.? Resolution note: $/, '');
    const known = this.errors.get(source) === message;
    this.errors.set(source, message);
    // An unreachable control plane is reported by the sync loop already.
    if (known || (source === 'identity' && isWeftError(err, 'WEFT_E_UNAVAILABLE'))) return;
    this.logger.warn({ err: message, source }, 'control plane');
  }

  /** A wait that stop() cuts short. */
  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.sleepers.add(done);
    });
  }
}

/** Starts the agent's control plane session: loads the cache, then connects in the background. */
export async function startControlPlaneSession(
  config: AgentConfig,
  logger: Logger,
  options: SessionOptions = {},
): Promise<ControlPlaneSession> {
  const session = new ControlPlaneSession(config, logger, options);
  await session.start();
  return session;
}
