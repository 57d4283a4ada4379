// The sending agent's outbound stack on loopback, as the loopback labs build it: the opaque and
// HTTP stacks behind createOutboundHandler, fed by plain listeners that stand in for capture
// (each accepted socket is a CapturedConnection to a VIP and port). Shared by the outbound-http,
// outbound-resilience and breakers fixtures, which differ in their backends and mesh.
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { CapturedConnection } from '../../src/proxy/capture-listener.js';
import { createOutboundHttp } from '../../src/proxy/http/outbound-server.js';
import { RequestTelemetry } from '../../src/proxy/http/request-telemetry.js';
import { randomTraceIds } from '../../src/proxy/http/trace-ids.js';
import type { InboundHttpHandler } from '../../src/proxy/http/types.js';
import type { MeshState } from '../../src/proxy/mesh-state.js';
import { DETECT_WINDOW_MS, detectProtocol } from '../../src/proxy/outbound/detect.js';
import type { SourceIdentities } from '../../src/proxy/outbound/source-identity.js';
import { createOutboundHandler } from '../../src/proxy/outbound/stack.js';
import { Resilience } from '../../src/proxy/resilience/resilience.js';
import { MirrorMetrics } from '../../src/proxy/routing/mirror-metrics.js';
import { Telemetry } from '../../src/proxy/telemetry.js';
import type { TunnelIdentity, TunnelPool } from '../../src/proxy/tunnel/index.js';
import { propagatingTracer } from '../../src/telemetry/propagating-tracer.js';

export interface OutboundStackOptions {
  state: MeshState;
  pool: TunnelPool;
  registry: Registry;
  log: Logger;
  /** The peers' tunnel port. */
  tunnelPort: number;
  /** Same-host calls: most labs have none and pass a handler that throws. */
  inbound: InboundHttpHandler;
  /** The calling workload's identity (service `frontend`). */
  identity: TunnelIdentity;
  maxAttempts: number;
  /** Route splits and fault percentages (seeded in tests that count them). */
  random?: () => number;
}

export interface OutboundStack {
  /** A listener whose connections go to `vip:port` through the stack; its port. */
  capture(vip: string, port: number): Promise<number>;
  /** Cuts the captured connections and closes the listeners. */
  close(): Promise<void>;
}

export function outboundStack(o: OutboundStackOptions): OutboundStack {
  const common = {
    state: o.state,
    tunnels: () => o.pool,
    telemetry: new Telemetry(o.registry, o.log),
    log: o.log,
    tunnelPort: o.tunnelPort,
    connectTimeoutMs: 2_000,
    maxAttempts: o.maxAttempts,
    resilience: new Resilience(o.registry),
  };
  const http = createOutboundHttp({
    ...common,
    inbound: o.inbound,
    requests: new RequestTelemetry(o.registry, o.log),
    tracer: propagatingTracer(randomTraceIds()),
    idleMs: 60_000,
    mirrors: new MirrorMetrics(o.registry),
    ...(o.random ? { random: o.random } : {}),
  });
  const identities = {
    forOwner: () => ({ service: 'frontend', tunnel: o.identity }),
  } as unknown as SourceIdentities;
  const handle = createOutboundHandler({
    ...common,
    identities: () => identities,
    detect: detectProtocol,
    detectWindowMs: DETECT_WINDOW_MS,
    http,
  });
  const listeners: Server[] = [];
  const sockets = new Set<Socket>();
  return {
    async capture(vip, port) {
      const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (client) => {
        sockets.add(client);
        client.once('close', () => sockets.delete(client));
        client.on('error', () => {});
        const conn: CapturedConnection = {
          direction: 'outbound',
          client,
          source: `${client.remoteAddress}:${client.remotePort}`,
          target: { address: vip, port, family: 4 },
          owner: undefined,
          started: process.hrtime.bigint(),
          timeouts: { idleMs: 60_000 },
        };
        handle(conn);
      });
      listeners.push(server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return (server.address() as { port: number }).port;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all(listeners.map((l) => new Promise((r) => l.close(r))));
    },
  };
}
