// The agent's control plane session against a real control plane, in one process on loopback:
// join, certificates, sync, fail static across control plane and agent restarts, a rejected
// version, and renewal at half-life. Assertions read what an operator reads: the admin
// endpoint's JSON, the control plane's node list.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type AdminServer, startAdminServer } from '../../src/agent/admin-server.js';
import type {
  CertView,
  ConfigDumpView,
  EndpointsView,
  ReadyView,
} from '../../src/agent/admin-views.js';
import { agentConfigSchema } from '../../src/agent/config.js';
import { registerSyncMetrics } from '../../src/agent/sync-metrics.js';
import { WeftAdminClient } from '../../src/api/admin-client.js';
import { registerStatus } from '../../src/cli/commands/status.js';
import { resourceKey } from '../../src/controlplane/store/keys.js';
import {
  type ControlPlaneSession,
  startControlPlaneSession,
} from '../../src/controlplane-client/session.js';
import { startControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { waitFor } from '../helpers/wait.js';

const log = pino({ level: process.env.WEFT_TEST_LOG ?? 'silent' });

let root: string;
let cp: TestControlPlane;
let cpPort = 0;
let admin: WeftAdminClient;
let app: Server;
let appPort: number;

/** The control plane; restarted on the same data directory and port, as after a reboot. */
async function startCp(): Promise<void> {
  cp = await startControlPlane({
    dataDir: join(root, 'cp'),
    config: { grpcPort: cpPort, workloadCertTtl: '4s', nodeCertTtl: '6s', syncCoalesce: '20ms' },
  });
  cpPort = Number(cp.grpcAddress.split(':').at(-1));
  admin?.close();
  admin = WeftAdminClient.open({ server: cp.grpcAddress, credentialsDir: cp.adminCredentials.dir });
}

function service(name: string, port = 80) {
  const doc = {
    apiVersion: 'weft/v1',
    kind: 'Service',
    metadata: { name },
    spec: { ports: [{ port, protocol: 'http' }] },
  };
  return { kind: 'Service', name, json: JSON.stringify(doc), revision: 0 };
}

async function agentConfig(token: string) {
  return agentConfigSchema.parse({
    hostname: 'node-a',
    dataDir: join(root, 'agent'),
    addresses: ['127.0.0.1'],
    controlPlane: { address: `127.0.0.1:${cpPort}`, token, caPin: cp.caPin },
    workloads: [{ service: 'echo', port: appPort, health: { intervalMs: 200 } }],
    heartbeatIntervalMs: 500,
  });
}

interface RunningAgent {
  session: ControlPlaneSession;
  http: AdminServer;
  get<T>(path: string): Promise<{ status: number; body: T }>;
  stop(): Promise<void>;
}

async function startAgent(token: string): Promise<RunningAgent> {
  const session = await startControlPlaneSession(await agentConfig(token), log, {
    backoff: { baseMs: 50, capMs: 400 },
  });
  const http = await startAdminServer({ address: '127.0.0.1', port: 0, session });
  return {
    session,
    http,
    async get<T>(path: string) {
      const res = await fetch(`http://127.0.0.1:${http.port}${path}`);
      return { status: res.status, body: (await res.json()) as T };
    },
    async stop() {
      await http.close();
      await session.stop();
    },
  };
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'weft-agent-it-'));
  app = createServer((s) => s.end());
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  appPort = (app.address() as { port: number }).port;
  await startCp();
});

afterAll(async () => {
  admin?.close();
  await cp?.stop();
  app?.close();
  await rm(root, { recursive: true, force: true });
});

describe('agent and control plane on loopback', () => {
  let agent: RunningAgent;
  let versionBeforeOutage = 0;

  afterAll(async () => {
    await agent?.stop();
  });

  it('joins with a token, gets its node and workload certificates, and sees a new Service within 1 s', async () => {
    agent = await startAgent(await cp.createToken({ node: 'node-a', services: ['echo'] }));
    await waitFor('connected', () => agent.session.state === 'connected');
    const certs = await waitFor('two certificates', async () => {
      const { body } = await agent.get<{ certificates: CertView[] }>('/certs');
      return body.certificates.length === 2 ? body.certificates : undefined;
    });
    expect(certs.map((c) => c.spiffeId).sort()).toEqual([
      'spiffe://weft.local/node/node-a',
      'spiffe://weft.local/svc/echo',
    ]);
    for (const c of certs) expect(c.secondsLeft).toBeGreaterThan(0);

    // Keys never leave the host: they are in the data directory, 0600, in a 0700 directory.
    expect((await stat(join(root, 'agent'))).mode & 0o777).toBe(0o700);
    expect((await stat(join(root, 'agent', 'node.pem'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(root, 'agent', 'workloads', 'echo.pem'))).mode & 0o777).toBe(0o600);

    await admin.apply([service('orders')], 'test');
    await waitFor(
      'orders in /endpoints',
      async () => (await agent.get<EndpointsView>('/endpoints')).body.services.orders,
      1_000,
    );

    const { body: endpoints } = await agent.get<EndpointsView>('/endpoints');
    expect(endpoints.services.orders?.vip).toMatch(/^240\.240\.\d+\.\d+$/);
    expect(endpoints.services.echo?.endpoints).toEqual([
      expect.objectContaining({ node: 'node-a', address: '127.0.0.1', port: appPort }),
    ]);
    await waitFor('echo healthy', async () => {
      const { body } = await agent.get<EndpointsView>('/endpoints');
      return body.services.echo?.endpoints[0]?.health === 'healthy' || undefined;
    });
    const ready = await agent.get<ReadyView>('/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ ready: true, state: 'connected', stale: false });
    const dump = (await agent.get<ConfigDumpView>('/config_dump')).body;
    expect(dump.state).toBe('connected');
    expect(dump.version).toBeGreaterThan(0);
    expect(dump.node?.spiffeId).toBe('spiffe://weft.local/node/node-a');
    expect(dump.resources).toContainEqual(
      expect.objectContaining({ kind: 'Service', metadata: { name: 'orders' } }),
    );
  });

  it('exports sync state and certificate expiry as Prometheus metrics, and `weft status` shows them', async () => {
    const registry = new Registry();
    registerSyncMetrics(registry, agent.session);
    const metricsServer = createHttpServer((_req, res) => {
      void registry.metrics().then((text) => res.end(text));
    });
    await new Promise<void>((r) => metricsServer.listen(0, '127.0.0.1', r));
    const port = (metricsServer.address() as { port: number }).port;
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    metricsServer.close();
    expect(text).toMatch(/^weft_sync_state\{state="connected"\} 1$/m);
    expect(text).toMatch(/^weft_sync_state\{state="stale"\} 0$/m);
    expect(text).toMatch(new RegExp(`^weft_sync_version ${agent.session.status().version}$`, 'm'));
    expect(text).toMatch(/^weft_sync_last_update_timestamp_seconds \d+/m);
    expect(text).toMatch(/^weft_sync_nacks_total 0$/m);
    const expiry =
      /^identity_cert_expiration_timestamp_seconds\{spiffe_id="spiffe:\/\/weft\.local\/svc\/echo"\} ([\d.]+)$/m.exec(
        text,
      );
    expect(Number(expiry?.[1])).toBeGreaterThan(Date.now() / 1000);

    const out: string[] = [];
    const spy = vi.spyOn(console, 'log').mockImplementation((line: string) => void out.push(line));
    try {
      const program = new Command('weft').exitOverride();
      registerStatus(program);
      await program.parseAsync([
        'node',
        'weft',
        'status',
        '--admin',
        `127.0.0.1:${agent.http.port}`,
      ]);
    } finally {
      spy.mockRestore();
    }
    const status = out.join('\n');
    expect(status).toMatch(/^Sync: +connected/m);
    expect(status).toMatch(new RegExp(`^Control plane: +127\\.0\\.0\\.1:${cpPort}`, 'm'));
    expect(status).toMatch(/spiffe:\/\/weft\.local\/node\/node-a +[0-9a-f]+/);
    expect(status).toMatch(
      new RegExp(`echo-${appPort} +echo +127\\.0\\.0\\.1:${appPort} +(healthy|unknown)`),
    );
  });

  it('rejects a version with an invalid resource, stays on the previous one, and the control plane sees the Nack', async () => {
    const before = agent.session.status().version;
    // A bad document written straight into the store, as a buggy control plane would send it.
    await cp.controlPlane.store.put(resourceKey('Service', 'broken'), {
      apiVersion: 'weft/v1',
      kind: 'Service',
      metadata: { name: 'broken' },
      spec: { ports: [{ port: 70000 }] },
    });
    const nack = await waitFor('a Nack in ListNodes', async () => {
      const node = (await admin.listNodes()).find((n) => n.name === 'node-a');
      return node?.lastNack ? node.lastNack : undefined;
    });
    expect(nack).toMatch(/Service\/broken: spec\.ports\[0\]\.port/);
    const dump = (await agent.get<ConfigDumpView>('/config_dump')).body;
    expect(dump.version).toBe(before);
    expect(dump.lastNack?.reason).toMatch(/Service\/broken/);
    expect(dump.resources).not.toContainEqual(
      expect.objectContaining({ metadata: { name: 'broken' } }),
    );

    // Fixing it on the control plane brings the agent forward again.
    await cp.controlPlane.store.delete(resourceKey('Service', 'broken'));
    await admin.apply([service('after-fix')], 'test');
    await waitFor('after-fix', () => agent.session.view()?.services.has('after-fix') || undefined);
    expect(agent.session.status().version).toBeGreaterThan(before);
  });

  it('renews certificates at half-life without restarting anything', async () => {
    const serials = async () =>
      new Map(
        (await agent.get<{ certificates: CertView[] }>('/certs')).body.certificates.map((c) => [
          c.spiffeId,
          c.serial,
        ]),
      );
    const first = await serials();
    const states: string[] = [];
    const onState = (s: string) => states.push(s);
    agent.session.on('state', onState);
    // Workload certificates live 4 s and node certificates 6 s here: renewed after ~2 s and ~3 s.
    await waitFor(
      'new serials for the node and the workload',
      async () => {
        const now = await serials();
        return (
          [...first].every(([id, serial]) => now.get(id) !== undefined && now.get(id) !== serial) ||
          undefined
        );
      },
      8_000,
    );
    agent.session.off('state', onState);
    // The sync stream never dropped while the certificates changed.
    expect(states).toEqual([]);
    expect(agent.session.state).toBe('connected');
  });

  it('keeps serving its snapshot and certificates when the control plane stops, and says it is stale', async () => {
    versionBeforeOutage = agent.session.status().version;
    await cp.stop();
    await waitFor('stale', () => agent.session.state === 'stale');
    const ready = await agent.get<ReadyView>('/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({
      ready: true,
      state: 'stale',
      stale: true,
      version: versionBeforeOutage,
    });
    expect((await agent.get<ReadyView>('/ready?strict')).status).toBe(503);
    expect((await agent.get<EndpointsView>('/endpoints')).body.services.orders).toBeDefined();
    expect(
      (await agent.get<{ certificates: CertView[] }>('/certs')).body.certificates,
    ).toHaveLength(2);
  });

  it('comes up from its cache when restarted while the control plane is down', async () => {
    await agent.stop();
    agent = await startAgent('');
    // No waiting: the cached snapshot is loaded before the session starts connecting.
    const ready = await agent.get<ReadyView>('/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ ready: true, stale: true, version: versionBeforeOutage });
    expect((await agent.get<EndpointsView>('/endpoints')).body.services.orders).toBeDefined();
    const certs = (await agent.get<{ certificates: CertView[] }>('/certs')).body.certificates;
    expect(certs.map((c) => c.spiffeId).sort()).toEqual([
      'spiffe://weft.local/node/node-a',
      'spiffe://weft.local/svc/echo',
    ]);
  });

  it('resumes the stream when the control plane returns, and converges', async () => {
    await startCp();
    await waitFor('connected again', () => agent.session.state === 'connected', 10_000);
    await admin.apply([service('payments')], 'test');
    await waitFor(
      'payments',
      async () => (await agent.get<EndpointsView>('/endpoints')).body.services.payments,
      2_000,
    );
    const dump = (await agent.get<ConfigDumpView>('/config_dump')).body;
    expect(dump.state).toBe('connected');
    expect(dump.version).toBeGreaterThan(versionBeforeOutage);
    // The control plane sees the agent with the version it now holds.
    const node = await waitFor('ack recorded', async () => {
      const n = (await admin.listNodes()).find((x) => x.name === 'node-a');
      return n && n.ackedVersion === dump.version ? n : undefined;
    });
    expect(node.state).toBe('connected');
  });
});
