// The per-host daemon: binds the capture listeners, starts the control plane session and the
// admin server, and drains on SIGTERM. Composition only: each part lives in its own module.
import { once } from 'node:events';
import type { Server, Socket } from 'node:net';
import { collectDefaultMetrics, Registry } from 'prom-client';
import {
  type ControlPlaneSession,
  startControlPlaneSession,
} from '../controlplane-client/session.js';
import { WeftError } from '../errors.js';
import type { SocketOps } from '../native/socket-ops.js';
import { createCaptureServer, type Direction } from '../proxy/capture-listener.js';
import type { Logger } from '../sys/logger.js';
import { startAdminServer } from './admin-server.js';
import type { AgentConfig } from './config.js';
import { startMetricsServer } from './metrics-server.js';
import { registerSyncMetrics } from './sync-metrics.js';

export interface CaptureListenSpec {
  outboundPort: number;
  inboundPort: number;
  inboundMode: 'redirect' | 'tproxy';
  /** Ports that belong to the agent: never relayed to, so a misrouted connection cannot loop. */
  ownPorts: ReadonlySet<number>;
}

export interface AgentDeps {
  socketOps: SocketOps;
  log: Logger;
  capture: CaptureListenSpec;
}

export interface RunningAgent {
  /** Absent when the config names no control plane (a plain relay). */
  session: ControlPlaneSession | undefined;
  registry: Registry;
  /** Stop accepting, wait up to `drainMs` for open connections, then close everything. */
  stop(drainMs?: number): Promise<void>;
  addresses(): Record<Direction, number>;
}

export async function startAgent(config: AgentConfig, deps: AgentDeps): Promise<RunningAgent> {
  const { capture, socketOps, log } = deps;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  // Control plane first: it loads the last-known-good snapshot and certificates from disk at
  // once (fail static) and connects in the background, so listeners never wait on the network.
  const session = config.controlPlane ? await startControlPlaneSession(config, log) : undefined;
  if (session) registerSyncMetrics(registry, session);
  const common = { ownPorts: capture.ownPorts, socketOps, log };
  const outbound = createCaptureServer({ ...common, direction: 'outbound', mode: 'redirect' });
  const inbound = createCaptureServer({
    ...common,
    direction: 'inbound',
    mode: capture.inboundMode,
  });

  // Dual-stack listeners: REDIRECT sends IPv4 and IPv6 connections to the same port.
  await listen(outbound, { host: '::', port: capture.outboundPort }, 'outbound');
  if (capture.inboundMode === 'tproxy') {
    // TPROXY delivers packets for foreign addresses: the socket needs IP_TRANSPARENT before
    // bind, which Node cannot set, so the native addon creates it and Node adopts the fd.
    const fd = socketOps.transparentListener({ host: '::', port: capture.inboundPort });
    await listen(inbound, { fd }, 'inbound');
  } else {
    await listen(inbound, { host: '::', port: capture.inboundPort }, 'inbound');
  }
  log.info(
    {
      outbound: capture.outboundPort,
      inbound: capture.inboundPort,
      inbound_mode: capture.inboundMode,
      node: config.hostname,
    },
    'agent listening',
  );

  let listening = true;
  const admin = await startAdminServer({
    address: config.admin.address,
    port: config.admin.port,
    session,
    listenersReady: () => listening,
    logger: log,
  });
  const metrics = await startMetricsServer(registry, config.metrics.address, config.metrics.port);

  const servers = [outbound, inbound];
  const open = new Set<Socket>();
  for (const server of servers) {
    server.on('connection', (socket: Socket) => {
      open.add(socket);
      socket.once('close', () => open.delete(socket));
    });
  }
  return {
    session,
    registry,
    addresses: () => ({ outbound: portOf(outbound), inbound: portOf(inbound) }),
    async stop(drainMs = config.drainMs) {
      listening = false;
      for (const server of servers) server.close();
      const drained = Promise.all(servers.map((s) => once(s, 'close')));
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
      await Promise.all([admin.close(), metrics.close(), session?.stop()]);
    },
  };
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

function portOf(server: Server): number {
  const address = server.address();
  return address && typeof address === 'object' ? address.port : 0;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
