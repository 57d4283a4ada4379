// The control plane, assembled in start-up order: data directory -> store -> CA -> its own
// certificates (server, admin) -> sync view -> services -> gRPC (15012) and HTTP (15014).
// stop() undoes it in reverse; nothing acknowledged is lost across a stop and start.
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import type { Server as HttpServer } from 'node:http';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type Logger, pino } from 'pino';
import { REPLICA_STOPPING } from '../api/grpc-errors.js';
import type { CreateTokenRequest, CreateTokenResponse } from '../api/messages.js';
import { loadProto } from '../api/proto.js';
import { WeftError } from '../errors.js';
import type { CertificateAuthority } from './ca/certificate-authority.js';
import { loadCa } from './ca/load-ca.js';
import {
  defaultAdvertise,
  ensureAdminCredentials,
  issueServerCertificate,
  SERVER_CERT_TTL_MS,
} from './ca/local-credentials.js';
import type { ControlPlaneConfig } from './config.js';
import { DashboardAuth } from './dashboard/dashboard-auth.js';
import { DashboardHttp } from './dashboard/dashboard-http.js';
import { overviewSource } from './dashboard/overview-source.js';
import { meshTraffic } from './dashboard/overview-traffic.js';
import { adminHandlers, createToken } from './grpc/admin-handlers.js';
import { identityHandlers } from './grpc/identity-handlers.js';
import { WeftServerCredentials } from './grpc/server-credentials.js';
import { SyncStreams, syncHandlers, syncServiceDefinition } from './grpc/sync-handler.js';
import { startHttpServer } from './http/http-server.js';
import { IdentityService } from './identity/identity-service.js';
import { NodeAdmin } from './identity/node-admin.js';
import { migrateNodeServices } from './identity/placement-migration.js';
import { RevocationList } from './identity/revocation-list.js';
import { type TokenRecord, tokenState } from './identity/tokens.js';
import { ControlPlaneMetrics } from './metrics.js';
import { Refusal } from './refusal.js';
import { ResourceRegistry } from './registry/resource-registry.js';
import { ReplicaDirectory, replicaAddress } from './replicas/replica-directory.js';
import { agentReports } from './stats/get-stats.js';
import { StatsBook } from './stats/stats-book.js';
import { StatsShare } from './stats/stats-share.js';
import { EtcdStore } from './store/etcd-store.js';
import { FileStore } from './store/file-store.js';
import { TOKENS_PREFIX } from './store/keys.js';
import type { Store } from './store/store.js';
import { FullSnapshotGate } from './sync/full-snapshot-gate.js';
import { NodeHealth } from './sync/node-health.js';
import { NodeLiveness } from './sync/node-liveness.js';
import { SyncHub } from './sync/sync-hub.js';
import { TapBroker } from './tap/tap-broker.js';
import { TapPeers } from './tap/tap-peers.js';

export interface ControlPlaneOptions {
  config: ControlPlaneConfig;
  /** Default: pino to stdout at config.logLevel. */
  log?: Logger;
  /** Register Node's default process metrics (default true; tests with several control planes
   * in one process may turn it off). */
  defaultMetrics?: boolean;
}

const SERVER_CERT_CHECK_MS = 3_600_000;
/** How long a stopping replica waits for its agents to read "move" before it cuts connections. */
const STREAM_FLUSH_MS = 1_000;

const replicaStopping = (): Refusal =>
  new Refusal(
    REPLICA_STOPPING,
    'this control plane replica is stopping: connect to another replica',
    grpc.status.UNAVAILABLE,
    'WEFT_E_UNAVAILABLE',
  );
/**
 * Sent to the agents of a replica that lost etcd: it can no longer tell them of changes, nor
 * renew what they hold, so they move now (as for a stopping replica) to one that has etcd.
 * While etcd stays away this replica refuses new streams with WEFT_E_STORE and no such reason,
 * so an agent that finds every replica without etcd waits its backoff between tries (serving
 * its last snapshot) instead of hopping around the replicas.
 */
const storeLost = (problem: string): Refusal =>
  new Refusal(
    REPLICA_STOPPING,
    `this control plane replica lost its store (${problem}): connect to another replica`,
    grpc.status.UNAVAILABLE,
    'WEFT_E_STORE',
  );

/**
 * The largest message the gRPC port takes: an apply is at most 4 MiB of JSON (see
 * api/resources/limits.ts), a registration at most 1,024 small workloads; anything larger is
 * refused before it is read into memory. Snapshots go the other way (agents' receive limit).
 */
const MAX_RECEIVE_BYTES = 8 * 1024 * 1024;

function bindHost(listen: string): string {
  return listen.includes(':') ? `[${listen}]` : listen;
}

/** An address clients on this host can use for a wildcard listen address. */
function localHost(listen: string): string {
  if (listen === '0.0.0.0') return '127.0.0.1';
  if (listen === '::') return '[::1]';
  return bindHost(listen);
}

export class ControlPlane {
  readonly config: ControlPlaneConfig;
  readonly dataDir: string;
  readonly trustDomain: string;
  readonly adminCredentialsDir: string;
  readonly caPin: string;
  readonly trustBundlePem: string;
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly metrics: ControlPlaneMetrics;
  private readonly log: Logger;
  private readonly parts: Parts;
  private stopping: Promise<void> | undefined;

  private constructor(init: {
    config: ControlPlaneConfig;
    log: Logger;
    adminCredentialsDir: string;
    ca: CertificateAuthority;
    grpcPort: number;
    httpPort: number;
    metrics: ControlPlaneMetrics;
    parts: Parts;
  }) {
    this.config = init.config;
    this.dataDir = init.config.dataDir;
    this.trustDomain = init.config.trustDomain;
    this.adminCredentialsDir = init.adminCredentialsDir;
    this.caPin = init.ca.pin;
    this.trustBundlePem = init.ca.trustBundlePem;
    this.grpcPort = init.grpcPort;
    this.httpPort = init.httpPort;
    this.metrics = init.metrics;
    this.log = init.log;
    this.parts = init.parts;
  }

  /** "127.0.0.1:15012" for a wildcard listen address, else the listen address. */
  get grpcAddress(): string {
    return `${localHost(this.config.listen)}:${this.grpcPort}`;
  }

  get httpUrl(): string {
    return `http://${localHost(this.config.listen)}:${this.httpPort}`;
  }

  static async start(options: ControlPlaneOptions): Promise<ControlPlane> {
    const config = options.config;
    const log = options.log ?? pino({ name: 'weft-controlplane', level: config.logLevel });
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    chmodSync(config.dataDir, 0o700);
    const store = await openStore(config);
    const parts: Parts = { store, streams: new SyncStreams() };
    try {
      return await ControlPlane.assemble(config, log, options, parts);
    } catch (err) {
      await teardown(parts, log);
      throw err;
    }
  }

  private static async assemble(
    config: ControlPlaneConfig,
    log: Logger,
    options: ControlPlaneOptions,
    parts: Parts,
  ): Promise<ControlPlane> {
    const { store } = parts;
    const ca = await loadCa(config, config.dataDir, store, log);
    const advertise = config.advertise ?? defaultAdvertise();
    const adminCredentialsDir = await ensureAdminCredentials(
      ca,
      config.trustDomain,
      config.dataDir,
    );
    const serverCert = await issueServerCertificate(ca, config.trustDomain, advertise);

    await migrateNodeServices(store, log);
    const revocations = await RevocationList.start(store, log);
    parts.revocations = revocations;
    const liveness = new NodeLiveness();
    const proto = loadProto();
    const sync = syncServiceDefinition(proto.Sync.service);
    let hub: SyncHub | undefined;
    const fullSnapshots = new FullSnapshotGate();
    const metrics = new ControlPlaneMetrics(
      {
        syncVersion: () => hub?.version ?? 0,
        storeRevision: () => store.revision(),
        ackedVersions: () => liveness.ackedVersions(),
        connectedAgents: () => liveness.connectedCount(),
        fullSnapshots: () => fullSnapshots.load,
        outstandingTokens: async () => {
          const now = Date.now();
          const { entries } = await store.list<TokenRecord>(TOKENS_PREFIX);
          return entries.filter((e) => tokenState(e.value, now) === 'unused').length;
        },
      },
      { defaultMetrics: options.defaultMetrics },
    );
    hub = await SyncHub.start({
      store,
      trustBundlePem: ca.trustBundlePem,
      coalesceMs: config.syncCoalesce,
      encode: sync.encode,
      log,
    });
    parts.hub = hub;
    const health = new NodeHealth({ store, hub, liveness, config, metrics, log });
    parts.health = health;
    health.start();

    const registry = new ResourceRegistry(store, { trustDomain: config.trustDomain });
    const identity = new IdentityService({ store, ca, config, metrics, revocations });
    const nodes = new NodeAdmin({ store, revocations, liveness });
    // The agents' stats reports; shared through the store only when replicas share it (etcd).
    const stats = new StatsShare({
      book: new StatsBook(),
      log,
      ...(config.store.type === 'file' ? {} : { store }),
    });
    const streams = parts.streams;
    const ctx = { metrics, log };
    // Replicas sharing etcd register there, so that each can ask the others for their agents.
    const replicas = config.store.type === 'file' ? undefined : new ReplicaDirectory(store, log);
    // `weft tap`: admins' taps, started on agents through their sync streams (the peers' too).
    const taps = new TapBroker({
      ...ctx,
      trustDomain: config.trustDomain,
      store,
      streams,
      ...(replicas !== undefined ? { peers: new TapPeers(replicas, adminCredentialsDir) } : {}),
    });
    parts.taps = taps;
    const server = new grpc.Server({
      'grpc.max_receive_message_length': MAX_RECEIVE_BYTES,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    });
    parts.grpc = server;
    server.addService(
      proto.Identity.service,
      identityHandlers({
        ...ctx,
        identity,
        nodes,
        revocations,
        streams,
        liveness,
        trustDomain: config.trustDomain,
        onJoined: () => metrics.joins.inc(),
      }),
    );
    server.addService(
      sync.definition,
      syncHandlers({
        ...ctx,
        hub,
        liveness,
        health,
        fullSnapshots,
        trustDomain: config.trustDomain,
        store,
        revocations,
        streams,
        onAgentVersion: (node, version) => nodes.noteAgentVersion(node, version),
        reports: agentReports(stats, nodes, log),
        taps,
      }),
    );
    const dashboardAuth = new DashboardAuth();
    let httpPort = 0; // known once the HTTP port is bound, below: logins are made after that
    server.addService(proto.Admin.service, {
      ...adminHandlers({
        ...ctx,
        store,
        registry,
        nodes,
        streams,
        config,
        caPin: ca.pin,
        stats,
        dashboardLogin: () => {
          const { token, expiresAtMs } = dashboardAuth.issueLogin();
          return { token, expiresUnixMs: expiresAtMs, httpPort };
        },
      }),
      Tap: taps.handler,
    });
    const credentials = new WeftServerCredentials({
      keyPem: serverCert.keyPem,
      certificatePem: serverCert.certificatePem,
      caPem: ca.trustBundlePem,
    });
    const grpcPort = await bind(
      server,
      `${bindHost(config.listen)}:${config.grpcPort}`,
      credentials,
    );
    if (replicas !== undefined) {
      await replicas.start(replicaAddress(config.listen, advertise, grpcPort));
      parts.replicas = replicas;
    }
    parts.storeHealthOff = store.health?.onChange((problem) => {
      if (problem === undefined) {
        log.info('the store answers again: ready, accepting agents and changes');
        return;
      }
      log.warn(
        { problem, agents: liveness.connectedCount() },
        'the store is unreachable: not ready, refusing changes, sending agents to another replica',
      );
      parts.streams.endAll(storeLost(problem));
    });
    parts.renewTimer = renewServerCertificate(
      ca,
      config,
      advertise,
      credentials,
      serverCert.notAfter,
      log,
    );

    const http = await startHttpServer({
      host: config.listen,
      port: config.httpPort,
      registry: metrics.registry,
      dashboard: new DashboardHttp({
        auth: dashboardAuth,
        log,
        overview: overviewSource({
          registry,
          nodes,
          traffic: () => meshTraffic(stats),
        }),
      }),
      notReady: async () => {
        if (parts.stopping) return 'stopping';
        // A store with its own health (etcd) is judged by it: probes in a row, not one read.
        if (store.health !== undefined) return store.health.problem();
        try {
          await store.revision(); // throws once the store failed a write
          return undefined;
        } catch (err) {
          return `store: ${(err as Error).message}`;
        }
      },
    });
    parts.http = http.server;
    httpPort = http.port;
    const cp = new ControlPlane({
      config,
      log,
      adminCredentialsDir,
      ca,
      grpcPort,
      httpPort: http.port,
      metrics,
      parts,
    });
    log.info(
      {
        // What is bound (a wildcard stays one) and the names agents may use for it.
        listen: {
          grpc: `${bindHost(config.listen)}:${grpcPort}`,
          http: `${bindHost(config.listen)}:${http.port}`,
        },
        advertise,
        dataDir: config.dataDir,
        trustDomain: config.trustDomain,
        caPin: ca.pin,
        adminCredentials: adminCredentialsDir,
      },
      'control plane ready',
    );
    return cp;
  }

  /** A one-time join token for one node (ttlSeconds 0: the configured default). */
  createToken(request: CreateTokenRequest): Promise<CreateTokenResponse> {
    return createToken(
      { store: this.parts.store, config: this.config, metrics: this.metrics, caPin: this.caPin },
      request,
    );
  }

  /** The store behind this control plane (tests inspect it). */
  get store(): Store {
    return this.parts.store;
  }

  stop(): Promise<void> {
    this.stopping ??= teardown(this.parts, this.log);
    return this.stopping;
  }
}

/** The embedded store in the data directory, or etcd (shared by every replica). */
function openStore(config: ControlPlaneConfig): Promise<Store> {
  const store = config.store;
  const fileStoreDir = join(config.dataDir, 'store');
  if (store.type === 'file') return FileStore.open({ dir: fileStoreDir });
  if (existsSync(join(fileStoreDir, 'state.json'))) {
    // Its resources, nodes and VIPs would be left behind, not moved: refused rather than lost.
    return Promise.reject(
      new WeftError(
        'WEFT_E_CONFIG',
        `${fileStoreDir} holds this control plane's state in the embedded store: on etcd it would start without it. Move it into etcd with \`weft controlplane migrate --from ${config.dataDir} --to etcd ...\`, then move ${fileStoreDir} away (or use another --data-dir); or keep --store file`,
      ),
    );
  }
  return EtcdStore.open({
    endpoints: store.endpoints,
    prefix: store.prefix,
    caFile: store.caFile,
    certFile: store.certFile,
    keyFile: store.keyFile,
  });
}

interface Parts {
  store: Store;
  streams: SyncStreams;
  taps?: TapBroker;
  replicas?: ReplicaDirectory;
  revocations?: RevocationList;
  hub?: SyncHub;
  health?: NodeHealth;
  grpc?: grpc.Server;
  http?: HttpServer;
  renewTimer?: NodeJS.Timeout;
  storeHealthOff?: () => void;
  stopping?: boolean;
}

function bind(
  server: grpc.Server,
  address: string,
  credentials: grpc.ServerCredentials,
): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (err, port) => {
      if (err !== null)
        reject(new WeftError('WEFT_E_CONFIG', `cannot listen on ${address}: ${err.message}`));
      else resolve(port);
    });
  });
}

/** Re-issues the server certificate at half-life and swaps it in without a restart. */
function renewServerCertificate(
  ca: CertificateAuthority,
  config: ControlPlaneConfig,
  advertise: string[],
  credentials: WeftServerCredentials,
  notAfter: Date,
  log: Logger,
): NodeJS.Timeout {
  let expires = notAfter.getTime();
  const timer = setInterval(() => {
    if (expires - Date.now() > SERVER_CERT_TTL_MS / 2) return;
    issueServerCertificate(ca, config.trustDomain, advertise).then(
      (cert) => {
        credentials.update({
          keyPem: cert.keyPem,
          certificatePem: cert.certificatePem,
          caPem: ca.trustBundlePem,
        });
        expires = cert.notAfter.getTime();
        log.info({ notAfter: cert.notAfter.toISOString() }, 'server certificate renewed');
      },
      (err: unknown) => log.error({ err }, 'cannot renew the server certificate'),
    );
  }, SERVER_CERT_CHECK_MS);
  timer.unref();
  return timer;
}

/** A graceful gRPC shutdown (statuses sent are flushed), cut short after `ms`. */
function shutdownWithin(server: grpc.Server, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, ms);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function teardown(parts: Parts, log: Logger): Promise<void> {
  parts.stopping = true;
  // Peers stop asking this replica for taps (its lease is revoked); not waited for before the
  // agents are told to move, which must not hang on a slow etcd.
  const leaving = parts.replicas?.stop();
  parts.storeHealthOff?.();
  if (parts.renewTimer !== undefined) clearInterval(parts.renewTimer);
  parts.health?.stop();
  parts.hub?.stop();
  parts.revocations?.stop();
  // Agents read this status as "this replica is going away": they reconnect to another replica
  // at once instead of after their backoff. The wait lets the statuses reach them before the
  // connections are cut; open sync streams would keep a graceful shutdown waiting forever.
  parts.streams.endAll(replicaStopping());
  parts.taps?.endAll();
  if (parts.grpc !== undefined) await shutdownWithin(parts.grpc, STREAM_FLUSH_MS);
  if (parts.http !== undefined) {
    const http = parts.http;
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
  }
  await leaving;
  await parts.store.close();
  log.info('control plane stopped');
}
