// Adaptive concurrency and QoS classes on the inbound HTTP stack, behind a real tunnel server
// on loopback with real TLS: request streams as peer agents send them, each caller with its own
// service identity (checkout: critical, reports: sheddable, frontend: standard), reach an app
// of fixed capacity (test/fixtures/capacity-app.mjs, its own process) or one that holds
// requests until told. Sheds are seen as a caller sees them (status, weft-reason, gRPC status)
// and in the metrics.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer as createHttpServer, type ServerResponse } from 'node:http';
import {
  type ClientHttp2Session,
  constants,
  connect as h2connect,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from 'node:http2';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalConnector } from '../../src/proxy/endpoint/connect-local.js';
import { createInboundHttpHandler } from '../../src/proxy/http/inbound-stack.js';
import { tunnelRequestHandler } from '../../src/proxy/http/inbound-tunnel.js';
import { LocalApps } from '../../src/proxy/http/local-app.js';
import { RequestTelemetry } from '../../src/proxy/http/request-telemetry.js';
import { randomTraceIds } from '../../src/proxy/http/trace-ids.js';
import { tunnelAuthorizer } from '../../src/proxy/inbound/tunnel-inbound.js';
import { MeshState } from '../../src/proxy/mesh-state.js';
import { AdaptiveConcurrency } from '../../src/proxy/resilience/adaptive-concurrency.js';
import { percentileOf } from '../../src/proxy/resilience/adaptive-limit.js';
import { Telemetry } from '../../src/proxy/telemetry.js';
import { computedTraffic } from '../../src/proxy/traffic-policies.js';
import type { TunnelServer } from '../../src/proxy/tunnel/index.js';
import { propagatingTracer } from '../../src/telemetry/propagating-tracer.js';
import { serviceDoc, viewOf, workloadDoc } from '../helpers/mesh-views.js';
import { sumSeries } from '../helpers/metrics-text.js';
import { issueLeaf } from '../helpers/test-pki.js';
import { waitFor } from '../helpers/wait.js';
import { type MeshPki, meshPki, startServer, TD } from './tunnel-fixture.js';

const APP = fileURLToPath(new URL('../fixtures/capacity-app.mjs', import.meta.url));
const REGISTERED = '127.0.0.2';
/**
 * The app: 8 requests at a time, 100 ms each: 80 requests/s. Slow enough that the agent's own
 * work (and the shared machine) is small beside it: this tests the limit, not the CPU.
 */
const CAPACITY = 8;
const SERVICE_MS = 100;
const CAPACITY_PER_SECOND = (CAPACITY * 1000) / SERVICE_MS;

type Caller = 'checkout' | 'frontend' | 'reports';

let pki: MeshPki;
let server: TunnelServer;
let apps: LocalApps;
let registry: Registry;
let app: ChildProcess;
let appPort = 0;
let heldPort = 0;
const sessions = new Map<Caller, ClientHttp2Session>();
/** Requests the holding app has and has not answered yet. */
const held: ServerResponse[] = [];
const closers: Array<() => unknown> = [];

async function startCapacityApp(): Promise<number> {
  app = spawn(process.execPath, [APP, REGISTERED, '0', String(CAPACITY), String(SERVICE_MS)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  app.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
  });
  return waitFor('the capacity app to listen', () => {
    if (app.exitCode !== null) throw new Error(`capacity app exited with ${app.exitCode}`);
    const line = out.split('\n').find((l) => l.includes('listening'));
    return line === undefined ? undefined : (JSON.parse(line) as { listening: number }).listening;
  });
}

interface Reply {
  headers: IncomingHttpHeaders;
  body: string;
  endAfterHeaders: boolean;
  ms: number;
}

function request(caller: Caller, port: number, extra: OutgoingHttpHeaders = {}): Promise<Reply> {
  const started = performance.now();
  const stream = sessions.get(caller)!.request(
    {
      ':method': 'GET',
      ':path': '/work',
      ':authority': 'orders.mesh',
      ':scheme': 'http',
      'weft-target': `${REGISTERED}:${port}`,
      'weft-orig-proto': 'HTTP/1.1',
      ...extra,
    },
    { endStream: true },
  );
  return new Promise((resolve, reject) => {
    let headers: IncomingHttpHeaders = {};
    let endAfterHeaders = false;
    const chunks: Buffer[] = [];
    stream.once('response', (h, flags: number) => {
      headers = h;
      endAfterHeaders = (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.once('end', () =>
      resolve({
        headers,
        body: Buffer.concat(chunks).toString(),
        endAfterHeaders,
        ms: performance.now() - started,
      }),
    );
    stream.once('error', reject);
  });
}

async function metric(pattern: RegExp): Promise<number> {
  return sumSeries(await registry.metrics(), pattern);
}

beforeAll(async () => {
  pki = await meshPki();
  appPort = await startCapacityApp();
  const holding = createHttpServer((req, res) => {
    req.resume();
    held.push(res);
  });
  holding.listen(0, REGISTERED);
  await once(holding, 'listening');
  heldPort = (holding.address() as { port: number }).port;
  closers.push(
    () => holding.closeAllConnections(),
    () => holding.close(),
  );

  const policy = (name: string, service: string, spec: Record<string, unknown>) => ({
    apiVersion: 'weft/v1',
    kind: 'TrafficPolicy',
    metadata: { name },
    spec: { targetRef: { name: service }, ...spec },
  });
  const state = new MeshState('node-b', computedTraffic());
  state.update(
    viewOf([
      serviceDoc('orders', '240.240.0.20', [{ port: 80, targetPort: appPort, protocol: 'http' }]),
      serviceDoc('held', '240.240.0.21', [{ port: 80, targetPort: heldPort, protocol: 'http' }]),
      workloadDoc('node-b', 'orders', REGISTERED, appPort),
      workloadDoc('node-b', 'held', REGISTERED, heldPort),
      policy('orders-overload', 'orders', {
        adaptiveConcurrency: { minRtt: { requests: 20 } },
        qos: { classes: { critical: ['checkout'], sheddable: ['reports'] } },
      }),
      // One request at a time, whatever the latency: the second one in is shed.
      policy('held-overload', 'held', {
        adaptiveConcurrency: { minConcurrency: 1, maxConcurrency: 1 },
      }),
    ]),
  );
  registry = new Registry();
  const log = pino({ level: 'silent' });
  const telemetry = new Telemetry(registry, log);
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
    overload: new AdaptiveConcurrency({ registry }),
  });
  server = await startServer(pki, {
    authorize: tunnelAuthorizer(state, telemetry),
    onRequest: tunnelRequestHandler(inbound, log),
  });
  for (const caller of ['checkout', 'frontend', 'reports'] as const) {
    const leaf = await issueLeaf(pki.ca, `spiffe://${TD}/svc/${caller}`);
    const session = h2connect(`https://127.0.0.1:${server.port}`, {
      ca: pki.ca.certPem,
      key: leaf.keyPem,
      cert: leaf.certPem,
      checkServerIdentity: () => undefined,
    });
    await once(session, 'remoteSettings');
    sessions.set(caller, session);
  }
});

afterAll(async () => {
  for (const s of sessions.values()) s.destroy();
  server?.destroy();
  apps?.close();
  for (const close of closers) close();
  app?.kill();
});

describe('a request over the limit', () => {
  it('is shed at once: 503 weft-reason overloaded, or a trailers-only UNAVAILABLE that asks gRPC clients not to retry', async () => {
    const first = request('frontend', heldPort);
    await waitFor('the app to hold the first request', () => held.length === 1);

    const grpc = await request('frontend', heldPort, { 'content-type': 'application/grpc' });
    expect(grpc.headers[':status']).toBe(200);
    expect(grpc.headers['grpc-status']).toBe('14');
    expect(grpc.headers['weft-reason']).toBe('overloaded');
    expect(grpc.headers['grpc-retry-pushback-ms']).toBe('-1');
    expect(decodeURIComponent(String(grpc.headers['grpc-message']))).toBe(
      'weft: held is overloaded: 1 requests in flight, limit 1 while its unloaded latency is measured (standard request shed)',
    );
    expect(grpc.endAfterHeaders).toBe(true);

    const plain = await request('checkout', heldPort);
    expect(plain.headers[':status']).toBe(503);
    expect(plain.headers['weft-reason']).toBe('overloaded');
    expect(plain.body).toMatch(/^weft: held is overloaded: 1 requests in flight, limit 1 /);
    expect(held).toHaveLength(1); // neither reached the app

    // The slot is freed when the response ends: the next request is admitted.
    held.shift()!.end('first');
    expect((await first).body).toBe('first');
    const next = request('reports', heldPort);
    await waitFor('the app to get the next request', () => held.length === 1);
    held.shift()!.end('next');
    expect((await next).headers[':status']).toBe(200);

    const shed =
      /^weft_http_overload_shed_total\{dst_service="held",qos_class="(standard|critical)"\}/;
    expect(await metric(shed)).toBe(2);
    const recorded =
      /^weft_http_requests_total\{direction="inbound",src_service="(frontend|checkout)",dst_service="held",route="default",status_code="(503|200)"/;
    await waitFor('the sheds to be recorded', async () => (await metric(recorded)) >= 3);
  });
});

describe('an app of fixed capacity at twice its capacity', () => {
  it('keeps critical requests at 99 % or more, sheds sheddable ones first, and holds the p99 of admitted requests within 3x the unloaded p99', async () => {
    // Unloaded: two callers one request at a time (a quarter of the capacity, no queue; minRTT
    // is measured meanwhile), each identity in turn.
    const callers: Caller[] = ['checkout', 'frontend', 'reports'];
    const unloaded: number[] = [];
    const worker = async (w: number) => {
      for (let i = 0; i < 50; i++) {
        const r = await request(callers[(w + i) % 3]!, appPort);
        expect(r.headers[':status']).toBe(200);
        unloaded.push(r.ms);
      }
    };
    await Promise.all([worker(0), worker(1)]);
    const minRtt = /^weft_http_adaptive_concurrency_min_rtt_seconds\{dst_service="orders"\}/;
    await waitFor('minRTT of orders to be measured', async () => (await metric(minRtt)) > 0);
    const unloadedP99 = percentileOf(unloaded, 99);

    // Twice the capacity, open loop, for 6 s: a quarter critical (half the capacity), a
    // quarter standard, half sheddable.
    const mix: Caller[] = ['checkout', 'frontend', 'reports', 'reports'];
    const rate = 2 * CAPACITY_PER_SECOND;
    const replies = await openLoop(rate, 6, (i) => {
      const caller = mix[i % mix.length]!;
      return request(caller, appPort).then((r) => ({ caller, r }));
    });

    const by = (caller: Caller) => replies.filter((x) => x.caller === caller);
    const ok = (caller: Caller) => by(caller).filter((x) => Number(x.r.headers[':status']) === 200);
    const shedOf = (caller: Caller) =>
      by(caller).filter((x) => x.r.headers['weft-reason'] === 'overloaded');
    const admitted = replies
      .filter((x) => Number(x.r.headers[':status']) === 200)
      .map((x) => x.r.ms);
    const summary = {
      unloadedP99: unloadedP99.toFixed(1),
      admittedP99: percentileOf(admitted.slice(), 99).toFixed(1),
      critical: `${ok('checkout').length}/${by('checkout').length}`,
      standard: `${ok('frontend').length}/${by('frontend').length}`,
      sheddable: `${ok('reports').length}/${by('reports').length}`,
    };
    const said = JSON.stringify(summary);
    // Every answer is the app's 200 or the agent's shed: nothing else fails.
    const neither = replies.filter(
      (x) => Number(x.r.headers[':status']) !== 200 && x.r.headers['weft-reason'] !== 'overloaded',
    );
    expect(neither, said).toEqual([]);
    expect(ok('checkout').length / by('checkout').length, said).toBeGreaterThanOrEqual(0.99);
    expect(shedOf('reports').length, said).toBeGreaterThan(0);
    const rateOf = (c: Caller) => ok(c).length / by(c).length;
    expect(rateOf('reports'), said).toBeLessThan(rateOf('frontend'));
    expect(percentileOf(admitted, 99), said).toBeLessThanOrEqual(3 * unloadedP99);
    // Sheds were counted by class, as an operator sees them.
    const sheddable =
      /^weft_http_overload_shed_total\{dst_service="orders",qos_class="sheddable"\}/;
    expect(await metric(sheddable)).toBe(shedOf('reports').length);
  });
});

/**
 * `rate` requests a second for `seconds`, sent when due whatever the answers (an open loop:
 * a closed one would slow down with the app and never overload it).
 */
async function openLoop<T>(rate: number, seconds: number, send: (i: number) => Promise<T>) {
  const total = Math.round(rate * seconds);
  const gapMs = 1000 / rate;
  const sent: Promise<T>[] = [];
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(total, Math.floor((performance.now() - t0) / gapMs) + 1);
      while (sent.length < due) sent.push(send(sent.length));
      if (sent.length >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  return Promise.all(sent);
}
