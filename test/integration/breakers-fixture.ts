// The calling agent's outbound stack on loopback for the resilience tests: the whole outbound
// handler behind listeners that play the capture, a real TunnelPool, and two real tunnel
// servers (node-b on 127.0.0.1, node-c on 127.0.0.2, one port) whose backends answer, fail
// (503), shed (503 `weft-reason: overloaded`, as a peer agent's adaptive concurrency does) or
// hold each request until told, per node and workload port. node-x (127.0.0.3) has a
// listener on the tunnel port that accepts and never speaks: its handshake hangs.
import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { createServer, type Socket } from 'node:net';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { InboundHttpHandler } from '../../src/proxy/http/types.js';
import { MeshState } from '../../src/proxy/mesh-state.js';
import { registerResilienceMetrics } from '../../src/proxy/resilience/resilience-metrics.js';
import { computedTraffic } from '../../src/proxy/traffic-policies.js';
import { connectLocal, type TunnelServer } from '../../src/proxy/tunnel/index.js';
import { viewOf } from '../helpers/mesh-views.js';
import { issueLeaf } from '../helpers/test-pki.js';
import { outboundStack } from './outbound-stack-fixture.js';
import { listenTarget, type MeshPki, newPool, source, startServer, TD } from './tunnel-fixture.js';

/** What a backend does with a request to one of its workload ports. */
export type Mode = 'ok' | '503' | 'overloaded' | 'hold';

/** A request a backend holds: answer it 200 (as `node`) when the test says. */
export interface Held {
  node: string;
  port: number;
  release(): void;
}

export interface BreakersLab {
  registry: Registry;
  logs: Record<string, unknown>[];
  /** Per `${node}:${workloadPort}`; 'ok' when unset. */
  modes: Map<string, Mode>;
  /** Requests that reached a backend, as `${node}:${workloadPort}`, in order. */
  arrivals: string[];
  held: Held[];
  /** Emits 'held' when a request is held. */
  events: EventEmitter;
  /** Sockets node-x's silent listener accepted (their handshakes hang until destroyed). */
  silent: Set<Socket>;
  closeSilent(): Promise<void>;
  /** A listener standing for the capture of connections to vip:port. */
  capture(vip: string, port: number): Promise<number>;
  close(): Promise<void>;
}

export async function breakersLab(
  pki: MeshPki,
  docs: readonly Record<string, unknown>[],
): Promise<BreakersLab> {
  const logs: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => logs.push(JSON.parse(s)) });
  const modes = new Map<string, Mode>();
  const arrivals: string[] = [];
  const held: Held[] = [];
  const events = new EventEmitter();
  const backend =
    (node: string) =>
    (
      stream: ServerHttp2Stream,
      headers: IncomingHttpHeaders,
    ): Promise<{
      status: number;
      reason: 'done' | 'client_reset';
    }> => {
      const port = Number(String(headers['weft-target']).split(':').pop());
      const key = `${node}:${port}`;
      arrivals.push(key);
      stream.on('error', () => {});
      stream.resume();
      const answer = (status: number, reason?: string): void => {
        if (stream.destroyed) return;
        const why = reason === undefined ? {} : { 'weft-reason': reason };
        stream.respond({ ':status': status, 'x-node': node, ...why });
        stream.end(`${status} from ${node}\n`);
      };
      const mode = modes.get(key) ?? 'ok';
      if (mode === 'hold') {
        held.push({ node, port, release: () => answer(200) });
        events.emit('held');
      } else if (mode === 'overloaded') answer(503, 'overloaded');
      else answer(mode === '503' ? 503 : 200);
      return new Promise((resolve) =>
        stream.once('close', () =>
          resolve({ status: 200, reason: stream.rstCode ? 'client_reset' : 'done' }),
        ),
      );
    };
  // Opaque connections to node-b land on an echo target.
  const echo = await listenTarget((socket) => socket.pipe(socket));
  const b: TunnelServer = await startServer(pki, {
    onRequest: backend('node-b'),
    connect: (_target, o) => connectLocal({ address: '127.0.0.1', port: echo.port }, o),
  });
  const nodeC = await issueLeaf(pki.ca, `spiffe://${TD}/node/node-c`);
  const c = await startServer(pki, {
    host: '127.0.0.2',
    port: b.port,
    identity: { key: nodeC.keyPem, cert: nodeC.certPem },
    onRequest: backend('node-c'),
  });
  const silent = new Set<Socket>();
  const silentServer = createServer((socket) => {
    silent.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => silent.delete(socket));
  });
  await new Promise<void>((resolve) => silentServer.listen(b.port, '127.0.0.3', resolve));

  const pool = newPool(pki);
  const state = new MeshState('node-a', computedTraffic());
  state.update(viewOf(docs));
  const registry = new Registry();
  registerResilienceMetrics(registry, state);
  const inbound: InboundHttpHandler = () => {
    throw new Error('no same-host workload here: the inbound stack must not be called');
  };
  const stack = outboundStack({
    state,
    pool,
    registry,
    log,
    tunnelPort: b.port,
    inbound,
    identity: source(pki.client),
    maxAttempts: 1,
  });
  return {
    registry,
    logs,
    modes,
    arrivals,
    held,
    events,
    silent,
    async closeSilent() {
      for (const s of silent) s.destroy();
      await new Promise((r) => silentServer.close(r));
    },
    capture: (vip, port) => stack.capture(vip, port),
    async close() {
      await stack.close();
      for (const s of silent) s.destroy();
      silentServer.close();
      pool.destroy();
      b.destroy();
      c.destroy();
      await echo.close();
    },
  };
}
