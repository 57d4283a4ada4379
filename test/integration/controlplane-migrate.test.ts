// `weft controlplane migrate`: a control plane on the file store, with services (their virtual
// IPs) and an agent joined to it, moved into a real etcd (started by this file) with the real
// CLI; a replica on etcd then serves the same state and CA on the same port, and the agent,
// restarted during the move, keeps its certificate and syncs against the replica. A running
// file store, a non-empty prefix and an unfinished migration are each handled as they must be.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentConfigSchema } from '../../src/agent/config.js';
import { WeftAdminClient } from '../../src/api/admin-client.js';
import type { Store } from '../../src/controlplane/store/store.js';
import { IdentityStore } from '../../src/controlplane-client/identity-store.js';
import {
  type ControlPlaneSession,
  startControlPlaneSession,
} from '../../src/controlplane-client/session.js';
import { runWeft, startControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { freePort, startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

let etcd: TestEtcd;
let raw: Etcd3;
let root: string;
let kekFile: string;
let app: Server;
const prefix = `/weft-migrate-${process.pid}/`;
const BACKOFF = { baseMs: 200, capMs: 500, random: () => 0.5 };

const service = (name: string) => ({
  kind: 'Service',
  name,
  json: JSON.stringify({
    apiVersion: 'weft/v1',
    kind: 'Service',
    metadata: { name },
    spec: { ports: [{ port: 80, protocol: 'http' }] },
  }),
  revision: 0,
  source: `${name}.yaml: document 1`,
});

type AgentLog = Record<string, unknown> & { msg: string };

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'weft-migrate-'));
  etcd = await startEtcd();
  raw = new Etcd3({ hosts: etcd.endpoint });
  kekFile = join(root, 'ca-kek');
  writeFileSync(kekFile, Buffer.alloc(32, 7), { mode: 0o600 });
  app = createServer((s) => s.end());
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
}, 120_000);

afterAll(async () => {
  app?.close();
  raw?.close();
  await etcd?.stop();
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

async function entries(store: Store, under: string): Promise<Record<string, unknown>> {
  const { entries: list } = await store.list(under);
  return Object.fromEntries(list.map((e) => [e.key, e.value]));
}

const migrate = (from: string, ...more: string[]) =>
  runWeft([
    'controlplane',
    'migrate',
    '--from',
    from,
    '--to',
    'etcd',
    '--etcd-endpoints',
    etcd.endpoint,
    '--etcd-prefix',
    prefix,
    '--ca-kek-file',
    kekFile,
    ...more,
  ]);

describe('weft controlplane migrate --to etcd', () => {
  let single: TestControlPlane;
  let replica: TestControlPlane | undefined;
  let session: ControlPlaneSession | undefined;
  let grpcPort: number;
  const logs: AgentLog[] = [];

  afterAll(async () => {
    await session?.stop();
    await replica?.stop({ removeDataDir: true });
    await single?.stop({ removeDataDir: true }).catch(() => undefined);
  });

  function agentConfig(token: string, caPin: string) {
    return agentConfigSchema.parse({
      hostname: 'node-m',
      dataDir: join(root, 'agent'),
      addresses: ['127.0.0.1'],
      controlPlane: { address: `127.0.0.1:${grpcPort}`, token, caPin },
      workloads: [{ service: 'echo', port: (app.address() as { port: number }).port }],
      heartbeatIntervalMs: 500,
    });
  }

  async function startSession(config: ReturnType<typeof agentConfig>) {
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString('utf8').split('\n'))
          if (line !== '') logs.push(JSON.parse(line) as AgentLog);
        done();
      },
    });
    return startControlPlaneSession(config, pino({ level: 'info' }, sink), { backoff: BACKOFF });
  }

  it('moves services, VIPs, the node and the CA; the agent keeps its certificate and syncs against a replica', async () => {
    grpcPort = await freePort();
    single = await startControlPlane({ config: { grpcPort } });
    const admin = WeftAdminClient.open({
      server: single.grpcAddress,
      credentialsDir: single.adminCredentials.dir,
    });
    try {
      await admin.apply(['echo', 'orders', 'billing', 'gone'].map(service), 'services.yaml');
    } finally {
      admin.close();
    }
    const token = await single.createToken({ node: 'node-m', services: ['echo'] });
    const config = agentConfig(token, single.caPin);
    session = await startSession(config);
    await waitFor(
      'the agent to sync the services',
      () => session?.snapshot()?.resources.has('Service/gone') || undefined,
      { timeoutMs: 30_000 },
    );
    await waitFor(
      'its workload certificate',
      () => session!.certificates.serviceNames().includes('echo') || undefined,
      { timeoutMs: 30_000 },
    );
    const nodeCert = session.certificates.node!.certPem;
    // The agent is down during the move, and misses a deletion made just before it.
    const stopped = session;
    session = undefined;
    await stopped.stop();
    const heldVersion = stopped.status().version;
    const admin2 = WeftAdminClient.open({
      server: single.grpcAddress,
      credentialsDir: single.adminCredentials.dir,
    });
    try {
      expect(await admin2.delete('Service', 'gone')).toBe(true);
    } finally {
      admin2.close();
    }
    const vips = await entries(single.controlPlane.store, '/vips/');
    const services = Object.keys(await entries(single.controlPlane.store, '/resources/Service/'));
    const tokens = await entries(single.controlPlane.store, '/tokens/');
    const workloads = Object.keys(await entries(single.controlPlane.store, '/resources/Workload/'));
    const nodes = Object.keys(await entries(single.controlPlane.store, '/nodes/'));
    expect(workloads).toHaveLength(1);
    expect(Object.keys(vips)).toHaveLength(3);

    // While the file-store control plane runs, its store is not migrated.
    const refused = await migrate(single.dataDir);
    expect(refused.exitCode).not.toBe(0);
    expect(refused.stderr).toContain('is in use by another control plane');
    expect(refused.stderr).toContain('systemctl stop weft-controlplane');
    expect(await raw.getAll().prefix(prefix).keys()).toEqual([]);

    await single.stop();
    // etcd's revisions pass the file store's, so a version the agent holds is also a revision
    // of etcd's history: only the migration's record keeps it from being taken as a delta base.
    for (let i = 0; i < heldVersion + 20; i++)
      await raw.put(`/other-${process.pid}/k`).value(String(i));

    const moved = await migrate(single.dataDir);
    expect(moved.stderr).toBe('');
    expect(moved.exitCode).toBe(0);
    expect(moved.stdout).toContain(`the CA (pin ${single.caPin}) is sealed there`);

    // A replica on etcd, on the port the agent knows, with no CA files of its own.
    replica = await startControlPlane({
      config: {
        grpcPort,
        store: { type: 'etcd', endpoints: [etcd.endpoint], prefix },
        caKekFile: kekFile,
      },
    });
    expect(replica.caPin).toBe(single.caPin);
    expect(await entries(replica.controlPlane.store, '/vips/')).toEqual(vips);
    expect(Object.keys(await entries(replica.controlPlane.store, '/resources/Service/'))).toEqual(
      services,
    );
    expect(await entries(replica.controlPlane.store, '/tokens/')).toEqual(tokens);
    expect(Object.keys(await entries(replica.controlPlane.store, '/nodes/'))).toEqual(nodes);
    // The workload came along on a lease of etcd's, before its agent is back.
    const inEtcd = await replica.controlPlane.store.list('/resources/Workload/');
    expect(inEtcd.entries.map((e) => e.key)).toEqual(workloads);
    expect(inEtcd.entries[0]?.lease).toBeDefined();
    expect(
      await replica.controlPlane.store.leaseTimeToLive(inEtcd.entries[0]!.lease!),
    ).toBeDefined();

    const logsBefore = logs.length;
    session = await startSession(config);
    await waitFor(
      'the agent to sync against the replica',
      () =>
        session?.state === 'connected' &&
        session.snapshot()?.resources.has('Service/orders') &&
        !session.snapshot()?.resources.has('Service/gone')
          ? true
          : undefined,
      { timeoutMs: 60_000, detail: () => JSON.stringify(session?.status()) },
    );
    const after = logs.slice(logsBefore);
    // No new join (the token is used up): the same node certificate, trusted by the replica.
    expect(after.map((l) => l.msg)).not.toContain('joining the mesh');
    expect(session.certificates.node!.certPem).toBe(nodeCert);
    expect((await new IdentityStore(config.dataDir).loadNode())?.identity.certPem).toBe(nodeCert);
    // Its version came from the file store: a full snapshot, not a delta over etcd's history.
    const accepted = after.filter((l) => l.msg === 'snapshot accepted');
    expect(accepted[0]).toMatchObject({ previous: heldVersion, full: true });

    // The VIPs the agent sees are the ones it saw before; a change applied at the replica reaches it.
    const adminR = WeftAdminClient.open({
      server: replica.grpcAddress,
      credentialsDir: replica.adminCredentials.dir,
    });
    try {
      await adminR.apply([service('after-migration')], 'after.yaml');
    } finally {
      adminR.close();
    }
    await waitFor(
      'the change made at the replica',
      () => session?.snapshot()?.resources.has('Service/after-migration') || undefined,
      { timeoutMs: 30_000 },
    );
    // The agent's workload, re-registered, hangs on a lease of etcd's.
    await waitFor(
      'the workload in etcd',
      async () => {
        const w = await replica!.controlPlane.store.list('/resources/Workload/');
        return w.entries.some((e) => e.lease !== undefined) || undefined;
      },
      { timeoutMs: 30_000 },
    );
  }, 180_000);

  it('refuses to migrate again over a finished migration, or into a prefix that holds keys, unless told', async () => {
    const again = await migrate(single.dataDir);
    expect(again.exitCode).not.toBe(0);
    expect(again.stderr).toContain(
      `etcd prefix ${prefix} holds a finished migration from ${single.dataDir}`,
    );
    const otherPrefix = `/weft-migrate-other-${process.pid}/`;
    await raw.put(`${otherPrefix}resources/Service/x`).value('{}');
    const args = (more: string[] = []) =>
      runWeft([
        'controlplane',
        'migrate',
        '--from',
        single.dataDir,
        '--to',
        'etcd',
        '--etcd-endpoints',
        etcd.endpoint,
        '--etcd-prefix',
        otherPrefix,
        '--ca-kek-file',
        kekFile,
        ...more,
      ]);
    const full = await args();
    expect(full.exitCode).not.toBe(0);
    expect(full.stderr).toContain(`etcd prefix ${otherPrefix} already holds 1 keys`);
    const over = await args(['--overwrite']);
    expect(over.stderr).toBe('');
    expect(over.stdout).toContain('--overwrite: deleting the 1 keys');
    expect(await raw.get(`${otherPrefix}resources/Service/x`).string()).toBeNull();
  }, 120_000);

  it('redoes a migration that stopped half-way, and no replica starts on it meanwhile', async () => {
    const halfPrefix = `/weft-migrate-half-${process.pid}/`;
    // What a run killed after its first batch leaves: its marker and part of the keys.
    await raw.put(`${halfPrefix}migration`).value(
      JSON.stringify({
        state: 'in-progress',
        from: single.dataDir,
        startedAt: 'then',
        fileStoreRevision: 1,
      }),
    );
    await raw.put(`${halfPrefix}resources/Service/echo`).value('{}');
    await expect(
      startControlPlane({
        config: {
          store: { type: 'etcd', endpoints: [etcd.endpoint], prefix: halfPrefix },
          caKekFile: kekFile,
        },
      }),
    ).rejects.toThrow(`holds a migration from ${single.dataDir} that did not finish`);
    const redo = await runWeft([
      'controlplane',
      'migrate',
      '--from',
      single.dataDir,
      '--to',
      'etcd',
      '--etcd-endpoints',
      etcd.endpoint,
      '--etcd-prefix',
      halfPrefix,
      '--ca-kek-file',
      kekFile,
    ]);
    expect(redo.stderr).toBe('');
    expect(redo.stdout).toContain('holds an unfinished migration');
    const cp = await startControlPlane({
      config: {
        store: { type: 'etcd', endpoints: [etcd.endpoint], prefix: halfPrefix },
        caKekFile: kekFile,
      },
    });
    try {
      expect(cp.caPin).toBe(single.caPin);
      expect(Object.keys(await entries(cp.controlPlane.store, '/vips/'))).toHaveLength(3);
    } finally {
      await cp.stop({ removeDataDir: true });
    }
  }, 120_000);

  it('refuses what it cannot do: no KEK, another store, a directory without a store', async () => {
    const noKek = await runWeft([
      'controlplane',
      'migrate',
      '--from',
      single.dataDir,
      '--to',
      'etcd',
      '--etcd-endpoints',
      etcd.endpoint,
    ]);
    expect(noKek.stderr).toContain('--to etcd needs --ca-kek-file FILE');
    const other = await runWeft([
      'controlplane',
      'migrate',
      '--from',
      single.dataDir,
      '--to',
      'consul',
    ]);
    expect(other.stderr).toContain('--to consul: the only store to migrate to is etcd');
    const empty = mkdtempSync(join(root, 'empty-'));
    const none = await runWeft([
      'controlplane',
      'migrate',
      '--from',
      empty,
      '--to',
      'etcd',
      '--etcd-endpoints',
      etcd.endpoint,
      '--ca-kek-file',
      kekFile,
    ]);
    expect(none.stderr).toContain(`--from ${empty}: no embedded store there`);
  }, 60_000);
});
