// TrafficPolicy.rateLimit on the receiving agent, on loopback with real TLS: request streams as
// a peer agent sends them reach the inbound HTTP stack behind a real tunnel server; beyond the
// service's token bucket they get 429 with retry-after (gRPC: RESOURCE_EXHAUSTED), a CONNECT
// gets 429 too, a service without a rate limit is untouched, and a rate of N per second admits
// N per second. Metrics scraped over HTTP.
import { once } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import {
  type ClientHttp2Session,
  createServer as createH2Server,
  type Http2Server,
  connect as h2connect,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from 'node:http2';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
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
import { tunnelAccessRecorder, tunnelAuthorizer } from '../../src/proxy/inbound/tunnel-inbound.js';
import { MeshState } from '../../src/proxy/mesh-state.js';
import { registerResilienceMetrics } from '../../src/proxy/resilience/resilience-metrics.js';
import { Telemetry } from '../../src/proxy/telemetry.js';
import { computedTraffic } from '../../src/proxy/traffic-policies.js';
import type { TunnelServer } from '../../src/proxy/tunnel/index.js';
import { propagatingTracer } from '../../src/telemetry/propagating-tracer.js';
import { serviceDoc, viewOf, workloadDoc } from '../helpers/mesh-views.js';
import { sumSeries } from '../helpers/metrics-text.js';
import { type MeshPki, meshPki, startServer } from './tunnel-fixture.js';

const REGISTERED = '127.0.0.2';

let pki: MeshPki;
let server: TunnelServer;
let metrics: MetricsServer;
let apps: LocalApps;
let session: ClientHttp2Session;
const ports = { h1: 0, h2: 0, tcp: 0 };
const closers: Array<() => unknown> = [];

function policy(name: string, service: string, rateLimit: Record<string, unknown>) {
  return {
    apiVersion: 'weft/v1',
    kind: 'TrafficPolicy',
    metadata: { name },
    spec: { targetRef: { name: service }, rateLimit },
  };
}

async function listen(s: HttpServer | Http2Server | NetServer): Promise<number> {
  s.listen(0, REGISTERED);
  await once(s, 'listening');
  closers.push(() => s.close());
  return (s.address() as { port: number }).port;
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function request(headers: OutgoingHttpHeaders): Promise<Reply> {
  const stream = session.request(headers, { endStream: headers[':method'] !== 'CONNECT' });
  return new Promise((resolve, reject) => {
    let head: IncomingHttpHeaders = {};
    let body = '';
    stream.once('response', (h) => {
      head = h;
      if (headers[':method'] === 'CONNECT' && Number(h[':status']) === 200) stream.end();
    });
    stream.setEncoding('utf8');
    stream.on('data', (c: string) => (body += c));
    stream.once('end', () => resolve({ status: Number(head[':status']), headers: head, body }));
    stream.once('error', reject);
  });
}

/** A request as a peer agent sends it, for the app at `port` (weft-target). */
function toApp(port: number, extra: OutgoingHttpHeaders = {}): OutgoingHttpHeaders {
  return {
    ':method': 'GET',
    ':path': '/',
    ':authority': 'web.mesh',
    ':scheme': 'http',
    'weft-target': `${REGISTERED}:${port}`,
    'weft-orig-proto': 'HTTP/1.1',
    ...extra,
  };
}

async function scrape(pattern: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metrics.port}/metrics`)).text();
  return sumSeries(text, pattern);
}

let state: MeshState;
const docs: Record<string, unknown>[] = [];

beforeAll(async () => {
  pki = await meshPki();
  ports.h1 = await listen(createHttpServer((req, res) => res.end(`hello ${req.url}`)));
  const h2 = createH2Server();
  h2.on('stream', (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { endStream: true });
  });
  h2.on('session', (s) => closers.push(() => s.destroy()));
  ports.h2 = await listen(h2);
  ports.tcp = await listen(createNetServer((socket) => socket.end('tcp hello\n')));
  // Four services on the same h1 app port would be one workload: each gets its own port.
  const h1b = await listen(createHttpServer((req, res) => res.end(`free ${req.url}`)));
  const h1c = await listen(createHttpServer((req, res) => res.end(`rated ${req.url}`)));
  Object.assign(ports, { free: h1b, rated: h1c });

  docs.push(
    serviceDoc('limited', '240.240.0.10', [{ port: 80, targetPort: ports.h1, protocol: 'http' }]),
    serviceDoc('free', '240.240.0.11', [{ port: 80, targetPort: h1b, protocol: 'http' }]),
    serviceDoc('rated', '240.240.0.12', [{ port: 80, targetPort: h1c, protocol: 'http' }]),
    serviceDoc('grpc', '240.240.0.13', [{ port: 50051, targetPort: ports.h2, protocol: 'grpc' }]),
    serviceDoc('db', '240.240.0.14', [{ port: 5432, targetPort: ports.tcp, protocol: 'tcp' }]),
    workloadDoc('node-b', 'limited', REGISTERED, ports.h1),
    workloadDoc('node-b', 'free', REGISTERED, h1b),
    workloadDoc('node-b', 'rated', REGISTERED, h1c),
    workloadDoc('node-b', 'grpc', REGISTERED, ports.h2),
    workloadDoc('node-b', 'db', REGISTERED, ports.tcp),
    // Three requests, then one more per hour: the fourth is refused, for about an hour.
    policy('limited', 'limited', { maxTokens: 3, tokensPerFill: 1, fillInterval: '1h' }),
    policy('grpc', 'grpc', { maxTokens: 1, fillInterval: '1h' }),
    policy('db', 'db', { maxTokens: 2, fillInterval: '1h' }),
    // 100 per second, in fills of 5 every 50 ms, with a burst of 25.
    policy('rated', 'rated', { maxTokens: 25, tokensPerFill: 5, fillInterval: '50ms' }),
  );
  state = new MeshState('node-b', computedTraffic());
  state.update(viewOf(docs));
  const registry = new Registry();
  const log = pino({ level: 'silent' });
  const telemetry = new Telemetry(registry, log);
  registerResilienceMetrics(registry, state);
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
    onStream: tunnelAccessRecorder(state, telemetry),
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

describe('rate limit on the receiving agent', () => {
  it('admits maxTokens requests, then answers 429 with retry-after and counts it', async () => {
    const statuses: number[] = [];
    let refused: Reply | undefined;
    for (let i = 0; i < 5; i++) {
      const r = await request(toApp(ports.h1, { ':path': `/r/${i}` }));
      statuses.push(r.status);
      if (r.status === 429) refused = r;
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    // The next token is an hour away: retry-after says so, in whole seconds.
    const retryAfter = Number(refused?.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(3_500);
    expect(retryAfter).toBeLessThanOrEqual(3_600);
    // The reason is a word of the vocabulary; what happened is the body's one line.
    expect(refused?.headers['weft-reason']).toBe('rate_limited');
    expect(refused?.body).toMatch(/^weft: rate limit of limited reached/);
    expect(await scrape(/^weft_rate_limited_total\{dst_service="limited"\}/)).toBe(2);
    expect(
      await scrape(
        /^weft_http_requests_total\{direction="inbound",[^}]*dst_service="limited",[^}]*status_code="429"/,
      ),
    ).toBe(2);
  });

  it('leaves a service without a rate limit alone', async () => {
    for (let i = 0; i < 20; i++) {
      const r = await request(toApp((ports as Record<string, number>).free!, { ':path': `/${i}` }));
      expect(r.status).toBe(200);
    }
    expect(await scrape(/^weft_rate_limited_total\{dst_service="free"\}/)).toBe(0);
  });

  it('gives gRPC a trailers-only RESOURCE_EXHAUSTED', async () => {
    const grpc = (): OutgoingHttpHeaders => {
      const h = toApp(ports.h2, { 'content-type': 'application/grpc', ':method': 'POST' });
      delete h['weft-orig-proto'];
      return h;
    };
    const ok = await request(grpc());
    expect(ok.status).toBe(200);
    expect(ok.headers['grpc-status']).toBeUndefined();
    const limited = await request(grpc());
    expect(limited.status).toBe(200);
    expect(limited.headers['grpc-status']).toBe('8');
    expect(limited.headers['weft-reason']).toBe('rate_limited');
    expect(limited.headers['retry-after']).toBeDefined();
  });

  it('refuses a CONNECT beyond the limit with 429, one token per connection', async () => {
    const connect = { ':method': 'CONNECT', ':authority': `${REGISTERED}:${ports.tcp}` };
    const answers: (string | number)[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await request(connect);
      answers.push(r.status === 200 ? r.body : r.status);
      if (i === 2) expect(r.headers['retry-after']).toBeDefined();
    }
    expect(answers).toEqual(['tcp hello\n', 'tcp hello\n', 429]);
    expect(await scrape(/^weft_rate_limited_total\{dst_service="db"\}/)).toBe(1);
    // The stream's record closes with the reason.
    expect(
      await scrape(
        /^weft_tcp_close_total\{direction="inbound",[^}]*dst_service="db",reason="rate_limited"\}/,
      ),
    ).toBe(1);
  });

  it('admits N per second: 100/s over 4 s of a client asking faster, +-5 % (burst apart)', async () => {
    const target = (ports as Record<string, number>).rated!;
    // Drained first: the window starts with an empty bucket, so what it admits is the fills.
    let drained = false;
    while (!drained) drained = (await request(toApp(target))).status === 429;
    const windowMs = 4_000;
    const started = performance.now();
    let admitted = 0;
    let refused = 0;
    // Eight callers at once, each asking again as soon as it is answered: far above 100/s.
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (performance.now() - started < windowMs) {
          const r = await request(toApp(target));
          if (r.status === 200) admitted += 1;
          else refused += 1;
        }
      }),
    );
    const elapsed = performance.now() - started;
    // The bucket admits 5 per whole 50 ms; the window's two ends cost at most one fill each,
    // and the last answers may land up to one request's time after the window: 5 % of 400
    // (20) covers these. Demand must have stayed above supply for the figure to mean anything.
    const expected = (100 * elapsed) / 1_000;
    expect(refused).toBeGreaterThan(admitted);
    expect(Math.abs(admitted - expected)).toBeLessThanOrEqual(0.05 * expected);
  });
});
