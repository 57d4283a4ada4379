// A same-host opaque connection (an app calling a tcp service whose endpoint is on this host)
// crosses no tunnel, so no receiving agent records it: the outbound stack records both sides,
// and the open-connections gauge counts it inbound as well as outbound while it is open, then
// both records close with the same close reason and bytes.
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CapturedConnection } from '../../src/proxy/capture-listener.js';
import { MeshState } from '../../src/proxy/mesh-state.js';
import { DETECT_WINDOW_MS, detectProtocol } from '../../src/proxy/outbound/detect.js';
import type { SourceIdentities } from '../../src/proxy/outbound/source-identity.js';
import { createOutboundHandler } from '../../src/proxy/outbound/stack.js';
import { Resilience } from '../../src/proxy/resilience/resilience.js';
import { Telemetry } from '../../src/proxy/telemetry.js';
import { computedTraffic } from '../../src/proxy/traffic-policies.js';
import { serviceDoc, viewOf, workloadDoc } from '../helpers/mesh-views.js';
import { sumSeries } from '../helpers/metrics-text.js';
import { waitFor } from '../helpers/wait.js';

const VIP = '240.240.0.30';
const logs: Record<string, unknown>[] = [];
const registry = new Registry();
let app: Server;
let capture: Server;
let capturePort: number;

beforeAll(async () => {
  // The local app: echoes.
  app = createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const appPort = (app.address() as { port: number }).port;

  const log = pino({ level: 'info' }, { write: (s: string) => logs.push(JSON.parse(s)) });
  const state = new MeshState('node-a', computedTraffic());
  state.update(
    viewOf([
      serviceDoc('db', VIP, [{ port: 5432, targetPort: appPort, protocol: 'tcp' }]),
      workloadDoc('node-a', 'db', '127.0.0.1', appPort),
    ]),
  );
  const identities = {
    forOwner: () => ({
      service: 'web',
      tunnel: { spiffeId: 'spiffe://weft.local/svc/web', key: '', cert: '' },
    }),
  } as unknown as SourceIdentities;
  const handle = createOutboundHandler({
    state,
    tunnels: () => undefined,
    telemetry: new Telemetry(registry, log),
    log,
    tunnelPort: 15008,
    connectTimeoutMs: 2_000,
    maxAttempts: 2,
    identities: () => identities,
    detect: detectProtocol,
    detectWindowMs: DETECT_WINDOW_MS,
    http: undefined,
    resilience: new Resilience(registry),
  });
  // Stands for the capture: every connection was going to the service's VIP.
  capture = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (client: Socket) => {
    client.on('error', () => {});
    const conn: CapturedConnection = {
      direction: 'outbound',
      client,
      source: `${client.remoteAddress}:${client.remotePort}`,
      target: { address: VIP, port: 5432, family: 4 },
      owner: undefined,
      started: process.hrtime.bigint(),
      timeouts: { idleMs: 60_000 },
    };
    handle(conn);
  });
  await new Promise<void>((resolve) => capture.listen(0, '127.0.0.1', resolve));
  capturePort = (capture.address() as { port: number }).port;
});

afterAll(async () => {
  await new Promise((r) => capture?.close(r));
  await new Promise((r) => app?.close(r));
});

async function openGauge(direction: string): Promise<number> {
  const text = await registry.getSingleMetricAsString('weft_tcp_open_connections');
  return sumSeries(
    text,
    new RegExp(
      `^weft_tcp_open_connections\\{direction="${direction}",src_service="web",dst_service="db"\\}`,
    ),
  );
}

describe('a same-host opaque connection', () => {
  it('is open in the gauge both ways while it lasts, and closes with one reason both ways', async () => {
    const client = netConnect(capturePort, '127.0.0.1');
    let echoed = '';
    client.on('data', (c: Buffer) => {
      echoed += c.toString();
    });
    client.write('ping');
    await waitFor('the echo through the agent', () => echoed === 'ping');
    expect(await openGauge('outbound')).toBe(1);
    expect(await openGauge('inbound')).toBe(1);

    client.end();
    const lines = await waitFor('both connection lines', () => {
      const found = logs.filter((l) => l.msg === 'connection' && l.dst_service === 'db');
      return found.length === 2 ? found : undefined;
    });
    expect(await openGauge('outbound')).toBe(0);
    expect(await openGauge('inbound')).toBe(0);
    const byDirection = Object.fromEntries(lines.map((l) => [l.direction, l]));
    const common = {
      src_service: 'web',
      dst_service: 'db',
      src_identity: 'spiffe://weft.local/svc/web',
      security: 'local',
      close_reason: 'done',
      bytes_sent: 4,
      bytes_received: 4,
    };
    expect(byDirection.outbound).toMatchObject({ ...common, dst: `${VIP}:5432` });
    expect(byDirection.inbound).toMatchObject({
      ...common,
      dst: byDirection.outbound!.endpoint,
      endpoint: byDirection.outbound!.endpoint,
    });
  });
});
