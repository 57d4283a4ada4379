// The agent's master (`weft agent`): holds the listening sockets and the one control plane
// session, answers admin, /metrics, DNS and the local tap socket for the whole agent, reports
// stats, talks to systemd; its workers (worker-pool.ts, worker-main.ts) serve the connections.
// A reload (SIGHUP) starts a new generation of workers on the config and code on disk now and
// retires the previous one once the new one is ready: open connections finish on the old
// workers (up to drain.maxMs) while new ones go to the new workers. An upgrade (SIGUSR2)
// replaces the master too: it execs into the code on disk (re-exec.ts), handing its sockets and
// workers to the new image (handover.ts), which adopts them (adopted-workers.ts).
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WEFT_VERSION } from '../../api/weft-version.js';
import {
  type ControlPlaneSession,
  startControlPlaneSession,
} from '../../controlplane-client/session.js';
import { describeError, WeftError } from '../../errors.js';
import { nativeProcessOps } from '../../native/process-ops.js';
import type { SocketOps } from '../../native/socket-ops.js';
import { startMeshDns } from '../../proxy/mesh-dns.js';
import { type Logger, rawLineWriter } from '../../sys/logger.js';
import { Registry } from '../../telemetry/prom.js';
import { RecentDenials } from '../../telemetry/recent-denials.js';
import { RecentErrors } from '../../telemetry/recent-errors.js';
import { tapSocketPath } from '../../telemetry/tap-config.js';
import { startTapSocket } from '../../telemetry/tap-socket.js';
import { tapsOfSession } from '../../telemetry/tap-sync.js';
import { startAdminServer } from '../admin-server.js';
import { BUILD_ID } from '../build-id.js';
import type { AgentConfig } from '../config.js';
import { HostFactsSource } from '../host-facts.js';
import { startMemoryTrim } from '../memory-trim.js';
import { registerProcessMetrics, startMetricsServer } from '../metrics-server.js';
import { notifyReady } from '../ready-notifier.js';
import { startStatsReporter } from '../stats-reporter.js';
import { registerSyncMetrics } from '../sync-metrics.js';
import { sdNotify, sdStatus, startWatchdog } from '../systemd.js';
import { AdoptedWorkers } from './adopted-workers.js';
import {
  HANDOVER_VERSION,
  type HandedWorker,
  type Handover,
  type UpgradeDecision,
  upgradeDecision,
} from './handover.js';
import { readHandoverCounts, writeHandoverCounts } from './handover-counts.js';
import { HeldSockets } from './listening-sockets.js';
import { mergeMetrics } from './metrics-merge.js';
import { checkNewCode, execInto } from './re-exec.js';
import { reloadRefusal } from './reload-check.js';
import { SessionPublisher } from './session-publisher.js';
import { slotCount } from './worker-count.js';
import { WorkerPool, type WorkerStatus } from './worker-pool.js';
import { WorkerTapHub } from './worker-tap-hub.js';

export interface MasterDeps {
  socketOps: SocketOps;
  log: Logger;
  /** The worker entry; default worker-main.js beside this file (the code on disk now). */
  workerEntry?: string;
  /** From the master image this one replaced (an upgrade's exec); absent on a plain start. */
  handover?: Handover;
  /** agent.yaml, for the new code's `weft agent --check` before an upgrade's exec. */
  configFile?: string;
}

/** The master itself, for `weft status` and install.sh's wait for an upgrade. */
export interface MasterInfo {
  pid: number;
  version: string;
  /** The code it runs (build-id.ts). */
  build: string;
  /** How many upgrades replaced the master in this pid (0: started by systemd or by hand). */
  execs: number;
  startedAt: string;
  /** The last upgrade this image refused or failed, and why (none once it succeeds). */
  lastUpgrade?: { at: string; outcome: 'refused' | 'failed'; reason: string };
}

export interface RunningMaster {
  session: ControlPlaneSession | undefined;
  refused: Promise<WeftError>;
  workers(): WorkerStatus[];
  /** SIGHUP: new workers on this config, the previous ones retired once they are ready.
   * Resolves false when the new workers failed to start (the previous ones keep serving);
   * throws WEFT_E_CONFIG for a change only a restart can apply (reload-check.ts). */
  reload(config: AgentConfig): Promise<boolean>;
  /** SIGUSR2: exec into the code on disk with this config (never returns when it does);
   * resolves with the refusal when it may not or the exec failed (everything keeps serving). */
  upgrade(config: AgentConfig): Promise<UpgradeDecision>;
  info(): MasterInfo;
  stop(drainMs?: number): Promise<void>;
}

const defaultEntry = fileURLToPath(new URL('./worker-main.js', import.meta.url));

export async function startMaster(config: AgentConfig, deps: MasterDeps): Promise<RunningMaster> {
  const { socketOps, log } = deps;
  let current = config;
  const registry = new Registry();
  registerProcessMetrics(registry);
  // Before anything slow: the sockets exist (and queue connections) from here on.
  const { handover } = deps;
  const held = new HeldSockets(config, socketOps, handover);
  // At least one worker per socket systemd passed for a port (worker-count.ts).
  const workerCount = (configured: number | undefined) => slotCount(configured, held.passedPerPort);
  held.slot(workerCount(config.workers) - 1);
  const startedAt = new Date().toISOString();
  let lastUpgrade: MasterInfo['lastUpgrade'];

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
  const denials = new RecentDenials();
  const errors = new RecentErrors();
  const publisher = new SessionPublisher(session);

  let pool: WorkerPool | undefined;
  const tap = new WorkerTapHub(
    { node: config.hostname, redactHeaders: config.tap.redactHeaders, registry },
    (message) => pool?.broadcast(message),
  );
  // The previous image's workers keep serving until this image's are ready.
  const adopted = handover
    ? new AdoptedWorkers(handover.workers, {
        log,
        writeLines: rawLineWriter(log),
        ops: nativeProcessOps,
      })
    : undefined;
  if (handover)
    log.info(
      { from: handover.from, build: BUILD_ID, workers: adopted?.count, execs: handover.execs },
      'upgraded: this master took over the sockets and workers of the one it replaced',
    );
  pool = new WorkerPool({
    firstGeneration: handover?.nextGeneration,
    retired: readHandoverCounts(handover?.countsFile, log),
    others: () => adopted?.status() ?? [],
    entry: deps.workerEntry ?? defaultEntry,
    sockets: (slot) => held.slot(slot),
    onRetired: (count) => held.shrinkTo(count),
    state: () => publisher.state(),
    writeLines: rawLineWriter(log),
    registry,
    log,
    afterInit: () => tap.openMessages(),
    onMessage: (worker, message) => {
      if (message.type === 'events') {
        denials.giveBack({ events: message.denials, omitted: message.omitted });
        errors.giveBack({ events: message.errors, omitted: 0 });
      } else if (message.type === 'tapRecords') tap.fromWorker(message.id, message.records);
      else if (message.type === 'tapDropped')
        tap.droppedInWorker(message.id, worker.child.pid ?? 0, message.total);
    },
  });
  const workers = pool;
  const stopFollowing = publisher.follow((update) => workers.broadcast(update));
  const firstGeneration = workers.startGeneration(config, workerCount(config.workers));

  const tapSocket = await startTapSocket(tapSocketPath(config), tap, {
    node: config.hostname,
    log,
  }).catch((err: unknown) => {
    log.error({ err: describeError(err) }, 'no local tap socket: `weft tap --local` will fail');
    return undefined;
  });
  const syncTaps = session ? tapsOfSession(session, tap, log) : undefined;
  const dns = config.capture.dns.enabled
    ? await startMeshDns({ config, view: () => session?.view(), fds: held.dns, registry, log })
    : undefined;
  // As before workers: the admin endpoint (and so /live) answers once connections are served.
  const firstOk = await firstGeneration;
  if (firstOk && adopted) {
    adopted.retire();
    held.shrinkTo(workerCount(config.workers));
  } else if (adopted) {
    // Exiting now would take the previous workers (and their connections) with it: they
    // serve on, and a reload (or a restart) can try again.
    lastUpgrade = {
      at: new Date().toISOString(),
      outcome: 'failed',
      reason:
        'the new workers did not start (their error is above); the previous ones keep serving',
    };
    log.error({ reason: lastUpgrade.reason }, 'upgrade failed');
  } else if (!firstOk) {
    await Promise.all([tapSocket?.close(), dns?.close()]);
    await session?.stop();
    throw new WeftError(
      'WEFT_E_CONFIG',
      'the workers refused this config (their error is above): fix it and start the agent again',
    );
  }
  const admin = await startAdminServer({
    address: config.admin.address,
    port: config.admin.port,
    session,
    listenersReady: () => workers.serving || (adopted?.count ?? 0) > 0,
    workers: () => [...workers.status(), ...(adopted?.status() ?? [])],
    master: () => info(),
    logger: log,
  });
  const metrics = await startMetricsServer(
    {
      contentType: registry.contentType,
      metrics: async () => {
        const parts = await workers.metrics();
        return mergeMetrics([await registry.getMetricsAsJSON(), ...parts]).metrics();
      },
    },
    config.metrics.address,
    config.metrics.port,
  );
  log.info(
    {
      outbound: config.capture.outboundPort,
      inbound: config.capture.inboundPort,
      workers: workerCount(config.workers),
      socket_activated: held.socketActivated,
    },
    'agent listening',
  );
  const stopWatchdog = startWatchdog();
  const stopTrimming = startMemoryTrim();
  const stopNotifying = notifyReady(session, log);
  const reporter = session
    ? startStatsReporter({
        registry,
        read: () => workers.readout(),
        session,
        intervalMs: config.telemetry.stats.intervalMs,
        log,
        facts,
        denials,
        errors,
      })
    : undefined;

  // Reloads run one at a time; SIGHUPs that come meanwhile are folded into one more run with
  // the newest config (none is dropped: each may carry a workload change).
  let latest: AgentConfig | undefined;
  let reloads: Promise<unknown> = Promise.resolve(true);
  const execs = handover?.execs ?? 0;
  const info = (): MasterInfo => ({
    pid: process.pid,
    version: WEFT_VERSION,
    build: BUILD_ID,
    execs,
    startedAt,
    ...(lastUpgrade ? { lastUpgrade } : {}),
  });
  const refuseUpgrade = (outcome: 'refused' | 'failed', reason: string): UpgradeDecision => {
    lastUpgrade = { at: new Date().toISOString(), outcome, reason };
    log.error({ reason }, `upgrade ${outcome}: the running master and workers keep serving`);
    return { kind: 'refuse', reason };
  };
  const upgrade = async (next: AgentConfig): Promise<UpgradeDecision> => {
    const refusal = reloadRefusal(current, next, 'upgrade');
    const check = refusal
      ? { exitCode: 0, stdout: '', stderr: '' }
      : await checkNewCode(deps.configFile);
    const decision = upgradeDecision(refusal, check);
    if (decision.kind === 'refuse') return refuseUpgrade('refused', decision.reason);
    log.info(
      { from: BUILD_ID, to: decision.build },
      'upgrading: the master execs into the new code',
    );
    sdNotify('RELOADING=1');
    sdStatus('upgrading: the master execs into the new code');
    const handed: HandedWorker[] = [
      ...(await workers.handOver(next.drain.maxMs)),
      ...(adopted?.handover() ?? []),
    ];
    const countsFile = writeHandoverCounts(current.dataDir, workers.retiredCounts(), log);
    const err = await execInto(
      {
        version: HANDOVER_VERSION,
        ...held.handover(),
        workers: handed,
        nextGeneration: workers.generationAfter,
        countsFile,
        execs: execs + 1,
        from: { build: BUILD_ID, version: WEFT_VERSION },
      },
      log,
    );
    workers.handOverCancelled();
    if (countsFile) rmSync(countsFile, { force: true });
    sdNotify('READY=1');
    return refuseUpgrade('failed', `the exec failed (${err.message})`);
  };
  return {
    session,
    refused,
    info,
    upgrade(next) {
      const run = reloads.then(() => upgrade(next));
      reloads = run;
      return run;
    },
    workers: () => [...workers.status(), ...(adopted?.status() ?? [])],
    reload(next) {
      const refusal = reloadRefusal(current, next);
      if (refusal) return Promise.reject(new WeftError('WEFT_E_CONFIG', refusal));
      // Registrations and certificates follow at once, whatever the workers do.
      session?.updateWorkloads(next);
      latest = next;
      const run = reloads.then(async () => {
        const wanted = latest;
        if (wanted === undefined) return true; // taken by a run that started after it came
        latest = undefined;
        const count = workerCount(wanted.workers);
        sdNotify('RELOADING=1');
        log.info({ workers: count }, 'reloading: starting new workers');
        const ok = await workers.startGeneration(wanted, count);
        if (ok) current = wanted;
        sdNotify('READY=1');
        return ok;
      });
      reloads = run;
      return run;
    },
    async stop(drainMs = current.drainMs) {
      stopNotifying();
      reporter?.stop();
      sdNotify('STOPPING=1');
      sdStatus(`draining open connections (up to ${drainMs} ms)`);
      await Promise.all([workers.stop(drainMs), adopted?.stop(drainMs + 5_000)]);
      stopFollowing();
      stopWatchdog();
      stopTrimming();
      syncTaps?.streamEnded();
      await Promise.all([
        admin.close(),
        metrics.close(),
        tapSocket?.close(),
        dns?.close(),
        session?.stop(),
      ]);
    },
  };
}
