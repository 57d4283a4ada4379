// The outbound HTTP stack on loopback: the whole outbound handler (identify, route, protocol,
// HTTP stack) behind a listener that plays the capture (a fixed original destination), a real
// TunnelPool, and two real tunnel servers (node-b on 127.0.0.1, node-c on 127.0.0.2, one port)
// whose onRequest is a small backend that says what it received. Detection is detect.ts's.

import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { InboundHttpHandler } from '../../src/proxy/http/types.js';
import { MeshState } from '../../src/proxy/mesh-state.js';
import { computedTraffic } from '../../src/proxy/traffic-policies.js';
import type {
  TunnelPool,
  TunnelServer,
  TunnelServerOptions,
} from '../../src/proxy/tunnel/index.js';
import { serviceDoc, viewOf, workloadDoc } from '../helpers/mesh-views.js';
import { issueLeaf } from '../helpers/test-pki.js';
import { outboundStack } from './outbound-stack-fixture.js';
import { type MeshPki, newPool, source, startServer, TD } from './tunnel-fixture.js';

export const WEB_VIP = '240.240.0.10';
export const EMPTY_VIP = '240.240.0.11';
export const LOCAL_VIP = '240.240.0.12';
export const H2_VIP = '240.240.0.13';
export const FLAKY_VIP = '240.240.0.14';
export const GONE_VIP = '240.240.0.15';

/** What a backend saw of one request. */
export interface Seen {
  node: string;
  target: string;
  origProto: string | null;
  client: string | null;
  method: string;
  path: string;
  authority: string;
  body: string;
  /** Any weft-* field other than the contract's, or a hop-by-hop one: must be none. */
  stray: string[];
  /** The request's fields as the backend got them. */
  headers: Record<string, unknown>;
}

/** Requests for an endpoint on this port are never answered (a stuck upstream, e.g. a mirror). */
export const STUCK_PORT = 8086;

/**
 * A backend behind a tunnel server: answers 200 with what it saw as JSON, and the trailers
 * `x-checksum: abc` and `grpc-status: 0` when the request asks with `x-want-trailers: 1`.
 */
/** How far a backend got writing a `/big/<MiB>` response, and whether it waits for room. */
export const bigResponse = { written: 0, waiting: false, done: false };

/** Writes `mib` MiB as fast as the stream takes it, waiting for 'drain' when it is full. */
function writeBig(stream: ServerHttp2Stream, mib: number): void {
  const chunk = Buffer.alloc(1024 * 1024, 0x61);
  Object.assign(bigResponse, { written: 0, waiting: false, done: false });
  stream.respond({ ':status': 200, 'content-length': String(mib * chunk.length) });
  const more = (): void => {
    bigResponse.waiting = false;
    while (bigResponse.written < mib * chunk.length) {
      bigResponse.written += chunk.length;
      if (!stream.write(chunk)) {
        bigResponse.waiting = true;
        stream.once('drain', more);
        return;
      }
    }
    bigResponse.done = true;
    stream.end();
  };
  more();
}

/** Paths of requests whose stream the backend saw reset (never ended cleanly). */
export const resets: string[] = [];
/** Paths of requests as they arrive at a backend (before their body). */
export const arrivals: string[] = [];

export function backend(node: string, seen: Seen[]): TunnelServerOptions['onRequest'] {
  // The tunnel server counts request streams by how they ended: say so once each is done.
  return (stream: ServerHttp2Stream, headers) => {
    serve(stream, headers);
    return new Promise((resolve) =>
      stream.once('close', () =>
        resolve({ status: 200, reason: stream.rstCode ? 'client_reset' : 'done' }),
      ),
    );
  };
  function serve(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    arrivals.push(String(headers[':path']));
    stream.on('error', () => {});
    stream.once('close', () => {
      if (stream.rstCode) resets.push(String(headers[':path']));
    });
    const path = String(headers[':path']);
    if (String(headers['weft-target']).endsWith(`:${STUCK_PORT}`)) {
      seen.push({ node, path, target: String(headers['weft-target']) } as Seen);
      stream.resume();
      return;
    }
    if (path.startsWith('/reset-before/') || path.startsWith('/reset-after/')) {
      // An upstream that fails: before answering, or halfway through its body.
      seen.push({ node, path } as Seen);
      stream.on('error', () => {});
      stream.resume();
      if (path.startsWith('/reset-after/')) {
        stream.respond({ ':status': 200 });
        stream.write('partial');
        // destroy() resets at once (RST_STREAM INTERNAL_ERROR); close() would end it first.
        setImmediate(() => stream.destroy(new Error('backend failed mid-body')));
      } else stream.close(constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    if (path.startsWith('/app-down/') && node === 'node-b') {
      // node-b's agent cannot reach its app: it answers as the inbound stack does.
      seen.push({ node, path } as Seen);
      stream.resume();
      stream.respond(
        {
          ':status': 502,
          'weft-reason': 'connect_failed',
          'weft-undelivered': 'connect_failed',
        },
        { endStream: true },
      );
      return;
    }
    const big = /^\/big\/(\d+)$/.exec(String(headers[':path']));
    if (big) {
      stream.resume();
      writeBig(stream, Number(big[1]));
      return;
    }
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const contract = ['weft-target', 'weft-orig-proto', 'weft-client-addr'];
      const entry: Seen = {
        node,
        target: String(headers['weft-target']),
        origProto: (headers['weft-orig-proto'] as string | undefined) ?? null,
        client: (headers['weft-client-addr'] as string | undefined) ?? null,
        method: String(headers[':method']),
        path: String(headers[':path']),
        authority: String(headers[':authority']),
        body: Buffer.concat(chunks).toString(),
        stray: Object.keys(headers).filter(
          (h) =>
            (h.startsWith('weft-') && !contract.includes(h)) ||
            ['connection', 'keep-alive', 'x-hop'].includes(h),
        ),
        headers: { ...headers },
      };
      seen.push(entry);
      const trailers = headers['x-want-trailers'] === '1';
      stream.respond(
        { ':status': 200, 'content-type': 'application/json' },
        { waitForTrailers: trailers },
      );
      if (trailers) {
        stream.once('wantTrailers', () =>
          stream.sendTrailers({ 'x-checksum': 'abc', 'grpc-status': '0' }),
        );
      }
      stream.end(JSON.stringify(entry));
    });
  }
}

export interface OutboundLab {
  pool: TunnelPool;
  servers: TunnelServer[];
  seen: Seen[];
  logs: Record<string, unknown>[];
  registry: Registry;
  /** Calls the same-host inbound stack received. */
  inboundCalls: Parameters<InboundHttpHandler>[0][];
  /** A listener standing for the capture of connections to vip:port. */
  capture(vip: string, port: number): Promise<number>;
  close(): Promise<void>;
}

export async function outboundLab(
  pki: MeshPki,
  overrides: Partial<TunnelServerOptions> = {},
  /** More resources for the snapshot (routes and their services), and the route stage's draws. */
  more: { docs?: Record<string, unknown>[]; random?: () => number } = {},
): Promise<OutboundLab> {
  const seen: Seen[] = [];
  const logs: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => logs.push(JSON.parse(s)) });
  const nodeC = await issueLeaf(pki.ca, `spiffe://${TD}/node/node-c`);
  const b = await startServer(pki, { onRequest: backend('node-b', seen), ...overrides });
  const c = await startServer(pki, {
    host: '127.0.0.2',
    port: b.port,
    identity: { key: nodeC.keyPem, cert: nodeC.certPem },
    onRequest: backend('node-c', seen),
    ...overrides,
  });
  const pool = newPool(pki);
  const state = new MeshState('node-a', computedTraffic());
  state.update(
    viewOf([
      serviceDoc('web', WEB_VIP, [{ port: 80, targetPort: 8080, protocol: 'http' }]),
      serviceDoc('empty', EMPTY_VIP, [{ port: 80, protocol: 'http' }]),
      serviceDoc('loc', LOCAL_VIP, [{ port: 80, targetPort: 9090, protocol: 'http' }]),
      serviceDoc('h2', H2_VIP, [{ port: 80, targetPort: 8080, protocol: 'grpc' }]),
      workloadDoc('node-b', 'web', '127.0.0.1', 8080),
      workloadDoc('node-b', 'h2', '127.0.0.1', 8080),
      // node-d runs no agent: its tunnel cannot be reached.
      serviceDoc('flaky', FLAKY_VIP, [{ port: 80, targetPort: 8080, protocol: 'http' }]),
      workloadDoc('node-b', 'flaky', '127.0.0.1', 8080),
      workloadDoc('node-d', 'flaky', '127.0.0.4', 8080),
      // Its only endpoint is on node-d: no tunnel, so every request gets the agent's 503.
      serviceDoc('gone', GONE_VIP, [{ port: 80, targetPort: 8080, protocol: 'http' }]),
      workloadDoc('node-d', 'gone', '127.0.0.4', 8080),
      workloadDoc('node-c', 'web', '127.0.0.2', 8080),
      workloadDoc('node-a', 'loc', '127.0.0.1', 9090),
      ...(more.docs ?? []),
    ]),
  );
  const registry = new Registry();
  const inboundCalls: OutboundLab['inboundCalls'] = [];
  const inbound: InboundHttpHandler = async (call) => {
    inboundCalls.push(call);
    call.request.body.resume();
    const { Readable } = await import('node:stream');
    return {
      status: 201,
      headers: { 'x-local': 'yes' },
      body: Readable.from([Buffer.from('local answer')]),
      trailers: () => undefined,
    };
  };
  const me = source(pki.client);
  const stack = outboundStack({
    state,
    pool,
    registry,
    log,
    tunnelPort: b.port,
    inbound,
    identity: me,
    maxAttempts: 3,
    ...(more.random ? { random: more.random } : {}),
  });
  return {
    pool,
    servers: [b, c],
    seen,
    logs,
    registry,
    inboundCalls,
    capture: (vip, port) => stack.capture(vip, port),
    async close() {
      await stack.close();
      pool.destroy();
      b.destroy();
      c.destroy();
    },
  };
}
