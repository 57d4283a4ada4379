// A worker of the agent (forked by the master, src/agent/workers/worker-pool.ts): serves the
// data plane on the listening sockets the master holds, from the master's view of the control
// plane (session-mirror.ts), and sends back its metrics, denials, errors and tapped requests,
// which the master reports for the whole agent. Retired by the master: stops accepting, drains
// its connections, exits. When the master replaces itself (an upgrade, handover.ts) the IPC
// channel closes at its exec: the worker serves on until the new master's workers are ready
// and it gets SIGUSR2, then retires the same way.

import { describeError, isWeftError } from '../../errors.js';
import { nativeSocketOps } from '../../native/socket-ops.js';
import { type DataPlane, startDataPlane } from '../../proxy/data-plane.js';
import { createLogger, flushLogs, type Logger } from '../../sys/logger.js';
import { createTracer } from '../../telemetry/create-tracer.js';
import { Registry } from '../../telemetry/prom.js';
import { RecentDenials } from '../../telemetry/recent-denials.js';
import { RecentErrors } from '../../telemetry/recent-errors.js';
import { readStats } from '../../telemetry/stats-readout.js';
import { TapHub } from '../../telemetry/tap-hub.js';
import { BUILD_ID } from '../build-id.js';
import { EXIT_CONFIG } from '../exit-status.js';
import { startMemoryTrim } from '../memory-trim.js';
import { registerProcessMetrics } from '../metrics-server.js';
import { SessionMirror } from './session-mirror.js';
import {
  type MasterMessage,
  WORKER_PROTOCOL,
  type WorkerFds,
  type WorkerMessage,
} from './worker-messages.js';

/** How often denials and failed requests go to the master (its stats report takes them). */
const EVENTS_EVERY_MS = 1_000;

const send = (message: WorkerMessage): void => {
  if (process.connected) process.send?.(message);
};

function listenFdsOf(fds: WorkerFds): Map<string, number[]> {
  const map = new Map([
    ['outbound', [fds.outbound]],
    ['inbound', [fds.inbound]],
  ]);
  if (fds.tunnel !== undefined) map.set('tunnel', [fds.tunnel]);
  return map;
}

async function main(init: Extract<MasterMessage, { type: 'init' }>): Promise<void> {
  const { config } = init;
  const log = createLogger(config.logLevel, 'weft-agent').child({
    worker: init.generation,
  }) as Logger;
  const registry = new Registry();
  registerProcessMetrics(registry);
  const mirror = new SessionMirror(init.state);
  const denials = new RecentDenials();
  const errors = new RecentErrors();
  // Taps are opened by the master (weft tap); this hub copies this worker's requests to them.
  // Its outcomes are counted by the master, which limits the workers' records again.
  const tap = new TapHub({ node: config.hostname, redactHeaders: config.tap.redactHeaders });
  const taps = new Map<string, { close(): void }>();
  const tracer = await createTracer(config.telemetry.tracing, {
    registry,
    log,
    hostname: config.hostname,
  });
  const dataPlane: DataPlane = await startDataPlane({
    config,
    session: config.controlPlane ? mirror : undefined,
    traffic: mirror.trafficOf,
    socketOps: nativeSocketOps,
    registry,
    log,
    tracer,
    denials,
    errors,
    tap,
    listenFds: listenFdsOf(init.fds),
    dns: false,
  });

  // After a burst, this worker's native memory goes back to the host (memory-trim.ts).
  const stopTrimming = startMemoryTrim();
  let told = 0;
  const events = setInterval(() => {
    if (dataPlane.connections !== told) {
      told = dataPlane.connections;
      send({ type: 'connections', connections: told });
    }
    const d = denials.take();
    const e = errors.take();
    if (d.events.length + e.events.length + d.omitted + e.omitted === 0) return;
    send({ type: 'events', denials: d.events, errors: e.events, omitted: d.omitted + e.omitted });
  }, EVENTS_EVERY_MS);
  events.unref();

  // Set when the master announced its exec (the drain to use once told to retire).
  let handedOverDrainMs: number | undefined;
  let retiring = false;
  const retire = async (drainMs: number) => {
    if (retiring) return;
    retiring = true;
    log.info({ drain_ms: drainMs, connections: dataPlane.connections }, 'worker retiring');
    const stopped = dataPlane.stop(drainMs);
    send({ type: 'connections', connections: dataPlane.connections });
    await stopped;
    clearInterval(events);
    stopTrimming();
    for (const t of taps.values()) t.close();
    await tracer.shutdown();
    await flushLogs(log);
    // As the agent did: exit now, not when the loop runs dry (see cli/commands/agent.ts).
    process.exit(0);
  };

  process.on('message', (message: MasterMessage) => {
    switch (message.type) {
      case 'snapshot':
      case 'certificate':
        mirror.apply(message);
        break;
      case 'retire':
        void retire(message.drainMs);
        break;
      case 'metrics':
        Promise.all([registry.getMetricsAsJSON(), readStats(registry)]).then(
          ([metrics, readout]) =>
            send({
              type: 'metrics',
              id: message.id,
              metrics,
              readout,
              connections: dataPlane.connections,
            }),
          (err: unknown) => log.warn({ err: describeError(err) }, 'metrics not read'),
        );
        break;
      case 'tapOpen':
        taps.set(
          message.id,
          tap.open(message.filter, {
            records: (records) => send({ type: 'tapRecords', id: message.id, records }),
            dropped: (total) => send({ type: 'tapDropped', id: message.id, total }),
          }),
        );
        break;
      case 'tapClose':
        taps.get(message.id)?.close();
        taps.delete(message.id);
        break;
      case 'handover':
        handedOverDrainMs = message.drainMs ?? undefined;
        break;
      case 'init':
        break;
    }
  });
  process.once('disconnect', () => {
    // The master exec'd into new code: keep accepting until its workers are ready (SIGUSR2),
    // so no connection waits; it reaps this process and forwards its log lines.
    if (handedOverDrainMs !== undefined) {
      log.info('the master is being replaced: serving until its new workers are ready');
      return;
    }
    // The master is gone (it crashed, or was killed): nobody will retire this worker, so it
    // finishes its connections as a stop would and exits rather than serve on unmanaged.
    void retire(config.drainMs);
  });
  // From the master that replaced the one that started this worker: its workers serve now.
  process.on('SIGUSR2', () => void retire(handedOverDrainMs ?? config.drain.maxMs));
  process.on('SIGTERM', () => void retire(config.drainMs));
  // A terminal's Ctrl-C reaches the whole process group: the master decides what happens.
  process.on('SIGINT', () => {});
  process.on('SIGHUP', () => {});
  send({ type: 'ready', build: BUILD_ID });
}

// Log lines go through the master's pipe; with no reader left (a master that died during its
// exec) a write fails with EPIPE, which must not take the connections down with it.
process.stdout.on('error', () => {});

process.once('message', (message: MasterMessage) => {
  if (message.type !== 'init') {
    console.error(`weft worker: expected an init message first, got ${message.type}`);
    process.exit(1);
  }
  if (message.protocol !== WORKER_PROTOCOL) {
    console.error(
      `weft worker: this worker speaks protocol ${WORKER_PROTOCOL}, the running master ${message.protocol} (an upgrade changed it): restart the agent (systemctl restart weft-agent)`,
    );
    process.exit(EXIT_CONFIG);
  }
  main(message).catch((err: unknown) => {
    // As `weft agent` did before workers: a config that cannot work is EX_CONFIG (the master
    // then gives up instead of starting workers that would fail the same way).
    console.error(`weft: ${describeError(err)}`);
    process.exit(isWeftError(err, 'WEFT_E_CONFIG') ? EXIT_CONFIG : 1);
  });
});
