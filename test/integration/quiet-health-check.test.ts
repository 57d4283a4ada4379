// The default health check does not touch the application (issue 11, item 3): a real
// server-speaks-first server (which logs every connection it accepts, as MariaDB logs
// "Aborted connection ... without authentication") registered as a workload accepts no
// connection from the agent over many checks, while the agent reports it healthy, and then
// unhealthy once it stops listening. And a TrafficPolicy.healthCheck opts the service into an
// active TCP check, which does connect. Real control plane and agent session on loopback,
// the kernel's listening sockets read over sock_diag.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentConfigSchema } from '../../src/agent/config.js';
import { registerSyncMetrics } from '../../src/agent/sync-metrics.js';
import { WeftAdminClient } from '../../src/api/admin-client.js';
import {
  type ControlPlaneSession,
  startControlPlaneSession,
} from '../../src/controlplane-client/session.js';
import { startControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { waitFor } from '../helpers/wait.js';

const log = pino({ level: process.env.WEFT_TEST_LOG ?? 'silent' });
const SERVER = fileURLToPath(new URL('../fixtures/greeting-server.mjs', import.meta.url));

interface Server {
  child: ChildProcess;
  port: number;
  /** Every line it printed: { accepted }, { aborted }. */
  events: Record<string, unknown>[];
}

let root: string;
let cp: TestControlPlane;
let admin: WeftAdminClient;
let session: ControlPlaneSession | undefined;
let server: Server | undefined;
const registry = new Registry();

async function startServer(port = 0): Promise<Server> {
  const child = spawn(process.execPath, [SERVER, '127.0.0.1', String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const events: Record<string, unknown>[] = [];
  let buffered = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) events.push(JSON.parse(line) as Record<string, unknown>);
  });
  const listening = await waitFor('the server to listen', () =>
    events.find((e) => e.listening !== undefined),
  );
  return { child, port: listening.listening as number, events };
}

async function stopServer(s: Server): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  const exited = once(s.child, 'exit');
  s.child.kill('SIGTERM');
  await exited;
}

/** The workload's health as the control plane holds it (what every agent balances on). */
async function healthAtControlPlane(): Promise<string | undefined> {
  const [w] = await admin.get('workloads');
  return w === undefined
    ? undefined
    : (JSON.parse(w.json) as { spec: { health: string } }).spec.health;
}

function localStatus() {
  return session!.status().workloads[0]!;
}

/** weft_workload_health_checks_total of the workload, by result, scraped from the registry. */
async function checksMetric(result: string): Promise<number> {
  const text = await registry.metrics();
  const line = text
    .split('\n')
    .find(
      (l) => l.startsWith('weft_workload_health_checks_total{') && l.includes(`result="${result}"`),
    );
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

/** A connection of the test's own, which the server logs like any other: the sentinel. */
async function sentinel(port: number): Promise<string> {
  const socket = connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  const me = `${socket.localAddress}:${socket.localPort}`;
  socket.resume(); // read the greeting and the echo, so that the socket can end
  socket.end('hello\n');
  await once(socket, 'close');
  return me;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'weft-quiet-health-'));
  cp = await startControlPlane({ dataDir: join(root, 'cp'), config: { syncCoalesce: '20ms' } });
  admin = WeftAdminClient.open({ server: cp.grpcAddress, credentialsDir: cp.adminCredentials.dir });
  server = await startServer();
  const config = agentConfigSchema.parse({
    hostname: 'db-host',
    dataDir: join(root, 'agent'),
    addresses: ['127.0.0.1'],
    controlPlane: {
      address: cp.grpcAddress,
      token: await cp.createToken({ node: 'db-host', services: ['mariadb'] }),
      caPin: cp.caPin,
    },
    workloads: [
      { service: 'mariadb', port: server.port, address: '127.0.0.1', health: { intervalMs: 100 } },
    ],
    heartbeatIntervalMs: 200,
  });
  session = await startControlPlaneSession(config, log, { backoff: { baseMs: 50, capMs: 400 } });
  registerSyncMetrics(registry, session);
});

afterAll(async () => {
  await session?.stop();
  if (server) await stopServer(server);
  admin?.close();
  await cp?.stop();
  await rm(root, { recursive: true, force: true });
});

describe('the default health check', () => {
  it('reports a listening server-speaks-first workload healthy without ever connecting to it', async () => {
    await waitFor('the control plane to hold the workload as healthy', async () =>
      (await healthAtControlPlane()) === 'healthy' ? true : undefined,
    );
    // Many check intervals pass (the metric counts them), or the server logs a connection that
    // is not ours: either way, what the server logged is then complete up to the sentinel.
    const checksBefore = await checksMetric('passed');
    await waitFor(
      'ten more checks, or a connection from the agent',
      async () =>
        (await checksMetric('passed')) >= checksBefore + 10 ||
        server!.events.some((e) => e.accepted),
    );
    const me = await sentinel(server!.port);
    await waitFor('the sentinel in the server log', () =>
      server!.events.some((e) => e.aborted === me || e.accepted === me),
    );
    expect(server!.events.filter((e) => e.accepted !== undefined)).toEqual([{ accepted: me }]);
    expect(localStatus()).toMatchObject({ health: 'healthy', check: 'listening' });
    expect(await checksMetric('failed')).toBe(0);
  });

  it('reports it unhealthy once it stops listening, and healthy again when it is back', async () => {
    const port = server!.port;
    await stopServer(server!);
    await waitFor('the control plane to hold the workload as unhealthy', async () =>
      (await healthAtControlPlane()) === 'unhealthy' ? true : undefined,
    );
    expect(localStatus().health).toBe('unhealthy');
    expect(await checksMetric('failed')).toBeGreaterThan(0);
    server = await startServer(port);
    await waitFor('healthy again', async () =>
      (await healthAtControlPlane()) === 'healthy' ? true : undefined,
    );
    const me = await sentinel(port);
    await waitFor('the sentinel in the server log', () =>
      server!.events.some((e) => e.aborted === me || e.accepted === me),
    );
    expect(server!.events.filter((e) => e.accepted !== undefined)).toEqual([{ accepted: me }]);
  });
});

describe('a TrafficPolicy.healthCheck', () => {
  it('opts the service into an active TCP check, with its interval', async () => {
    const policy = {
      apiVersion: 'weft/v1',
      kind: 'TrafficPolicy',
      metadata: { name: 'mariadb-probe' },
      spec: { targetRef: { name: 'mariadb' }, healthCheck: { interval: '100ms', timeout: '50ms' } },
    };
    await admin.apply(
      [{ kind: 'TrafficPolicy', name: 'mariadb-probe', json: JSON.stringify(policy), revision: 0 }],
      'policy.yaml',
    );
    await waitFor('the agent to use the policy', () =>
      localStatus().checkSource === 'TrafficPolicy/mariadb-probe' ? true : undefined,
    );
    expect(localStatus().check).toBe('tcp');
    // Connects now, at the policy's interval.
    await waitFor('three connections from the agent', () =>
      server!.events.filter((e) => e.accepted !== undefined).length >= 4 ? true : undefined,
    );
    expect(localStatus().health).toBe('healthy');
    await admin.delete('TrafficPolicy', 'mariadb-probe');
    await waitFor('the quiet default again', () =>
      localStatus().check === 'listening' ? true : undefined,
    );
  });
});
