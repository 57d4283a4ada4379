// The inbound HTTP stack behind a real tunnel server, on loopback with real TLS: request
// streams as a peer agent sends them (weft-target, weft-orig-proto, weft-client-addr) reach
// real HTTP/1.1 and h2c apps, or are answered by the agent itself (400, 403, gRPC
// PERMISSION_DENIED, 502), with metrics scraped over HTTP.
import { once } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  constants,
  createServer as createH2Server,
  type Http2Server,
  connect as h2connect,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from 'node:http2';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MetricsServer, startMetricsServer } from '../../src/agent/metrics-server.js';
import { LocalConnector } from '../../src/proxy/endpoint/connect-local.js';
import { createInboundHttpHandler } from '../../src/proxy/http/inbound-stack.js';
import { tunnelRequestHandler } from '../../src/proxy/http/inbound-tunnel.js';
import { LocalApps } from '../../src/proxy/http/local-app.js';
import { RequestTelemetry } from '../../src/proxy/http/request-telemetry.js';
import { randomTraceIds } from '../../src/proxy/http/trace-ids.js';
import { tunnelAuthorizer } from '../../src/proxy/inbound/tunnel-inbound.js';
import { MeshState } from '../../src/proxy/mesh-state.js';
import { Telemetry } from '../../src/proxy/telemetry.js';
import { computedTraffic } from '../../src/proxy/traffic-policies.js';
import type { TunnelServer } from '../../src/proxy/tunnel/index.js';
import { propagatingTracer } from '../../src/telemetry/propagating-tracer.js';
import { serviceDoc, viewOf, workloadDoc } from '../helpers/mesh-views.js';
import { sumSeries } from '../helpers/metrics-text.js';
import { waitFor } from '../helpers/wait.js';
import { type MeshPki, meshPki, startServer } from './tunnel-fixture.js';

const REGISTERED = '127.0.0.2';
const MIB = 1024 * 1024;

let pki: MeshPki;
let server: TunnelServer;
let metrics: MetricsServer;
let apps: LocalApps;
let session: ClientHttp2Session;
const closers: Array<() => unknown> = [];

/** What the HTTP/1.1 app saw: connections accepted, the last request's headers. */
const h1 = {
  port: 0,
  connections: 0,
  lastHeaders: {} as IncomingHttpHeaders,
  server: undefined as unknown as HttpServer,
};
/** The slow-reader test's app side: bytes written, and whether it waits for 'drain'. */
const big = { written: 0, waiting: false, done: false };
/** The held requests' app side: seen, and abandoned by the caller before the answer. */
const held = { seen: 0, abandoned: 0 };
let h2Port = 0;
/** The same h2c app on another port, for a service whose policy denies the caller. */
let lockedPort = 0;
let downPort = 0;

/** An app that writes each whole answer (head, body, trailers) in one write: read with its head. */
const WHOLE: Record<string, string> = {
  '/whole': 'HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nin one read',
  '/whole-empty': 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n',
  '/whole-trailers':
    'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\n\r\n' +
    '5\r\nwhole\r\n0\r\nx-sum: 42\r\n\r\n',
};
let wholePort = 0;

function startWholeApp(): NetServer {
  return createNetServer((socket) => {
    let held = '';
    socket.on('data', (chunk: Buffer) => {
      held += chunk.toString('latin1');
      // Bodiless GETs only: each head ends at its blank line.
      for (let end = held.indexOf('\r\n\r\n'); end >= 0; end = held.indexOf('\r\n\r\n')) {
        const path = held.slice(0, held.indexOf('\r\n')).split(' ')[1] ?? '';
        held = held.slice(end + 4);
        socket.write(WHOLE[path] ?? 'HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
      }
    });
    socket.on('error', () => {});
  });
}

async function listen(s: HttpServer | Http2Server | NetServer, port = 0): Promise<number> {
  s.listen(port, REGISTERED);
  await once(s, 'listening');
  return (s.address() as { port: number }).port;
}

function startHttp1App(): HttpServer {
  const s = createHttpServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    h1.lastHeaders = req.headers;
    if (req.url === '/big') return void writeBig(res);
    if (req.url === '/held') {
      // Answered only after 30 s: the caller goes away first.
      held.seen += 1;
      const timer = setTimeout(() => res.end('late'), 30_000);
      res.once('close', () => {
        if (res.writableFinished) return;
        clearTimeout(timer);
        held.abandoned += 1;
      });
      return;
    }
    if (req.url === '/trailers') {
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.addTrailers({ 'x-checksum': 'abc' });
      res.write('with '); // chunked: trailers ride only a chunked body
      return void res.end('trailers');
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      res.setHeader('x-request-bytes', String(body.length));
      res.setHeader('x-peer', `${req.socket.remoteAddress}`);
      res.setHeader('x-http-version', req.httpVersion);
      res.end(
        req.method === 'POST' ? Buffer.concat([Buffer.from('echo:'), body]) : `hello ${req.url}`,
      );
    });
  });
  s.on('connection', (socket: Socket) => {
    h1.connections += 1;
    closers.push(() => socket.destroy());
  });
  return s;
}

/** 256 MiB written with back pressure: write until false, then wait for 'drain'. */
function writeBig(res: import('node:http').ServerResponse): void {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const total = 256 * MIB;
  res.writeHead(200, { 'content-length': String(total) });
  const more = (): void => {
    big.waiting = false;
    while (big.written < total) {
      big.written += chunk.length;
      if (!res.write(chunk)) {
        big.waiting = true;
        res.once('drain', more);
        return;
      }
    }
    res.end(() => {
      big.done = true;
    });
  };
  more();
}

function startH2App(): Http2Server {
  const s = createH2Server();
  s.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      stream.respond(
        { ':status': 200, 'content-type': 'application/grpc', 'x-path': String(headers[':path']) },
        { waitForTrailers: true },
      );
      stream.once('wantTrailers', () =>
        stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'fine', 'x-trailer': 'kept' }),
      );
      stream.end(Buffer.concat([Buffer.from('h2:'), ...chunks]));
    });
  });
  s.on('session', (sess) => closers.push(() => sess.destroy()));
  return s;
}

async function scrape(pattern: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metrics.port}/metrics`)).text();
  return sumSeries(text, pattern);
}

interface Reply {
  headers: IncomingHttpHeaders;
  body: Buffer;
  trailers: IncomingHttpHeaders | undefined;
  /** The response ended with its HEADERS frame (a trailers-only gRPC response). */
  endAfterHeaders: boolean;
}

function request(headers: OutgoingHttpHeaders, body?: Buffer): Promise<Reply> {
  const stream = session.request(headers, { endStream: body === undefined });
  if (body !== undefined) stream.end(body);
  return readReply(stream);
}

function readReply(stream: ClientHttp2Stream): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let trailers: IncomingHttpHeaders | undefined;
    let head: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    let endAfterHeaders = false;
    stream.once('response', (h, flags: number) => {
      head = h;
      endAfterHeaders = (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    stream.once('trailers', (t) => {
      trailers = t;
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.once('end', () =>
      resolve({
        headers: head,
        body: Buffer.concat(chunks),
        trailers,
        endAfterHeaders,
      }),
    );
    stream.once('error', reject);
  });
}

/** A request as a peer agent sends it for the app at `port`. */
function toApp(port: number, extra: OutgoingHttpHeaders = {}): OutgoingHttpHeaders {
  return {
    ':method': 'GET',
    ':path': '/',
    ':authority': 'web.mesh',
    ':scheme': 'http',
    'weft-target': `${REGISTERED}:${port}`,
    ...extra,
  };
}

beforeAll(async () => {
  pki = await meshPki();
  h1.server = startHttp1App();
  h1.port = await listen(h1.server);
  const h2 = startH2App();
  h2Port = await listen(h2);
  const whole = startWholeApp();
  wholePort = await listen(whole);
  closers.push(() => whole.close());
  const h2Locked = startH2App();
  lockedPort = await listen(h2Locked);
  closers.push(() => h2Locked.close());
  // A port where a workload is registered but nothing listens (the app is down).
  const probe = createHttpServer();
  downPort = await listen(probe);
  probe.close();
  closers.push(
    () => h1.server.close(),
    () => h2.close(),
  );

  const state = new MeshState('node-b', computedTraffic());
  state.update(
    viewOf([
      serviceDoc('web', '240.240.0.10', [{ port: 80, targetPort: h1.port, protocol: 'http' }]),
      serviceDoc('grpc', '240.240.0.11', [{ port: 50051, targetPort: h2Port, protocol: 'grpc' }]),
      serviceDoc('down', '240.240.0.12', [{ port: 80, targetPort: downPort, protocol: 'http' }]),
      serviceDoc('whole', '240.240.0.14', [{ port: 80, targetPort: wholePort, protocol: 'http' }]),
      workloadDoc('node-b', 'whole', REGISTERED, wholePort),
      serviceDoc('locked', '240.240.0.13', [
        { port: 81, targetPort: lockedPort, protocol: 'grpc' },
      ]),
      workloadDoc('node-b', 'locked', REGISTERED, lockedPort),
      workloadDoc('node-b', 'web', REGISTERED, h1.port),
      workloadDoc('node-b', 'grpc', REGISTERED, h2Port),
      workloadDoc('node-b', 'down', REGISTERED, downPort),
      {
        apiVersion: 'weft/v1',
        kind: 'AuthorizationPolicy',
        metadata: { name: 'no-admin-posts' },
        spec: {
          targetRef: { name: 'web' },
          action: 'DENY',
          rules: [{ to: [{ methods: ['POST'], paths: ['/admin'] }] }],
        },
      },
      {
        apiVersion: 'weft/v1',
        kind: 'AuthorizationPolicy',
        metadata: { name: 'no-frontend' },
        spec: {
          targetRef: { name: 'locked' },
          action: 'DENY',
          rules: [
            {
              from: [{ principals: ['spiffe://weft.local/svc/frontend'] }],
              to: [{ ports: [lockedPort] }],
            },
          ],
        },
      },
    ]),
  );
  const registry = new Registry();
  const log = pino({ level: 'silent' });
  const telemetry = new Telemetry(registry, log);
  metrics = await startMetricsServer(registry, '127.0.0.1', 0);
  const local = new LocalConnector({
    preserve: false,
    ipv6: false,
    mark: 0,
    socketOps: {
      transparentConnect: () => {
        throw new Error('preserve is off: no transparent connect may be attempted');
      },
    },
    log,
  });
  apps = new LocalApps({ local, connectTimeoutMs: 5_000 });
  const inbound = createInboundHttpHandler({
    state,
    telemetry,
    requests: new RequestTelemetry(registry, log),
    tracer: propagatingTracer(randomTraceIds()),
    apps,
    log,
  });
  server = await startServer(pki, {
    authorize: tunnelAuthorizer(state, telemetry),
    onRequest: tunnelRequestHandler(inbound, log),
  });
  session = h2connect(`https://127.0.0.1:${server.port}`, {
    ca: pki.ca.certPem,
    key: pki.client.keyPem,
    cert: pki.client.certPem,
    checkServerIdentity: () => undefined,
  });
  await once(session, 'remoteSettings');
});

afterAll(async () => {
  session?.destroy();
  server?.destroy();
  apps?.close();
  for (const close of closers) close();
  await metrics?.close();
});

describe('HTTP/1.1 apps (weft-orig-proto: HTTP/1.1)', () => {
  const http1 = { 'weft-orig-proto': 'HTTP/1.1' };

  it('carries GET and POST with bodies both ways, restored to HTTP/1.1 with its Host', async () => {
    const get = await request(toApp(h1.port, { ...http1, ':path': '/a?b=c' }));
    expect(get.headers[':status']).toBe(200);
    expect(get.body.toString()).toBe('hello /a?b=c');
    expect(get.headers['x-http-version']).toBe('1.1');
    expect(h1.lastHeaders.host).toBe('web.mesh');

    const body = Buffer.alloc(3 * MIB, 0x62);
    const post = await request(toApp(h1.port, { ...http1, ':method': 'POST' }), body);
    expect(post.headers['x-request-bytes']).toBe(String(body.length));
    expect(post.body.length).toBe(body.length + 5);
    expect(post.body.subarray(0, 5).toString()).toBe('echo:');
    const requests =
      /^weft_http_requests_total\{direction="inbound",src_service="frontend",dst_service="web",route="default",status_code="200"/;
    await expect.poll(() => scrape(requests)).toBeGreaterThanOrEqual(2);
  });

  it('a caller that resets its stream before the answer: the app sees its request abandoned', async () => {
    // What a hedge's losing attempt, or a client that went away, does to the receiving agent.
    const before = { ...held };
    const stream = session.request(toApp(h1.port, { ...http1, ':path': '/held' }), {
      endStream: true,
    });
    stream.on('error', () => {});
    await waitFor('the app to see the request', () => held.seen > before.seen);
    stream.close(constants.NGHTTP2_CANCEL);
    await waitFor('the app to see it abandoned', () => held.abandoned > before.abandoned);
  });

  it('reuses one kept-alive connection for 20 sequential requests', async () => {
    await request(toApp(h1.port, http1)); // any connection made before is idle now
    const before = h1.connections;
    for (let i = 0; i < 20; i++) {
      const r = await request(toApp(h1.port, { ...http1, ':path': `/seq/${i}` }));
      expect(r.body.toString()).toBe(`hello /seq/${i}`);
    }
    expect(h1.connections - before).toBe(0);
    expect(apps.http1.connections()).toBe(1);
  });

  it('retires a kept-alive connection the app closed: the next request takes a new one', async () => {
    await request(toApp(h1.port, http1)); // one idle connection in the pool
    expect(apps.http1.connections()).toBe(1);
    const before = h1.connections;
    // The app closes its idle connections (its keep-alive timeout, a restart): a FIN.
    h1.server.closeIdleConnections();
    // The pool lets it go, never handing the half-closed connection to the next request. (The
    // lab's mesh test "an endpoint whose process stops" caught this with sockets from the
    // transparent connector, which Node did not retire on the app's FIN.)
    await expect.poll(() => apps.http1.connections()).toBe(0);
    const r = await request(toApp(h1.port, { ...http1, ':path': '/after-close' }));
    expect(r.headers[':status']).toBe(200);
    expect(h1.connections - before).toBe(1);
  });

  it("keeps the app's trailers and repeated fields; frames a body of unknown length", async () => {
    const t = await request(toApp(h1.port, { ...http1, ':path': '/trailers' }));
    expect(t.body.toString()).toBe('with trailers');
    expect(t.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(t.trailers).toMatchObject({ 'x-checksum': 'abc' });

    // A GET with a body and no length: chunked to the app, never unframed (a smuggling hazard).
    const get = await request(toApp(h1.port, { ...http1, ':path': '/get-body' }), Buffer.from('q'));
    expect(get.headers['x-request-bytes']).toBe('1');
    expect(h1.lastHeaders['transfer-encoding']).toBe('chunked');

    // Expect: 100-continue was the caller's agent's to answer; the app gets the body at once.
    const body = Buffer.alloc(100_000, 0x63);
    const headers = { ...http1, ':method': 'POST', expect: '100-continue' };
    const post = await request(toApp(h1.port, headers), body);
    expect(post.headers[':status']).toBe(200);
    expect(post.headers['x-request-bytes']).toBe(String(body.length));
  });

  it('an answer read whole with its head keeps its body, trailers and record', async () => {
    // An app that writes each whole answer (head, body, trailers) in one write: undici reads it
    // in one pass, before the stack's continuation runs; nothing of it may be lost on the way.
    const plain = await request(toApp(wholePort, { ...http1, ':path': '/whole' }));
    expect(plain.headers[':status']).toBe(200);
    expect(plain.body.toString()).toBe('in one read');
    expect(plain.trailers).toBeUndefined();
    const empty = await request(toApp(wholePort, { ...http1, ':path': '/whole-empty' }));
    expect(empty.headers[':status']).toBe(200);
    expect(empty.body.length).toBe(0);
    const t = await request(toApp(wholePort, { ...http1, ':path': '/whole-trailers' }));
    expect(t.body.toString()).toBe('whole');
    expect(t.trailers).toMatchObject({ 'x-sum': '42' });
    const line = (name: string) =>
      new RegExp(
        `^weft_http_${name}\\{direction="inbound",src_service="frontend",dst_service="whole"`,
      );
    await expect.poll(() => scrape(line('requests_total'))).toBe(3);
    expect(await scrape(line('response_bytes_total'))).toBe(11 + 5);
  });

  it("never lets weft's own headers reach the app", async () => {
    await request(
      toApp(h1.port, {
        ...http1,
        'weft-secret': 'x',
        'weft-client-addr': '10.0.0.1:9',
        'x-app': 'y',
      }),
    );
    expect(h1.lastHeaders['x-app']).toBe('y');
    expect(Object.keys(h1.lastHeaders).filter((h) => h.startsWith('weft-'))).toEqual([]);
  });
});

describe('h2c apps', () => {
  it('keeps a gRPC-like response: body and trailers intact', async () => {
    const r = await request(
      toApp(h2Port, {
        ':method': 'POST',
        ':path': '/pkg.Svc/Call',
        'content-type': 'application/grpc',
        te: 'trailers',
      }),
      Buffer.from('msg'),
    );
    expect(r.headers[':status']).toBe(200);
    expect(r.headers['x-path']).toBe('/pkg.Svc/Call');
    expect(r.body.toString()).toBe('h2:msg');
    expect(r.trailers).toMatchObject({
      'grpc-status': '0',
      'grpc-message': 'fine',
      'x-trailer': 'kept',
    });
  });
});

describe('answers the agent makes itself', () => {
  it('refuses a missing or malformed weft-target with 400 and a reason', async () => {
    const missing = toApp(h1.port);
    delete missing['weft-target'];
    const r1 = await request(missing);
    expect(r1.headers[':status']).toBe(400);
    expect(r1.headers['weft-reason']).toBe('bad_request');
    expect(r1.body.toString()).toMatch(/^weft: .*weft-target is missing/);
    for (const bad of ['web.mesh:80', '127.0.0.2', '127.0.0.2:99999']) {
      const r = await request(toApp(h1.port, { 'weft-target': bad }));
      expect(r.headers[':status'], bad).toBe(400);
      expect(r.headers['weft-reason'], bad).toBe('bad_request');
      expect(r.body.toString(), bad).toMatch(/^weft: .*is not ip:port/);
    }
    // Counted by the tunnel server with its CONNECT streams.
    await waitFor('four streams counted as 400 bad_request', () =>
      server
        .stats()
        .streamOutcomes.some(
          (o) => o.status === 400 && o.reason === 'bad_request' && o.count === 4,
        ),
    );
  });

  it('judges methods and paths per request: GET /admin served, POST /admin denied', async () => {
    const http1 = { 'weft-orig-proto': 'HTTP/1.1' };
    const get = await request(toApp(h1.port, { ...http1, ':path': '/admin' }));
    expect(get.headers[':status']).toBe(200);
    const post = await request(
      toApp(h1.port, { ...http1, ':method': 'POST', ':path': '/admin' }),
      Buffer.from('x'),
    );
    expect(post.headers[':status']).toBe(403);
    expect(post.headers['weft-reason']).toBe('denied');
    expect(post.body.toString()).toMatch(/^weft: .*AuthorizationPolicy no-admin-posts/);
  });

  it('refuses a target that is not a workload of this host with 403', async () => {
    const r = await request(toApp(h1.port, { 'weft-target': `127.0.0.1:${h1.port}` }));
    expect(r.headers[':status']).toBe(403);
    expect(r.headers['weft-reason']).toBe('denied');
    expect(r.body.toString()).toMatch(/^weft: .*is not a workload of this host \(node-b\)/);
  });

  it('denies by AuthorizationPolicy with 403, and gRPC with a trailers-only PERMISSION_DENIED', async () => {
    const http = await request(toApp(lockedPort, { ':path': '/x' }));
    expect(http.headers[':status']).toBe(403);
    expect(http.headers['weft-reason']).toBe('denied');
    expect(http.body.toString()).toBe('weft: denied by AuthorizationPolicy no-frontend\n');

    const grpc = await request(
      toApp(lockedPort, {
        ':method': 'POST',
        ':path': '/pkg.Svc/Call',
        'content-type': 'application/grpc',
      }),
      Buffer.from('msg'),
    );
    expect(grpc.headers[':status']).toBe(200);
    expect(grpc.headers['grpc-status']).toBe('7');
    expect(decodeURIComponent(String(grpc.headers['grpc-message']))).toBe(
      'weft: denied by AuthorizationPolicy no-frontend',
    );
    expect(grpc.headers['weft-reason']).toBe('denied');
    expect(grpc.endAfterHeaders).toBe(true);
    expect(grpc.trailers).toBeUndefined();
    const denied =
      /^weft_authz_decisions_total\{direction="inbound",dst_service="locked",decision="deny"\}/;
    expect(await scrape(denied)).toBe(2);
    const recorded =
      /^weft_http_requests_total\{direction="inbound",src_service="frontend",dst_service="locked",route="default",status_code="200",grpc_status="7"\}/;
    await expect.poll(() => scrape(recorded)).toBe(1);
  });

  it('answers 502 when the app is down (gRPC: UNAVAILABLE)', async () => {
    const r = await request(toApp(downPort, { 'weft-orig-proto': 'HTTP/1.1' }));
    expect(r.headers[':status']).toBe(502);
    expect(r.headers['weft-reason']).toBe('connect_failed');
    expect(r.body.toString()).toMatch(/^weft: cannot reach the app at 127\.0\.0\.2:\d+/);
    const g = await request(toApp(downPort, { 'content-type': 'application/grpc' }));
    expect(g.headers['grpc-status']).toBe('14');
  });
});

describe('back pressure', () => {
  it('pauses the app while the caller does not read, and holds a bounded amount for it', async () => {
    const rssBefore = process.memoryUsage().rss;
    const stream = session.request(
      toApp(h1.port, { 'weft-orig-proto': 'HTTP/1.1', ':path': '/big' }),
      {
        endStream: true,
      },
    );
    stream.pause();
    await once(stream, 'response');
    // The app blocks on 'drain' with a bounded amount written...
    await waitFor('the app to wait for drain', () => big.waiting && big.written > 0);
    // ...and stays blocked: an unrelated request completes (sentinel), the app is still held.
    await request(toApp(h1.port, { 'weft-orig-proto': 'HTTP/1.1', ':path': '/sentinel' }));
    expect(big.waiting).toBe(true);
    expect(big.written).toBeLessThan(32 * MIB);

    // Now read all 256 MiB; the process does not grow by anything near the body's size.
    let received = 0;
    let rssMax = 0;
    stream.on('data', (c: Buffer) => {
      received += c.length;
      if ((received & (16 * MIB - 1)) < c.length)
        rssMax = Math.max(rssMax, process.memoryUsage().rss);
    });
    stream.resume();
    await once(stream, 'end');
    expect(received).toBe(256 * MIB);
    expect(big.done).toBe(true);
    expect(rssMax - rssBefore).toBeLessThan(96 * MIB);
  }, 60_000);
});
