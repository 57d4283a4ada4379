// `weft tap` through the control plane, on loopback: a real control plane and two agents'
// sessions (node-a, node-b) serving `echo`, each with the agent's tap hub and request
// telemetry wired as the agent wires them. The admin's tap reaches both agents over their sync
// streams and sees both nodes' records; its filters run on the agents; when the admin leaves,
// the agents stop tapping; a node certificate is no admin credential.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentConfigSchema } from '../../src/agent/config.js';
import { WeftAdminClient } from '../../src/api/admin-client.js';
import type { SyncResponse, TapBatch, TapRequest } from '../../src/api/messages.js';
import { CONTROL_PLANE_CHANNEL_OPTIONS, loadProto } from '../../src/api/proto.js';
import { controlPlaneCredentials } from '../../src/api/tls.js';
import {
  type ControlPlaneSession,
  startControlPlaneSession,
} from '../../src/controlplane-client/session.js';
import { RequestTelemetry } from '../../src/proxy/http/request-telemetry.js';
import type { RequestRecord } from '../../src/proxy/records.js';
import { TapHub } from '../../src/telemetry/tap-hub.js';
import type { TapRecord } from '../../src/telemetry/tap-record.js';
import { tapsOfSession } from '../../src/telemetry/tap-sync.js';
import {
  joinNode,
  nodeClients,
  startControlPlane,
  type TestControlPlane,
} from '../helpers/controlplane.js';
import { sumSeries } from '../helpers/metrics-text.js';
import { waitFor } from '../helpers/wait.js';

const log = pino({ level: process.env.WEFT_TEST_LOG ?? 'silent' });
const NODES = ['node-a', 'node-b'] as const;

interface Agent {
  name: string;
  session: ControlPlaneSession;
  hub: TapHub;
  registry: Registry;
  requests: RequestTelemetry;
}

let root: string;
let cp: TestControlPlane;
let admin: WeftAdminClient;
let app: Server;
const agents: Agent[] = [];

/** One request finishing on an agent's L7 path, as its stacks report it. */
function serve(agent: Agent, path: string, status = 200): void {
  const record: RequestRecord = {
    direction: 'inbound',
    src_service: 'client',
    dst_service: 'echo',
    src: '127.0.0.1:40000',
    src_identity: 'spiffe://weft.local/svc/client',
    route: 'default',
    method: 'GET',
    authority: 'echo.mesh',
    path,
    protocol: 'HTTP/1.1',
    status,
    request_bytes: 0,
    response_bytes: 2,
    close_reason: 'done',
  };
  agent.requests.start(record);
  agent.requests.finish(record, process.hrtime.bigint(), { authorization: 'Bearer x' });
}

/** A tap's records and errors as they arrive, until stopped. */
function openTap(client: WeftAdminClient, request: TapRequest) {
  const call = client.tap(request);
  const records: TapRecord[] = [];
  const dropped = new Map<string, number>();
  let error: (Error & { code?: number }) | undefined;
  call.on('data', (b: TapBatch) => {
    for (const r of b.records) records.push(JSON.parse(r) as TapRecord);
    dropped.set(b.node, b.dropped);
  });
  call.on('error', (err: Error) => {
    error = err;
  });
  return {
    records,
    dropped,
    get error() {
      return error;
    },
    cancel: () => call.cancel(),
  };
}

/** Serves requests on every agent until `done` holds (a tap starts on agents asynchronously). */
async function trafficUntil<T>(what: string, paths: string[], done: () => T | undefined | false) {
  return waitFor(
    what,
    () => {
      for (const a of agents) for (const p of paths) serve(a, p);
      return done();
    },
    20_000,
  );
}

/** Records the agent's taps took, sent or dropped. */
const tapOffered = async (a: Agent) =>
  sumSeries(await a.registry.metrics(), /^weft_tap_records_total\{/);

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'weft-tap-it-'));
  app = createServer((s) => s.end());
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  const appPort = (app.address() as { port: number }).port;
  cp = await startControlPlane({ dataDir: join(root, 'cp'), config: { syncCoalesce: '20ms' } });
  admin = WeftAdminClient.open({ server: cp.grpcAddress, credentialsDir: cp.adminCredentials.dir });
  await admin.apply(
    [
      {
        kind: 'Service',
        name: 'echo',
        json: JSON.stringify({
          apiVersion: 'weft/v1',
          kind: 'Service',
          metadata: { name: 'echo' },
          spec: { ports: [{ port: 80, targetPort: appPort, protocol: 'http' }] },
        }),
        revision: 0,
      },
    ],
    'test',
  );
  for (const name of NODES) {
    const token = await cp.createToken({ node: name, services: ['echo'] });
    const config = agentConfigSchema.parse({
      hostname: name,
      dataDir: join(root, name),
      addresses: ['127.0.0.1'],
      controlPlane: { address: cp.grpcAddress, token, caPin: cp.caPin },
      workloads: [{ service: 'echo', port: appPort, name: `echo-${name}` }],
      heartbeatIntervalMs: 500,
    });
    const session = await startControlPlaneSession(config, log, {
      backoff: { baseMs: 50, capMs: 400 },
    });
    const registry = new Registry();
    const hub = new TapHub({ node: name, registry });
    tapsOfSession(session, hub, log);
    agents.push({
      name,
      session,
      hub,
      registry,
      requests: new RequestTelemetry(registry, log, hub),
    });
  }
  await waitFor(
    'both agents connected with their echo workloads registered',
    async () => {
      const nodes = await admin.listNodes();
      return (
        NODES.every((n) =>
          nodes.some((x) => x.name === n && x.state === 'connected' && x.workloads.length === 1),
        ) && nodes
      );
    },
    30_000,
  );
});

afterAll(async () => {
  admin?.close();
  for (const a of agents) await a.session.stop();
  await cp?.stop();
  app?.close();
  await rm(root, { recursive: true, force: true });
});

describe('weft tap through the control plane', () => {
  it('a tap of a service on two nodes sees records from both, filtered on the agents', async () => {
    const tap = openTap(admin, { filter: { service: 'echo', pathPrefix: '/seen/' } });
    await trafficUntil('records from both nodes', ['/seen/1', '/unseen'], () =>
      NODES.every((n) => tap.records.some((r) => r.node === n)),
    );
    expect(tap.error).toBeUndefined();
    expect(new Set(tap.records.map((r) => r.path))).toEqual(new Set(['/seen/1']));
    expect(tap.records[0]).toMatchObject({
      method: 'GET',
      status: 200,
      dst_service: 'echo',
      src_identity: 'spiffe://weft.local/svc/client',
    });
    expect(tap.records[0]!.headers).toBeUndefined();
    tap.cancel();
  });

  it('headers only when asked, with authorization redacted', async () => {
    const tap = openTap(admin, { filter: { service: 'echo', headers: true } });
    await trafficUntil('a record with headers', ['/h'], () => tap.records.length > 0);
    expect(tap.records[0]!.headers).toEqual({ authorization: '[redacted]' });
    tap.cancel();
  });

  it('ends on every agent when the admin goes away, and the agents keep serving', async () => {
    const tap = openTap(admin, { filter: { service: 'echo' } });
    await trafficUntil('records from both nodes', ['/x'], () =>
      NODES.every((n) => tap.records.some((r) => r.node === n)),
    );
    tap.cancel();
    await waitFor('no tap open on any agent', () => agents.every((a) => a.hub.size === 0), 10_000);
    const before = await Promise.all(agents.map(tapOffered));
    for (const a of agents) for (let i = 0; i < 20; i++) serve(a, '/after');
    // The hubs drain on the next turn of the event loop (setImmediate): past it, a tap left
    // open would have counted these requests, sent or dropped.
    await new Promise((resolve) => setImmediate(resolve));
    expect(await Promise.all(agents.map(tapOffered))).toEqual(before);
    // The sentinel: a new tap sees both agents' next requests, so they and their streams serve on.
    const sentinel = openTap(admin, { filter: { service: 'echo' } });
    await trafficUntil('the sentinel tap to see both nodes', ['/sentinel'], () =>
      NODES.every((n) => sentinel.records.some((r) => r.node === n)),
    );
    expect(sentinel.records.some((r) => r.path === '/after')).toBe(false);
    sentinel.cancel();
    await waitFor('the sentinel tap closed', () => agents.every((a) => a.hub.size === 0), 10_000);
  });

  it('sends no tap to an older agent (a stream without TapReady), which could not tell it from a version', async () => {
    const creds = await joinNode(cp, 'node-old');
    const clients = nodeClients(cp, creds);
    const call = clients.sync.stream();
    const received: SyncResponse[] = [];
    call.on('data', (m: SyncResponse) => received.push(m));
    call.on('error', () => {});
    try {
      call.write({ hello: { version: 0, agentVersion: 'weft-agent/old' } });
      await waitFor('the old agent to get its snapshot', () => received.length > 0, 10_000);
      const refused = openTap(admin, { filter: {}, node: 'node-old' });
      await waitFor('the refusal', () => refused.error);
      expect(refused.error!.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(refused.error!.message).toMatch(/an older agent cannot be tapped/);
      // A tap of every node reaches the two that run taps, never the old one: by the time both
      // sent records, a TapStart to it would have been written before theirs.
      const all = openTap(admin, { filter: {} });
      await trafficUntil('records from both new agents', ['/all'], () =>
        NODES.every((n) => all.records.some((r) => r.node === n)),
      );
      all.cancel();
      expect(received.filter((m) => m.tapStart || m.tapStop)).toEqual([]);
      expect(new Set(all.records.map((r) => r.node))).toEqual(new Set(NODES));
    } finally {
      call.cancel();
      clients.close();
    }
  });

  it('refuses a caller without the admin certificate (a node certificate), starting nothing', async () => {
    const node = agents[0]!.session.certificates.node!;
    const { Admin } = loadProto();
    const client = new Admin(
      cp.grpcAddress,
      controlPlaneCredentials(
        { caPem: cp.trustBundlePem, certPem: node.certPem, keyPem: node.keyPem },
        cp.trustDomain,
      ),
      CONTROL_PLANE_CHANNEL_OPTIONS,
    );
    try {
      const call = client.tap({ filter: { service: 'echo' } });
      const records: TapBatch[] = [];
      call.on('data', (b: TapBatch) => records.push(b));
      const err = await new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
      expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(records).toEqual([]);
      expect(agents.every((a) => a.hub.size === 0)).toBe(true);
    } finally {
      client.close();
    }
  });

  it('refuses a tap of a service no agent serves, and a bad filter, saying why', async () => {
    const none = openTap(admin, { filter: { service: 'nothing' } });
    await waitFor('the refusal', () => none.error);
    expect(none.error!.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(none.error!.message).toMatch(/service nothing has no workloads/);
    const bad = openTap(admin, { filter: { status: '7xx' } });
    await waitFor('the refusal', () => bad.error);
    expect(bad.error!.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(bad.error!.message).toMatch(/tap status: "7xx"/);
  });
});
