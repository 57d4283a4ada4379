// Spans as a collector receives them: an OTLP/HTTP receiver in this test decodes the real
// protobuf ExportTraceServiceRequest (protobufjs, with opentelemetry-proto's own definitions,
// test/fixtures/otlp-proto) that the agent's tracer sends, hop by hop; and a collector that is
// down or hangs costs dropped spans, counted in /metrics, and nothing else.
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import protobuf from 'protobufjs';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgent } from '../../src/agent/agent.js';
import { agentConfigSchema } from '../../src/agent/config.js';
import { type MetricsServer, startMetricsServer } from '../../src/agent/metrics-server.js';
import { nativeSocketOps } from '../../src/native/socket-ops.js';
import type { HeaderMap } from '../../src/proxy/http/types.js';
import { createTracer } from '../../src/telemetry/create-tracer.js';
import { httpSpan } from '../../src/telemetry/http-span.js';
import type { ExportTuning } from '../../src/telemetry/otlp-tracer.js';
import { setTraceHeaders, type Tracer } from '../../src/telemetry/tracer.js';
import { sumSeries } from '../helpers/metrics-text.js';
import { waitFor } from '../helpers/wait.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../..');
const PROTO_DIR = join(here, '../fixtures/otlp-proto');
const log = pino({ level: process.env.WEFT_TEST_LOG ?? 'silent' });

const APP_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const APP_SPAN = '00f067aa0ba902b7';

// ---- the receiver: a collector's OTLP/HTTP traces endpoint, decoding what it gets ----

const proto = new protobuf.Root();
proto.resolvePath = (_origin, target) => join(PROTO_DIR, target);
proto.loadSync('opentelemetry/proto/collector/trace/v1/trace_service.proto');
const ExportRequest = proto.lookupType(
  'opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest',
);

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: string;
  attributes: Record<string, unknown>;
  status: { code?: string; message?: string };
  resource: Record<string, unknown>;
}

interface Receiver {
  url: string;
  spans: ExportedSpan[];
  /** Each request's path and content type, as received. */
  requests: Array<{ path: string; contentType: string }>;
  /** Requests held unanswered (mode "hang"). */
  held: ServerResponse[];
  close(): Promise<void>;
}

type KeyValue = { key: string; value: Record<string, unknown> };

function attributeMap(list: KeyValue[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, value } of list ?? []) {
    const v = value.stringValue ?? value.boolValue ?? value.doubleValue ?? value.intValue;
    out[key] = typeof v === 'string' && 'intValue' in value ? Number(v) : v;
  }
  return out;
}

function hex(bytes: Uint8Array | undefined): string {
  return bytes === undefined ? '' : Buffer.from(bytes).toString('hex');
}

function decode(body: Buffer): ExportedSpan[] {
  const msg = ExportRequest.toObject(ExportRequest.decode(body), { longs: String, enums: String });
  const out: ExportedSpan[] = [];
  for (const rs of msg.resourceSpans ?? []) {
    const resource = attributeMap(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? [])
      for (const s of ss.spans ?? [])
        out.push({
          traceId: hex(s.traceId),
          spanId: hex(s.spanId),
          parentSpanId: hex(s.parentSpanId),
          name: s.name,
          kind: s.kind,
          attributes: attributeMap(s.attributes),
          status: s.status ?? {},
          resource,
        });
  }
  return out;
}

async function startReceiver(mode: 'answer' | 'hang'): Promise<Receiver> {
  const spans: ExportedSpan[] = [];
  const requests: Receiver['requests'] = [];
  const held: ServerResponse[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ path: req.url ?? '', contentType: req.headers['content-type'] ?? '' });
      if (mode === 'hang') {
        held.push(res);
        return;
      }
      const raw = Buffer.concat(chunks);
      spans.push(...decode(req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw));
      // An empty ExportTraceServiceResponse: everything accepted.
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    spans,
    requests,
    held,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** A URL where nothing listens: a port bound and released. */
async function deadEndpoint(): Promise<string> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}/v1/traces`;
}

// ---- one agent's tracer, with its /metrics ----

interface Agent {
  tracer: Tracer;
  metrics: MetricsServer;
  scrape(): Promise<string>;
}

const cleanups: Array<() => Promise<void>> = [];

/** A whole agent in this process (a plain relay: no control plane) on free loopback ports;
 * returns its /metrics port. */
async function startRelayAgent(telemetry: Record<string, unknown>): Promise<number> {
  const ports: number[] = [];
  for (let i = 0; i < 6; i++) ports.push(Number(new URL(await deadEndpoint()).port));
  const [outbound, inbound, admin, tunnel, metrics, dns] = ports;
  const config = agentConfigSchema.parse({
    hostname: 'tracing-test',
    addresses: ['127.0.0.1'],
    metrics: { address: '127.0.0.1' },
    capture: {
      outboundPort: outbound,
      inboundPort: inbound,
      dns: { port: dns },
      agentPorts: { admin, tunnel, metrics },
    },
    telemetry,
  });
  const running = await startAgent(config, { socketOps: nativeSocketOps, log });
  cleanups.push(() => running.stop(0));
  return metrics!;
}
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function agent(
  hostname: string,
  tracing: { otlpEndpoint?: string; sampleRatio?: number },
  tuning: Partial<ExportTuning> = { scheduledDelayMs: 10 },
): Promise<Agent> {
  const registry = new Registry();
  const tracer = await createTracer(tracing, { registry, log, hostname, tuning });
  const metrics = await startMetricsServer(registry, '127.0.0.1', 0);
  cleanups.push(async () => {
    await tracer.shutdown();
    await metrics.close();
  });
  return {
    tracer,
    metrics,
    scrape: async () => (await fetch(`http://127.0.0.1:${metrics.port}/metrics`)).text(),
  };
}

async function tracked(mode: 'answer' | 'hang'): Promise<Receiver> {
  const r = await startReceiver(mode);
  cleanups.push(() => r.close());
  return r;
}

const orders = {
  method: 'GET',
  authority: 'orders.mesh',
  path: '/v1/orders?id=7',
  version: '1.1',
} as const;
const services = { src: 'web', dst: 'orders' };

function parentOf(traceparent: string): string {
  return traceparent.split('-')[2]!;
}

describe('export over OTLP/HTTP protobuf', () => {
  it('records one span per hop: the caller’s trace id kept, each parent the previous hop’s span', async () => {
    const receiver = await tracked('answer');
    const node1 = await agent('node1', { otlpEndpoint: receiver.url });
    const node2 = await agent('node2', { otlpEndpoint: receiver.url });

    // The app on node1 calls with its own span as the parent.
    const fromApp: HeaderMap = {
      traceparent: `00-${APP_TRACE}-${APP_SPAN}-01`,
      tracestate: 'vendor=opaque',
    };
    const out = node1.tracer.start(fromApp, httpSpan('client', orders, services));
    const onTunnel = { ...fromApp };
    setTraceHeaders(onTunnel, out);
    const inb = node2.tracer.start(
      onTunnel,
      httpSpan('server', { ...orders, version: '2' }, services),
    );
    const toApp = { ...onTunnel };
    setTraceHeaders(toApp, inb);
    inb.end({ status: 200 });
    out.end({ status: 200 });

    await waitFor('both hops’ spans at the collector', () => receiver.spans.length >= 2);
    const client = receiver.spans.find((s) => s.kind === 'SPAN_KIND_CLIENT')!;
    const server = receiver.spans.find((s) => s.kind === 'SPAN_KIND_SERVER')!;

    // node1: the app's trace, the app's span as parent, and it forwards its own span id.
    expect(client).toMatchObject({
      traceId: APP_TRACE,
      parentSpanId: APP_SPAN,
      spanId: out.spanId,
    });
    expect(onTunnel.traceparent).toBe(`00-${APP_TRACE}-${client.spanId}-01`);
    // node2: the same trace, node1's span as parent; the app behind it sees node2's span.
    expect(server).toMatchObject({
      traceId: APP_TRACE,
      parentSpanId: client.spanId,
      spanId: inb.spanId,
    });
    expect(parentOf(toApp.traceparent as string)).toBe(server.spanId);
    expect(toApp.tracestate).toBe('vendor=opaque');

    expect(client.name).toBe('GET');
    expect(client.attributes).toEqual({
      'http.request.method': 'GET',
      'url.scheme': 'http',
      'url.path': '/v1/orders',
      'network.protocol.name': 'http',
      'network.protocol.version': '1.1',
      'server.address': 'orders.mesh',
      'weft.src.service': 'web',
      'weft.dst.service': 'orders',
      'http.response.status_code': 200,
    });
    expect(server.attributes).toMatchObject({
      'network.protocol.version': '2',
      'http.response.status_code': 200,
    });
    expect(client.resource).toMatchObject({ 'service.name': 'weft-agent', 'host.name': 'node1' });
    expect(server.resource).toMatchObject({ 'service.name': 'weft-agent', 'host.name': 'node2' });
    expect(receiver.requests[0]).toEqual({
      path: '/v1/traces',
      contentType: 'application/x-protobuf',
    });
    await waitFor('exported spans counted', async () => {
      const [a, b] = [await node1.scrape(), await node2.scrape()];
      return (
        sumSeries(a, /^weft_trace_spans_exported_total /) === 1 &&
        sumSeries(b, /^weft_trace_spans_exported_total /) === 1
      );
    });
  });

  it('starts a trace when none came or the traceparent is invalid, and marks failures as errors', async () => {
    const receiver = await tracked('answer');
    const node = await agent('node1', { otlpEndpoint: receiver.url });
    const fresh = node.tracer.start({}, httpSpan('client', orders, services));
    const invalid = node.tracer.start(
      { traceparent: `00-${APP_TRACE.toUpperCase()}-${APP_SPAN}-01`, tracestate: 'a=1' },
      httpSpan('server', orders, services),
    );
    fresh.end({ status: 503, error: 'no_healthy_endpoint' });
    invalid.end({ status: 0 });
    await waitFor('both spans', () => receiver.spans.length >= 2);

    const byId = (id: string) => receiver.spans.find((s) => s.spanId === id)!;
    expect(byId(fresh.spanId)).toMatchObject({ traceId: fresh.traceId, parentSpanId: '' });
    expect(fresh.traceparent).toBe(`00-${fresh.traceId}-${fresh.spanId}-01`);
    expect(invalid.traceId).not.toBe(APP_TRACE);
    expect(invalid.tracestate).toBeUndefined();
    expect(byId(invalid.spanId)).toMatchObject({ traceId: invalid.traceId, parentSpanId: '' });

    expect(byId(fresh.spanId).status).toEqual({
      code: 'STATUS_CODE_ERROR',
      message: 'no_healthy_endpoint',
    });
    expect(byId(fresh.spanId).attributes).toMatchObject({
      'error.type': 'no_healthy_endpoint',
      'http.response.status_code': 503,
    });
    expect(byId(invalid.spanId).attributes['error.type']).toBe('no_response');
  });

  it('follows the caller’s sampled flag, and sampleRatio for traces that start here', async () => {
    const receiver = await tracked('answer');
    const node = await agent('node1', { otlpEndpoint: receiver.url, sampleRatio: 0 });
    const unsampledCaller = node.tracer.start(
      { traceparent: `00-${APP_TRACE}-${APP_SPAN}-00` },
      httpSpan('client', orders, services),
    );
    const root = node.tracer.start({}, httpSpan('client', orders, services));
    // The sentinel, ended last: a sampled caller is recorded whatever sampleRatio says.
    const sampledCaller = node.tracer.start(
      { traceparent: `00-${'c'.repeat(32)}-${APP_SPAN}-01` },
      httpSpan('client', orders, services),
    );
    unsampledCaller.end({ status: 200 });
    root.end({ status: 200 });
    sampledCaller.end({ status: 200 });

    expect(unsampledCaller.traceparent).toBe(`00-${APP_TRACE}-${unsampledCaller.spanId}-00`);
    expect(root.traceparent).toMatch(/-00$/);
    await waitFor('the sampled caller’s span', () =>
      receiver.spans.some((s) => s.spanId === sampledCaller.spanId),
    );
    expect(receiver.spans.map((s) => s.spanId)).toEqual([sampledCaller.spanId]);
  });
});

describe('a collector that is down or hangs', () => {
  it('down: spans are dropped and counted; the caller never sees it', async () => {
    const node = await agent(
      'node1',
      { otlpEndpoint: await deadEndpoint() },
      {
        scheduledDelayMs: 10,
        exportTimeoutMs: 1_000,
      },
    );
    for (let i = 0; i < 5; i++) {
      const span = node.tracer.start({}, httpSpan('client', orders, services));
      expect(span.traceparent).toBe(`00-${span.traceId}-${span.spanId}-01`);
      span.end({ status: 200 });
    }
    const text = await waitFor('the failed export counted', async () => {
      const t = await node.scrape();
      return sumSeries(t, /^weft_trace_spans_dropped_total\{reason="export_failed"\}/) === 5 && t;
    });
    expect(sumSeries(text, /^weft_trace_spans_exported_total /)).toBe(0);
  });

  it('hangs: the bounded queue drops what does not fit at once, the export times out, shutdown ends', async () => {
    const receiver = await tracked('hang');
    const node = await agent(
      'node1',
      { otlpEndpoint: receiver.url },
      {
        maxQueueSize: 4,
        maxExportBatchSize: 2,
        scheduledDelayMs: 10,
        exportTimeoutMs: 3_000,
      },
    );
    const endOne = () =>
      node.tracer.start({}, httpSpan('client', orders, services)).end({ status: 200 });
    // A full batch goes out at once, and the collector holds it.
    endOne();
    endOne();
    await waitFor('the collector to hold an export', () => receiver.held.length === 1);

    // Meanwhile the queue takes 4 and drops the rest; end() returns each time, and the
    // agent's event loop is free (its /metrics answers while the export hangs).
    for (let i = 0; i < 10; i++) endOne();
    const during = await node.scrape();
    expect(sumSeries(during, /^weft_trace_spans_dropped_total\{reason="queue_full"\}/)).toBe(6);
    expect(receiver.held.length).toBe(1);

    // The held export times out: its batch is dropped and counted; the queued ones go next.
    await waitFor(
      'the timed-out export counted',
      async () =>
        sumSeries(
          await node.scrape(),
          /^weft_trace_spans_dropped_total\{reason="export_failed"\}/,
        ) >= 2,
    );
    await waitFor('the next export to reach the collector', () => receiver.held.length >= 2);
    // Shutdown does not wait for the collector longer than one export's timeout.
    await node.tracer.shutdown();
  });
});

describe('in the agent', () => {
  it('an agent with telemetry.tracing.otlpEndpoint counts its spans in /metrics; without, no such series', async () => {
    const receiver = await tracked('answer');
    const withTracing = await startRelayAgent({ tracing: { otlpEndpoint: receiver.url } });
    const text = await (await fetch(`http://127.0.0.1:${withTracing}/metrics`)).text();
    expect(text).toContain('weft_trace_spans_dropped_total{reason="queue_full"} 0');
    expect(text).toContain('weft_trace_spans_dropped_total{reason="export_failed"} 0');
    expect(text).toContain('weft_trace_spans_exported_total 0');
    const without = await startRelayAgent({});
    const plain = await (await fetch(`http://127.0.0.1:${without}/metrics`)).text();
    expect(plain).toContain('nodejs_eventloop_lag_seconds'); // the sentinel: a full scrape
    expect(plain).not.toContain('weft_trace_spans');
  });

  it('telemetry.tracing.otlpEndpoint in agent.yaml turns export on; the SDK loads only then', async () => {
    // A fresh process each (this one has loaded the SDK already): is any OpenTelemetry SDK
    // module in the CommonJS cache once the agent's tracer is built?
    const probe = (tracing: string) =>
      promisify(execFile)(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `import { createRequire } from 'node:module';
         import { Registry } from 'prom-client';
         import { pino } from 'pino';
         import { parseAgentConfig } from './dist/agent/config.js';
         import { createTracer } from './dist/telemetry/create-tracer.js';
         const config = parseAgentConfig(${JSON.stringify(tracing)}, 'agent.yaml');
         const tracer = await createTracer(config.telemetry.tracing,
           { registry: new Registry(), log: pino({ level: 'silent' }), hostname: 'n' });
         const span = tracer.start({}, { name: 'GET', kind: 'client', attributes: {} });
         const loaded = Object.keys(createRequire(import.meta.url).cache)
           .some((k) => k.includes('@opentelemetry/sdk-trace'));
         console.log(JSON.stringify({ loaded, traceparent: span.traceparent }));
         await tracer.shutdown();`,
        ],
        { cwd: root },
      );
    const off = JSON.parse((await probe('{}')).stdout);
    expect(off.loaded).toBe(false);
    expect(off.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const endpoint = await deadEndpoint();
    const on = JSON.parse(
      (await probe(`telemetry: { tracing: { otlpEndpoint: "${endpoint}" } }`)).stdout,
    );
    expect(on.loaded).toBe(true);
  });
});
