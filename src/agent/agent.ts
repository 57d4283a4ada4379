// The per-host daemon, composed: the control plane session (which loads the last-known-good
// state from disk first), the data plane, the admin endpoint and /metrics. Each part lives in
// its own module; this file only orders their start and stop.

import { WEFT_VERSION } from '../api/weft-version.js';
import {
  type ControlPlaneSession,
  startControlPlaneSession,
} from '../controlplane-client/session.js';
import { describeError, type WeftError } from '../errors.js';
import type { SocketOps } from '../native/socket-ops.js';
import { startDataPlane } from '../proxy/data-plane.js';
import { computedTraffic } from '../proxy/traffic-policies.js';
import type { Logger } from '../sys/logger.js';
import { createTracer } from '../telemetry/create-tracer.js';
import { Registry } from '../telemetry/prom.js';
import { RecentDenials } from '../telemetry/recent-denials.js';
import { RecentErrors } from '../telemetry/recent-errors.js';
import { tapSocketPath } from '../telemetry/tap-config.js';
import { TapHub } from '../telemetry/tap-hub.js';
import { startTapSocket } from '../telemetry/tap-socket.js';
import { tapsOfSession } from '../telemetry/tap-sync.js';
import { startAdminServer } from './admin-server.js';
import type { AgentConfig } from './config.js';
import { HostFactsSource } from './host-facts.js';
import { startMemoryTrim } from './memory-trim.js';
import { registerProcessMetrics, startMetricsServer } from './metrics-server.js';
import { notifyReady } from './ready-notifier.js';
import { startStatsReporter } from './stats-reporter.js';
import { registerSyncMetrics } from './sync-metrics.js';
import { sdNotify, sdStatus, startWatchdog } from './systemd.js';

export interface AgentDeps {
  socketOps: SocketOps;
  log: Logger;
}

export interface RunningAgent {
  /** Absent when the config names no control plane (a plain relay). */
  session: ControlPlaneSession | undefined;
  registry: Registry;
  /** Settles when the control plane refused this never-joined host for good (the session gave
   * up: the caller should stop and exit with exitStatusForRefusal); never without a session. */
  refused: Promise<WeftError>;
  /** SIGHUP: re-read workloads (registrations, certificates, process-to-workload mapping). */
  reload(config: AgentConfig): void;
  /** Stop accepting, wait up to `drainMs` for open connections, then close everything. */
  stop(drainMs?: number): Promise<void>;
}

export async function startAgent(config: AgentConfig, deps: AgentDeps): Promise<RunningAgent> {
  const { socketOps, log } = deps;
  const registry = new Registry();
  registerProcessMetrics(registry);

  // Control plane first: it loads the last-known-good snapshot and certificates from disk at
  // once (fail static) and connects in the background, so listeners never wait on the network.
  const facts = new HostFactsSource(`weft-agent/${WEFT_VERSION}`);
  const session = config.controlPlane
    ? await startControlPlaneSession(config, log, {
        listening: (address, port) => socketOps.listening(address, port),
        hostFacts: () => facts.current(),
      })
    : undefined;
  const refused = new Promise<WeftError>((resolve) => {
    const already = session?.refusal();
    if (already) resolve(already);
    else session?.once('refused', resolve);
  });
  if (session) registerSyncMetrics(registry, session);
  // W3C trace context per request; the OpenTelemetry exporter only with telemetry.tracing.
  const tracer = await createTracer(config.telemetry.tracing, {
    registry,
    log,
    hostname: config.hostname,
  });
  // The latest authorization denials and failed requests, sent with the stats reports (the
  // dashboard shows them).
  const denials = new RecentDenials();
  const errors = new RecentErrors();
  // `weft tap`: local root through a unix socket; admins through the control plane's stream.
  const tap = new TapHub({
    node: config.hostname,
    redactHeaders: config.tap.redactHeaders,
    registry,
  });
  // Without its socket the agent still serves: a local tap is for people, traffic is not.
  const tapSocket = await startTapSocket(tapSocketPath(config), tap, {
    node: config.hostname,
    log,
  }).catch((err: unknown) => {
    log.error({ err: describeError(err) }, 'no local tap socket: `weft tap --local` will fail');
    return undefined;
  });
  const syncTaps = session ? tapsOfSession(session, tap, log) : undefined;
  const dataPlane = await startDataPlane({
    config,
    session,
    traffic: computedTraffic(),
    socketOps,
    registry,
    log,
    tracer,
    denials,
    errors,
    tap,
  });
  const admin = await startAdminServer({
    address: config.admin.address,
    port: config.admin.port,
    session,
    listenersReady: () => dataPlane.listening,
    logger: log,
  });
  const metrics = await startMetricsServer(registry, config.metrics.address, config.metrics.port);
  const stopWatchdog = startWatchdog();
  const stopTrimming = startMemoryTrim();
  const stopNotifying = notifyReady(session, log);
  // The mesh-wide numbers (`weft top`): this agent's counts, every telemetry.stats.intervalMs.
  const reporter = session
    ? startStatsReporter({
        registry,
        session,
        intervalMs: config.telemetry.stats.intervalMs,
        log,
        facts,
        denials,
        errors,
      })
    : undefined;

  return {
    session,
    registry,
    refused,
    reload(next) {
      session?.updateWorkloads(next);
      dataPlane.reloadWorkloads(next);
    },
    async stop(drainMs = config.drainMs) {
      stopNotifying();
      reporter?.stop();
      sdNotify('STOPPING=1');
      sdStatus(`draining open connections (up to ${drainMs} ms)`);
      await dataPlane.stop(drainMs);
      // After the drain, so the last requests' spans go out too (bounded by the export timeout).
      await tracer.shutdown();
      stopWatchdog();
      stopTrimming();
      syncTaps?.streamEnded();
      await Promise.all([admin.close(), metrics.close(), tapSocket?.close(), session?.stop()]);
    },
  };
}
