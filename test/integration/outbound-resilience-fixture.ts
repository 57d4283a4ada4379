// The outbound HTTP stack on loopback with TrafficPolicy timeouts and retries: the whole
// outbound handler behind a listener that plays the capture, a real TunnelPool, and two real
// tunnel servers (node-b on 127.0.0.1, node-c on 127.0.0.2) whose backend fails on command by
// path, and records every try it sees (node, path, body size, grpc-timeout, reset or not).
//   /ok/...            200 with {"node": ...}
//   /flap/...          node-b: 503, then a reset before any answer, alternating; node-c: 200
//   /fail/...          503 from every endpoint
//   /status/NNN/...    NNN from every endpoint
//   /slow/MS/...       200 after MS milliseconds
//   /slowfail/MS/...   503 after MS milliseconds
//   /first-slow/KEY/MS/...  the first try of KEY (on either node) is answered after MS
//                      milliseconds, every later one at once: 200 with {"node": ...}
//   /app-down/...      node-b: 502 weft-undelivered (its agent could not reach its app, as the
//                      inbound stack answers); node-c: 200
//   /stall/...         the response head and one chunk, then nothing
//   /reset-after/...   the response head and one chunk, then a reset
//   gRPC (content-type application/grpc): the first call of a test is answered after 300 ms
//   with a trailers-only UNAVAILABLE (14); later ones with one message and grpc-status 0.
import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { createServer, type Socket } from 'node:net';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { InboundHttpHandler } from '../../src/proxy/http/types.js';
import { MeshState } from '../../src/proxy/mesh-state.js';
import { computedTraffic } from '../../src/proxy/traffic-policies.js';
import { connectLocal, type TunnelServerOptions } from '../../src/proxy/tunnel/index.js';
import { serviceDoc, viewOf, workloadDoc } from '../helpers/mesh-views.js';
import { issueLeaf } from '../helpers/test-pki.js';
import { outboundStack } from './outbound-stack-fixture.js';
import { echoTarget, type MeshPki, newPool, source, startServer, TD } from './tunnel-fixture.js';

/** One try as a backend saw it. */
export interface Try {
  node: string;
  path: string;
  method: string;
  bodyBytes: number;
  grpcTimeout: string | undefined;
  /** Set when its stream ended in a reset (the sending agent cancelled it, or we did). */
  reset: boolean;
}

/**
 * A service of the lab: its VIP, its port's protocol (default http), its endpoints' nodes
 * (default node-b and node-c; node-e at 127.0.0.3 accepts TCP on the tunnel port and never
 * says a word, so no tunnel session to it ever completes) and its TrafficPolicy spec.
 */
export interface LabService {
  name: string;
  vip: string;
  protocol?: string;
  nodes?: ('node-b' | 'node-c' | 'node-e')[];
  policy?: Record<string, unknown>;
}

const NODE_ADDRESS = { 'node-b': '127.0.0.1', 'node-c': '127.0.0.2', 'node-e': '127.0.0.3' };

export interface ResilienceLab {
  tries: Try[];
  logs: Record<string, unknown>[];
  registry: Registry;
  /** The capture's port for a service's VIP, port 80. */
  port(service: string): Promise<number>;
  /** The next gRPC call fails again (see the header). */
  failNextGrpc(): void;
  /** TCP connections the silent node-e accepted. */
  silentAccepts(): number;
  close(): Promise<void>;
}

export async function resilienceLab(
  pki: MeshPki,
  services: LabService[],
  /** A TrafficPolicy spec whose target is the Mesh: every service's defaults. */
  meshPolicy?: Record<string, unknown>,
  /** More resources for the snapshot (HTTPRoutes over these services). */
  extra: Record<string, unknown>[] = [],
): Promise<ResilienceLab> {
  const tries: Try[] = [];
  const logs: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => logs.push(JSON.parse(s)) });
  const grpc = { failNext: true };
  const nodeC = await issueLeaf(pki.ca, `spiffe://${TD}/node/node-c`);
  // Opaque CONNECT streams end at an echo server, whatever endpoint they name.
  const echo = await echoTarget();
  const connect: TunnelServerOptions['connect'] = (_target, o) =>
    connectLocal({ address: '127.0.0.1', port: echo.port }, o);
  const b = await startServer(pki, { onRequest: backend('node-b', tries, grpc), connect });
  const c = await startServer(pki, {
    host: '127.0.0.2',
    port: b.port,
    identity: { key: nodeC.keyPem, cert: nodeC.certPem },
    onRequest: backend('node-c', tries, grpc),
    connect,
  });
  let silent = 0;
  const held = new Set<Socket>();
  const e = createServer((socket) => {
    silent += 1;
    held.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => held.delete(socket));
  });
  await new Promise<void>((resolve) => e.listen(b.port, '127.0.0.3', resolve));
  const pool = newPool(pki);
  const state = new MeshState('node-a', computedTraffic());
  const docs: Record<string, unknown>[] = [];
  for (const s of services) {
    const protocol = s.protocol ?? 'http';
    docs.push(serviceDoc(s.name, s.vip, [{ port: 80, targetPort: 8080, protocol }]));
    for (const node of s.nodes ?? ['node-b', 'node-c']) {
      docs.push(workloadDoc(node, s.name, NODE_ADDRESS[node], 8080));
    }
    if (s.policy) {
      docs.push({
        apiVersion: 'weft/v1',
        kind: 'TrafficPolicy',
        metadata: { name: `${s.name}-policy` },
        spec: { targetRef: { name: s.name }, ...s.policy },
      });
    }
  }
  if (meshPolicy) {
    docs.push({
      apiVersion: 'weft/v1',
      kind: 'TrafficPolicy',
      metadata: { name: 'mesh-defaults' },
      spec: { targetRef: { kind: 'Mesh' }, ...meshPolicy },
    });
  }
  state.update(viewOf([...docs, ...extra]));
  const registry = new Registry();
  const inbound: InboundHttpHandler = () => {
    throw new Error(
      'no endpoint of this lab is on this host: the inbound stack must not be called',
    );
  };
  const stack = outboundStack({
    state,
    pool,
    registry,
    log,
    tunnelPort: b.port,
    inbound,
    identity: source(pki.client),
    maxAttempts: 3,
  });
  return {
    tries,
    logs,
    registry,
    failNextGrpc() {
      grpc.failNext = true;
    },
    silentAccepts: () => silent,
    async port(name) {
      const vip = services.find((s) => s.name === name)!.vip;
      return stack.capture(vip, 80);
    },
    async close() {
      await stack.close();
      pool.destroy();
      b.destroy();
      c.destroy();
      for (const socket of held) socket.destroy();
      e.close();
      await echo.close();
    },
  };
}

/** A gRPC message of JSON (the 5-byte length prefix of gRPC over HTTP/2, uncompressed). */
export function grpcFrame(message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message));
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** The keys of /first-slow/ whose first try has come (shared by both nodes). */
const firstSlowSeen = new Set<string>();

function backend(
  node: string,
  tries: Try[],
  grpc: { failNext: boolean },
): TunnelServerOptions['onRequest'] {
  let flaps = 0;
  return (stream: ServerHttp2Stream, headers) => {
    const entry: Try = {
      node,
      path: String(headers[':path']),
      method: String(headers[':method']),
      bodyBytes: 0,
      grpcTimeout: headers['grpc-timeout'] as string | undefined,
      reset: false,
    };
    tries.push(entry);
    stream.on('error', () => {});
    stream.on('data', (c: Buffer) => {
      entry.bodyBytes += c.length;
    });
    serve(stream, headers, entry);
    return new Promise((resolve) =>
      stream.once('close', () => {
        entry.reset = stream.rstCode !== constants.NGHTTP2_NO_ERROR;
        resolve({ status: 200, reason: entry.reset ? 'client_reset' : 'done' });
      }),
    );
  };

  function serve(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, entry: Try): void {
    const path = entry.path;
    const answer = (status: number): void => {
      stream.once('end', () => {
        if (stream.destroyed) return;
        stream.respond({ ':status': status, 'content-type': 'application/json' });
        stream.end(JSON.stringify({ node, status }));
      });
    };
    if (headers['content-type'] === 'application/grpc') {
      const fail = grpc.failNext;
      grpc.failNext = false;
      stream.once('end', () => {
        if (fail) {
          setTimeout(() => {
            if (stream.destroyed) return;
            stream.respond(
              { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14' },
              { endStream: true },
            );
          }, 300);
          return;
        }
        stream.respond(
          { ':status': 200, 'content-type': 'application/grpc' },
          { waitForTrailers: true },
        );
        stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(grpcFrame({ node, grpcTimeout: entry.grpcTimeout }));
      });
      return;
    }
    if (path.startsWith('/flap/') && node === 'node-b') {
      flaps += 1;
      if (flaps % 2 === 1) answer(503);
      else stream.close(constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    if (path.startsWith('/fail/')) {
      answer(503);
      return;
    }
    if (path.startsWith('/app-down/') && node === 'node-b') {
      stream.resume();
      stream.respond(
        { ':status': 502, 'weft-reason': 'connect_failed', 'weft-undelivered': 'connect_failed' },
        { endStream: true },
      );
      return;
    }
    const fixed = /^\/status\/(\d{3})\//.exec(path);
    if (fixed) {
      answer(Number(fixed[1]));
      return;
    }
    const slowFail = /^\/slowfail\/(\d+)\//.exec(path);
    if (slowFail) {
      stream.once('end', () => {
        setTimeout(() => {
          if (stream.destroyed) return;
          stream.respond({ ':status': 503 }, { endStream: true });
        }, Number(slowFail[1]));
      });
      return;
    }
    const firstSlow = /^\/first-slow\/([^/]+)\/(\d+)\//.exec(path);
    if (firstSlow) {
      const first = !firstSlowSeen.has(firstSlow[1]!);
      firstSlowSeen.add(firstSlow[1]!);
      stream.once('end', () => {
        const timer = setTimeout(
          () => {
            if (stream.destroyed) return;
            stream.respond({ ':status': 200, 'content-type': 'application/json' });
            stream.end(JSON.stringify({ node, status: 200 }));
          },
          first ? Number(firstSlow[2]) : 0,
        );
        stream.once('close', () => clearTimeout(timer));
      });
      return;
    }
    const slow = /^\/slow\/(\d+)\//.exec(path);
    if (slow) {
      stream.once('end', () => {
        const timer = setTimeout(() => {
          if (!stream.destroyed) stream.respond({ ':status': 200 }, { endStream: true });
        }, Number(slow[1]));
        stream.once('close', () => clearTimeout(timer));
      });
      return;
    }
    if (path.startsWith('/stall/') || path.startsWith('/reset-after/')) {
      stream.once('end', () => {
        stream.respond({ ':status': 200 });
        stream.write('partial');
        if (path.startsWith('/reset-after/'))
          setImmediate(() => stream.destroy(new Error('backend failed mid-body')));
      });
      return;
    }
    answer(200);
  }
}
