// The receiving agent's inbound stage behind a real tunnel server, on loopback with real TLS:
// a CONNECT must name one of this host's workloads at the address and port it is registered
// at. A workload's port on another local address (loopback, where an app may trust its
// callers) is refused with 403 and a reason, and counted; the registered one is served.
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MetricsServer, startMetricsServer } from '../../src/agent/metrics-server.js';
import { isWeftError } from '../../src/errors.js';
import { tunnelAccessRecorder, tunnelAuthorizer } from '../../src/proxy/inbound/tunnel-inbound.js';
import { MeshState } from '../../src/proxy/mesh-state.js';
import { Telemetry } from '../../src/proxy/telemetry.js';
import { computedTraffic } from '../../src/proxy/traffic-policies.js';
import {
  type TunnelPool,
  type TunnelServer,
  TunnelStreamError,
} from '../../src/proxy/tunnel/index.js';
import { serviceDoc, viewOf, workloadDoc } from '../helpers/mesh-views.js';
import { sumSeries } from '../helpers/metrics-text.js';
import { type MeshPki, meshPki, newPool, readAll, source, startServer } from './tunnel-fixture.js';

const REGISTERED = '127.0.0.2';

let pki: MeshPki;
let server: TunnelServer;
let pool: TunnelPool;
let metrics: MetricsServer;
/** The workload, listening where it is registered, and the same app's loopback listener. */
let workload: Server;
let loopback: Server;
let port: number;
let loopbackConnections = 0;

async function listenOn(s: Server, host: string, p: number): Promise<void> {
  s.listen(p, host);
  await once(s, 'listening');
}

/** A port free on both addresses: the registered one and 127.0.0.1. */
async function listenBoth(): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    workload = createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => {});
      socket.on('data', (c) => socket.write(c));
      socket.on('end', () => socket.end(`from ${socket.localAddress}`));
    });
    await listenOn(workload, REGISTERED, 0);
    port = (workload.address() as { port: number }).port;
    loopback = createServer((socket) => {
      loopbackConnections += 1;
      socket.end('loopback listener: trusts local callers');
    });
    try {
      await listenOn(loopback, '127.0.0.1', port);
      return;
    } catch (err) {
      workload.close();
      if (attempt >= 5) throw err;
    }
  }
}

async function scrape(pattern: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metrics.port}/metrics`)).text();
  return sumSeries(text, pattern);
}

function open(address: string) {
  return pool.open({
    source: source(pki.client),
    peer: { address: '127.0.0.1', port: server.port, expectedSpiffeId: pki.server.spiffeId },
    target: { address, port },
  });
}

beforeAll(async () => {
  pki = await meshPki();
  await listenBoth();
  const state = new MeshState('node-b', computedTraffic());
  state.update(
    viewOf([
      serviceDoc('echo', '240.240.0.10', [{ port: 80, targetPort: port }]),
      workloadDoc('node-b', 'echo', REGISTERED, port),
    ]),
  );
  const registry = new Registry();
  const telemetry = new Telemetry(registry, pino({ level: 'silent' }));
  metrics = await startMetricsServer(registry, '127.0.0.1', 0);
  server = await startServer(pki, {
    authorize: tunnelAuthorizer(state, telemetry),
    onStream: tunnelAccessRecorder(state, telemetry),
  });
  pool = newPool(pki);
});

afterAll(async () => {
  pool?.destroy();
  server?.destroy();
  await metrics?.close();
  workload?.close();
  loopback?.close();
});

describe('CONNECT targets on the receiving agent', () => {
  it("refuses a workload's port on loopback with 403 and a reason, and counts it", async () => {
    const denied =
      /^weft_authz_decisions_total\{direction="inbound",dst_service="unknown",decision="deny"\}/;
    const closed =
      /^weft_tcp_close_total\{direction="inbound",src_service="frontend",dst_service="unknown",reason="denied"\}/;
    const err = await open('127.0.0.1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TunnelStreamError);
    expect(isWeftError(err, 'WEFT_E_DENIED')).toBe(true);
    expect((err as TunnelStreamError).status).toBe(403);
    expect((err as TunnelStreamError).reason).toMatch(
      new RegExp(`127\\.0\\.0\\.1:${port} is not a workload of this host \\(node-b\\)`),
    );
    expect(await scrape(denied)).toBe(1);
    await expect.poll(() => scrape(closed)).toBe(1);

    // The sentinel after the negative: the registered address is served, and by then the
    // loopback listener has seen nothing.
    const stream = await open(REGISTERED);
    stream.end('hello ');
    expect((await readAll(stream)).toString()).toBe(`hello from ${REGISTERED}`);
    expect(loopbackConnections).toBe(0);
    expect(
      await scrape(
        /^weft_authz_decisions_total\{direction="inbound",dst_service="echo",decision="allow"\}/,
      ),
    ).toBe(1);
  });

  it('refuses a port no workload of this host is registered on, at any local address', async () => {
    const err = await pool
      .open({
        source: source(pki.client),
        peer: { address: '127.0.0.1', port: server.port, expectedSpiffeId: pki.server.spiffeId },
        target: { address: REGISTERED, port: port === 65535 ? port - 1 : port + 1 },
      })
      .catch((e: unknown) => e);
    expect((err as TunnelStreamError).status).toBe(403);
    expect((err as TunnelStreamError).reason).toMatch(/is not a workload of this host/);
  });
});
