// `weft tap` through one of two control plane replicas on a real etcd (started by this file):
// node-a's agent is connected to replica 1, node-b's to replica 2. A tap through either replica
// reaches both agents (the replica asks its peer, found where replicas register in etcd, to run
// the same tap on its agents); when the admin leaves, both stop tapping; a peer's part is
// authorized as any admin call is (a node certificate asking for it is refused).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentConfigSchema } from '../../src/agent/config.js';
import { WeftAdminClient } from '../../src/api/admin-client.js';
import type { TapBatch, TapRequest } from '../../src/api/messages.js';
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
import { startControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

const log = pino({ level: process.env.WEFT_TEST_LOG ?? 'silent' });

interface Agent {
  name: string;
  session: ControlPlaneSession;
  hub: TapHub;
  requests: RequestTelemetry;
}

let dir: string;
let etcd: TestEtcd;
const replicas: TestControlPlane[] = [];
const admins: WeftAdminClient[] = [];
const agents: Agent[] = [];

function serve(agent: Agent, path: string): void {
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
    status: 200,
    request_bytes: 0,
    response_bytes: 2,
    close_reason: 'done',
  };
  agent.requests.start(record);
  agent.requests.finish(record, process.hrtime.bigint(), {});
}

function openTap(client: WeftAdminClient, request: TapRequest) {
  const call = client.tap(request);
  const records: TapRecord[] = [];
  const errors: string[] = [];
  let error: grpc.ServiceError | undefined;
  call.on('data', (b: TapBatch) => {
    for (const r of b.records) records.push(JSON.parse(r) as TapRecord);
    if (b.error) errors.push(`${b.node}: ${b.error}`);
  });
  call.on('error', (err: grpc.ServiceError) => {
    error = err;
  });
  return {
    records,
    errors,
    get error() {
      return error;
    },
    cancel: () => call.cancel(),
  };
}

async function trafficUntil(what: string, done: () => boolean) {
  await waitFor(
    what,
    () => {
      for (const a of agents) serve(a, `/from-${a.name}`);
      return done() || undefined;
    },
    30_000,
  );
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-tap-replicas-'));
  const caKekFile = join(dir, 'kek');
  writeFileSync(caKekFile, randomBytes(32), { mode: 0o600 });
  etcd = await startEtcd();
  const store = {
    type: 'etcd' as const,
    endpoints: [etcd.endpoint],
    prefix: `/weft-tap-${process.pid}/`,
  };
  for (const name of ['r1', 'r2']) {
    const cp = await startControlPlane({
      dataDir: join(dir, name),
      config: { store, caKekFile, syncCoalesce: '20ms' },
    });
    replicas.push(cp);
    admins.push(
      WeftAdminClient.open({ server: cp.grpcAddress, credentialsDir: cp.adminCredentials.dir }),
    );
  }
  await admins[0]!.apply(
    [
      {
        kind: 'Service',
        name: 'echo',
        json: JSON.stringify({
          apiVersion: 'weft/v1',
          kind: 'Service',
          metadata: { name: 'echo' },
          spec: { ports: [{ port: 80, targetPort: 8080, protocol: 'http' }] },
        }),
        revision: 0,
      },
    ],
    'test',
  );
  // node-a on replica 1, node-b on replica 2.
  for (const [i, name] of ['node-a', 'node-b'].entries()) {
    const cp = replicas[i]!;
    const token = await cp.createToken({ node: name, services: ['echo'] });
    const config = agentConfigSchema.parse({
      hostname: name,
      dataDir: join(dir, name),
      addresses: ['127.0.0.1'],
      controlPlane: { address: cp.grpcAddress, token, caPin: cp.caPin },
      workloads: [{ service: 'echo', port: 8080, name: `echo-${name}` }],
      heartbeatIntervalMs: 500,
    });
    const session = await startControlPlaneSession(config, log, {
      backoff: { baseMs: 50, capMs: 400 },
    });
    const registry = new Registry();
    const hub = new TapHub({ node: name, registry });
    tapsOfSession(session, hub, log);
    agents.push({ name, session, hub, requests: new RequestTelemetry(registry, log, hub) });
  }
  // `weft get nodes` tells a node connected by the replica it is connected to.
  await waitFor(
    'both agents connected with their workloads',
    async () => {
      for (const [i, name] of ['node-a', 'node-b'].entries()) {
        const nodes = await admins[i]!.listNodes();
        const ok = nodes.some(
          (x) => x.name === name && x.state === 'connected' && x.workloads.length === 1,
        );
        if (!ok) return undefined;
      }
      return true;
    },
    60_000,
  );
}, 180_000);

afterAll(async () => {
  for (const a of admins) a.close();
  for (const a of agents) await a.session.stop();
  for (const cp of replicas) await cp.stop();
  await etcd?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('weft tap through one of several replicas', () => {
  it.each([0, 1])(
    'through replica %i, a tap of a service reaches the agents of both replicas',
    async (i) => {
      const tap = openTap(admins[i]!, { filter: { service: 'echo' } });
      await trafficUntil('records from node-a and node-b', () =>
        ['node-a', 'node-b'].every((n) => tap.records.some((r) => r.node === n)),
      );
      expect(tap.error).toBeUndefined();
      expect(tap.errors).toEqual([]);
      tap.cancel();
      await waitFor(
        'no tap open on any agent',
        () => agents.every((a) => a.hub.size === 0),
        15_000,
      );
    },
  );

  it('a tap of one node reaches it through the replica it is not connected to', async () => {
    const tap = openTap(admins[0]!, { filter: {}, node: 'node-b' });
    await trafficUntil('records from node-b', () => tap.records.some((r) => r.node === 'node-b'));
    expect(new Set(tap.records.map((r) => r.node))).toEqual(new Set(['node-b']));
    tap.cancel();
    await waitFor('no tap open on any agent', () => agents.every((a) => a.hub.size === 0), 15_000);
  });

  it('a node connected to no replica is refused, saying the other replica was asked', async () => {
    const tap = openTap(admins[0]!, { filter: {}, node: 'node-z' });
    await waitFor('the refusal', () => tap.error);
    expect(tap.error!.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(tap.error!.details).toMatch(
      /node node-z has no sync stream.*; nor has the other replica$/,
    );
  });

  it("a peer's part of a tap needs the admin certificate: a node certificate is refused", async () => {
    const node = agents[1]!.session.certificates.node!;
    const { Admin } = loadProto();
    const client = new Admin(
      replicas[1]!.grpcAddress,
      controlPlaneCredentials(
        { caPem: replicas[1]!.trustBundlePem, certPem: node.certPem, keyPem: node.keyPem },
        replicas[1]!.trustDomain,
      ),
      CONTROL_PLANE_CHANNEL_OPTIONS,
    );
    try {
      const call = client.tap({ filter: { service: 'echo' }, localOnly: true });
      const err = await new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
      expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(agents.every((a) => a.hub.size === 0)).toBe(true);
    } finally {
      client.close();
    }
  });

  it('a peer that stops mid-tap is named in the stream; the tap goes on for the rest', async () => {
    const tap = openTap(admins[0]!, { filter: { service: 'echo' } });
    await trafficUntil('records from node-a and node-b', () =>
      ['node-a', 'node-b'].every((n) => tap.records.some((r) => r.node === n)),
    );
    await replicas[1]!.stop();
    await waitFor('the stream to name the stopped replica', () =>
      tap.errors.some((e) => /^replica \S+: its part of the tap ended/.test(e)),
    );
    const seen = tap.records.length;
    await trafficUntil('node-a still tapped', () =>
      tap.records.slice(seen).some((r) => r.node === 'node-a'),
    );
    expect(tap.error).toBeUndefined();
    tap.cancel();
  });
});
