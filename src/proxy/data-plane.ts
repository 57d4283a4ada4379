// The data plane of one host, assembled: capture listeners (15001 outbound, 15006 inbound),
// the tunnel server (15008) and pool, DNS (15053), all fed from the control plane session's
// snapshot and certificates. Without a session it is a plain relay: every destination is
// passed through, as the capture-only setup of a host that has not joined yet.

import { once } from 'node:events';
import type { Server, Socket } from 'node:net';
import type { Registry } from 'prom-client';
import type { AgentConfig } from '../agent/config.js';
import { listenFds } from '../agent/systemd.js';
import { parseSpiffeId } from '../api/spiffe.js';
import type { Identity } from '../controlplane-client/identity-store.js';
import type { MeshView } from '../controlplane-client/mesh-view.js';
import type { DnsServer } from '../dns/index.js';
import { describeError, WeftError } from '../errors.js';
import type { SocketOps } from '../native/socket-ops.js';
import type { Logger } from '../sys/logger.js';
import { Gauge } from '../telemetry/prom.js';
import type { RecentDenials } from '../telemetry/recent-denials.js';
import type { RecentErrors } from '../telemetry/recent-errors.js';
import type { TapHub } from '../telemetry/tap-hub.js';
import type { Tracer } from '../telemetry/tracer.js';
import { createCaptureServer } from './capture-listener.js';
import { LocalConnector } from './endpoint/connect-local.js';
import { checkReplyPath } from './endpoint/reply-path-check.js';
import { createInboundHttpHandler } from './http/inbound-stack.js';
import { tunnelRequestHandler } from './http/inbound-tunnel.js';
import { LocalApps } from './http/local-app.js';
import { createOutboundHttp } from './http/outbound-server.js';
import { RequestTelemetry } from './http/request-telemetry.js';
import { createPlaintextInboundHandler } from './inbound/plaintext.js';
import { tunnelAccessRecorder, tunnelAuthorizer } from './inbound/tunnel-inbound.js';
import { buildGuards } from './limits/index.js';
import { MeshState, type TrafficResolver } from './mesh-state.js';
import { DETECT_WINDOW_MS, detectProtocol } from './outbound/detect.js';
import { SourceIdentities } from './outbound/source-identity.js';
import { createOutboundHandler } from './outbound/stack.js';
import { AdaptiveConcurrency } from './resilience/adaptive-concurrency.js';
import { Resilience } from './resilience/resilience.js';
import { registerResilienceMetrics } from './resilience/resilience-metrics.js';
import { MirrorMetrics } from './routing/mirror-metrics.js';
import { Telemetry } from './telemetry.js';
import { startTunnelServer, TunnelPool, type TunnelServer } from './tunnel/index.js';
import { registerTunnelMetrics } from './tunnel-metrics.js';

const CONNECT_TIMEOUT_MS = 5_000;
const MAX_ATTEMPTS = 3;

/**
 * What the data plane reads of the control plane session: the agent's session itself, or in a
 * worker process the mirror of the master's (src/agent/workers/session-mirror.ts).
 */
export interface DataPlaneSession {
  view(): MeshView | undefined;
  trustBundle(): string;
  readonly certificates: {
    readonly node: Identity | undefined;
    service(service: string): Identity | undefined;
  };
  on(event: 'snapshot', listener: (view: MeshView) => void): unknown;
  on(event: 'certificate', listener: (identity: Identity) => void): unknown;
}

export interface DataPlaneOptions {
  config: AgentConfig;
  session: DataPlaneSession | undefined;
  /** The effective TrafficPolicies of the session's views: computed in this process
   * (traffic-policies.ts), or in a worker the master's (SessionMirror.trafficOf). */
  traffic: TrafficResolver;
  /** Listening sockets by name (outbound, inbound, tunnel, dns), e.g. from the master; default
   * the ones systemd passed (listenFds()). */
  listenFds?: Map<string, number[]>;
  /** false: no DNS server here (the master answers DNS for its workers); default true. */
  dns?: boolean;
  socketOps: SocketOps;
  registry: Registry;
  log: Logger;
  /** One span per HTTP request per hop (src/telemetry/tracer.ts), for the HTTP stacks. */
  tracer: Tracer;
  /** Where authorization denials are kept for the stats report (the dashboard's view). */
  denials?: RecentDenials;
  /** Where failed requests are kept for the stats report (the dashboard's view). */
  errors?: RecentErrors;
  /** `weft tap`: finished requests are offered to it while a tap is open. */
  tap?: TapHub;
}

export interface DataPlane {
  /** True while the capture listeners accept connections. */
  readonly listening: boolean;
  /** Connections held now: captured ones and peers' tunnel sessions (`weft status`). */
  readonly connections: number;
  /** New workload config (SIGHUP): which local users and units map to which service. */
  reloadWorkloads(config: AgentConfig): void;
  /** Stop accepting, let open connections finish for up to drainMs, then cut them. */
  stop(drainMs: number): Promise<void>;
}

export async function startDataPlane(opts: DataPlaneOptions): Promise<DataPlane> {
  const { config, session, socketOps, registry, log } = opts;
  const capture = config.capture;
  // A socket unit (weft-agent.socket) holds the listeners across restarts: connections queue
  // in the kernel while no agent runs. Without one, the agent binds them itself.
  const passed = opts.listenFds ?? listenFds();
  const state = new MeshState(config.hostname, opts.traffic);
  const telemetry = new Telemetry(registry, log, opts.denials);
  // One record per HTTP request, both directions (weft_http_*).
  const requests = new RequestTelemetry(registry, log, opts.tap, opts.errors);
  // Connection limits per listener (shares of the descriptor limit), timeouts, refusals.
  const guards = buildGuards(config.limits, { registry, log });
  let identities = session
    ? new SourceIdentities(config.workloads, session.certificates)
    : undefined;
  // Local applications are reached from their callers' addresses where the host allows it.
  const local = new LocalConnector({
    preserve: capture.inbound.preserveClientAddress,
    ipv6: capture.ipv6,
    mark: capture.tproxy.mark,
    socketOps,
    log,
    unavailable: await checkReplyPath(capture),
  });
  // HTTP from peer agents (tunnel request streams) and same-host HTTP calls: one inbound stack.
  const apps = new LocalApps({ local, connectTimeoutMs: CONNECT_TIMEOUT_MS });
  const inboundHttp = createInboundHttpHandler({
    state,
    telemetry,
    requests,
    tracer: opts.tracer,
    apps,
    log,
    // TrafficPolicy adaptiveConcurrency and qos of local services.
    overload: new AdaptiveConcurrency({ registry }),
  });

  // The agent's own ports: never relayed to (capture) nor tunnelled to, so nothing loops.
  const ownPorts = new Set([
    capture.outboundPort,
    capture.inboundPort,
    capture.dns.port,
    capture.agentPorts.tunnel,
    config.admin.port,
    config.metrics.port,
  ]);

  // Tunnels need the node certificate and the trust bundle: with a cached or fresh identity
  // they start at once, otherwise when the first node certificate arrives.
  let tunnels: TunnelPool | undefined;
  let tunnelServer: TunnelServer | undefined;
  // The control plane's deny list (by serial), from the snapshot: checked per handshake.
  const isRevoked = (serial: string): boolean =>
    session?.view()?.revokedSerials.has(serial) === true;
  const startTunnels = async (node: Identity) => {
    const trustDomain = parseSpiffeId(node.spiffeId)?.trustDomain;
    const bundle = session?.trustBundle();
    if (!trustDomain || !bundle || tunnels) return;
    tunnels = new TunnelPool({ trustDomain, trustBundle: bundle, log, isRevoked });
    tunnelServer = await startTunnelServer({
      host: '::',
      port: capture.agentPorts.tunnel,
      fd: passed.get('tunnel')?.[0],
      trustDomain,
      identity: { key: node.keyPem, cert: node.certPem },
      trustBundle: bundle,
      authorize: tunnelAuthorizer(state, telemetry),
      // An authorized target is a registered workload: deliver to it as registered.
      connect: (target, o) =>
        local.connect({ ...o, target: state.localEndpoint(target) ?? target }),
      onStream: tunnelAccessRecorder(state, telemetry),
      onRequest: tunnelRequestHandler(inboundHttp, log),
      reservedPorts: ownPorts,
      isRevoked,
      ...guards.tunnel,
      log,
    });
    log.info({ port: tunnelServer.port, identity: node.spiffeId }, 'tunnel server listening');
  };

  if (session) {
    /** The trust bundle the tunnels verify with since the last snapshot that changed it. */
    let bundle: string | undefined;
    const apply = () => {
      const view = session.view();
      if (!view) return;
      state.update(view);
      // A new bundle only: each setTrustBundle parses every CA certificate into new OpenSSL
      // contexts (native memory), and 10,000 endpoints registering bring 10 versions a second
      // that keep the bundle.
      if (view.trustBundlePem && view.trustBundlePem !== bundle) {
        bundle = view.trustBundlePem;
        tunnels?.setTrustBundle(view.trustBundlePem);
        tunnelServer?.setTrustBundle(view.trustBundlePem);
      }
      // Sessions open with certificates this snapshot revokes are cut now, not at expiry.
      if (view.revokedSerials.size > 0) {
        tunnelServer?.closeRevoked();
        tunnels?.closeRevoked();
      }
    };
    session.on('snapshot', apply);
    session.on('certificate', (identity) => {
      if (identity !== session.certificates.node) return;
      if (tunnelServer) tunnelServer.setIdentity({ key: identity.keyPem, cert: identity.certPem });
      else
        startTunnels(identity).catch((err) =>
          log.error({ err: describeError(err) }, 'tunnel server failed to start'),
        );
    });
    apply();
    const node = session.certificates.node;
    if (node) await startTunnels(node);
  }

  const common = { ownPorts, socketOps, log };
  const outboundDeps = {
    state,
    tunnels: () => tunnels,
    telemetry,
    log,
    tunnelPort: capture.agentPorts.tunnel,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
    maxAttempts: MAX_ATTEMPTS,
    // TrafficPolicy timeouts and retries per destination service (both stacks).
    resilience: new Resilience(registry),
  };
  // The L7 engine: HTTP served per request; same-host calls go through the inbound stack.
  const http = createOutboundHttp({
    ...outboundDeps,
    inbound: inboundHttp,
    requests,
    tracer: opts.tracer,
    idleMs: guards.outbound.timeouts.idleMs,
    mirrors: new MirrorMetrics(registry),
  });
  const outbound = createCaptureServer({
    ...common,
    ...guards.outbound,
    direction: 'outbound',
    mode: 'redirect',
    handle: createOutboundHandler({
      ...outboundDeps,
      identities: () => identities,
      detect: detectProtocol,
      detectWindowMs: DETECT_WINDOW_MS,
      http,
    }),
  });
  const inbound = createCaptureServer({
    ...common,
    ...guards.inbound,
    direction: 'inbound',
    mode: capture.inboundMode,
    handle: createPlaintextInboundHandler({
      state,
      telemetry,
      log,
      local,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
    }),
  });
  // Dual-stack listeners: REDIRECT sends IPv4 and IPv6 connections to the same port.
  const outboundFd = passed.get('outbound')?.[0];
  const inboundFd = passed.get('inbound')?.[0];
  await listen(
    outbound,
    outboundFd === undefined ? { host: '::', port: capture.outboundPort } : { fd: outboundFd },
    'outbound',
  );
  if (inboundFd !== undefined) {
    // The socket unit sets Transparent= itself when inbound uses TPROXY.
    await listen(inbound, { fd: inboundFd }, 'inbound');
  } else if (capture.inboundMode === 'tproxy') {
    // TPROXY delivers packets for foreign addresses: the socket needs IP_TRANSPARENT before
    // bind, which Node cannot set, so the native addon creates it and Node adopts the fd.
    await listen(
      inbound,
      { fd: socketOps.transparentListener({ host: '::', port: capture.inboundPort }) },
      'inbound',
    );
  } else {
    await listen(inbound, { host: '::', port: capture.inboundPort }, 'inbound');
  }

  const dns: DnsServer | undefined =
    capture.dns.enabled && opts.dns !== false
      ? // Imported here: the agent's workers leave DNS to their master and load none of it.
        await (await import('./mesh-dns.js')).startMeshDns({
          config,
          view: () => state.view,
          fds: passed.get('dns'),
          registry,
          log,
        })
      : undefined;

  registerDataPlaneGauges(registry, state);
  registerResilienceMetrics(registry, state);
  registerTunnelMetrics(
    registry,
    () => tunnels,
    () => tunnelServer,
  );
  log.info(
    {
      outbound: capture.outboundPort,
      inbound: capture.inboundPort,
      inbound_mode: capture.inboundMode,
      preserve_client_address: local.preserving,
      dns: dns ? capture.dns.port : false,
      node: config.hostname,
      mesh: session !== undefined,
      socket_activated: passed.size > 0,
    },
    'agent listening',
  );

  const servers = [outbound, inbound];
  const open = new Set<Socket>();
  for (const server of servers) {
    server.on('connection', (socket: Socket) => {
      open.add(socket);
      socket.once('close', () => open.delete(socket));
    });
  }
  let listening = true;
  return {
    get listening() {
      return listening;
    },
    get connections() {
      return open.size + (tunnelServer?.stats().sessionsActive ?? 0);
    },
    reloadWorkloads(next) {
      if (session) identities = new SourceIdentities(next.workloads, session.certificates);
    },
    async stop(drainMs) {
      listening = false;
      // close() stops accepting at once; 'close' fires when the last open connection ends.
      for (const server of servers) server.close();
      // Apps' HTTP connections are asked to go away (Connection: close, GOAWAY), so that a
      // reload's old worker empties early instead of holding keep-alive connections.
      const stopDraining = http.drain();
      const drained = Promise.all(servers.map((s) => once(s, 'close')));
      // Peers' streams through the tunnel drain for the same time (GOAWAY, then wait).
      const tunnelDrained = tunnelServer?.close(drainMs);
      const timedOut = await Promise.race([
        drained.then(() => false),
        sleep(drainMs).then(() => true),
      ]);
      if (timedOut) {
        log.warn(
          { drain_ms: drainMs, open: open.size },
          'drain time over: closing remaining connections',
        );
        for (const socket of open) socket.destroy();
        await drained;
      }
      stopDraining();
      await Promise.all([dns?.close(), tunnelDrained, tunnels?.close()]);
      apps.close();
    },
  };
}

function registerDataPlaneGauges(registry: Registry, state: MeshState) {
  new Gauge({
    name: 'weft_balancer_endpoints',
    help: 'Endpoints of each service port as this host balances them, by state',
    labelNames: ['service', 'port', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { service, port, pool } of state.allPools()) {
        for (const [s, n] of Object.entries(pool.counts()))
          this.set({ service, port: String(port), state: s }, n);
      }
    },
  });
}

async function listen(
  server: Server,
  options: { host: string; port: number } | { fd: number },
  what: string,
) {
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const where = 'fd' in options ? `fd ${options.fd}` : `[${options.host}]:${options.port}`;
      const hint = err.code === 'EADDRINUSE' ? ': is another agent running?' : '';
      reject(
        new WeftError(
          'WEFT_E_SOCKET',
          `cannot listen for ${what} connections on ${where}: ${err.code ?? err.message}${hint}`,
        ),
      );
    });
    server.listen({ ...options, backlog: 1024 }, () => resolve());
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
