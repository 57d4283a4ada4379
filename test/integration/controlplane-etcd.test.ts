// Two control plane replicas on one real etcd (started by this file), as `weft controlplane
// --store etcd` runs them: one CA between them (copied, until the CA is shared through etcd),
// virtual IPs and join tokens decided by etcd transactions, each replica's sync streams fed
// from its own etcd watch, and the liveness of a node judged by every replica alike.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WeftAdminClient } from '../../src/api/admin-client.js';
import type { ResourceMessage, SyncRequest, SyncResponse } from '../../src/api/messages.js';
import { unary } from '../../src/api/proto.js';
import { pickVip } from '../../src/controlplane/registry/vip-allocator.js';
import {
  joinNode,
  type NodeCredentials,
  nodeClients,
  runWeft,
  type StartControlPlaneOptions,
  startControlPlane,
  type TestControlPlane,
} from '../helpers/controlplane.js';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { ROOT } from '../helpers/node-runtime.js';
import { createTestCa } from '../helpers/test-pki.js';
import { waitFor } from '../helpers/wait.js';

let etcd: TestEtcd;
let a: TestControlPlane;
let b: TestControlPlane;
let adminA: WeftAdminClient;
let adminB: WeftAdminClient;
const prefix = `/weft-cp-${process.pid}/`;
const cleanups: Array<() => void> = [];

function replicaConfig(): StartControlPlaneOptions['config'] {
  return {
    store: { type: 'etcd', endpoints: [etcd.endpoint], prefix },
    // etcd tells a lease's age in whole seconds: a replica knows another's heartbeats to
    // about 2 s (keep-alives go out at most once a second), so the limits stay above that.
    workloadStaleAfter: '3s',
    workloadRemoveAfter: '6s',
  };
}

/** A data directory holding the CA of `from` (what an operator copies to a new replica). */
function dataDirWithCaOf(from: TestControlPlane): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-cp-replica-'));
  for (const f of ['ca.key', 'ca.crt']) copyFileSync(join(from.dataDir, f), join(dir, f));
  return dir;
}

beforeAll(async () => {
  etcd = await startEtcd();
  a = await startControlPlane({ config: replicaConfig() });
  b = await startControlPlane({ dataDir: dataDirWithCaOf(a), config: replicaConfig() });
  adminA = WeftAdminClient.open({ server: a.grpcAddress, credentialsDir: a.adminCredentials.dir });
  adminB = WeftAdminClient.open({ server: b.grpcAddress, credentialsDir: b.adminCredentials.dir });
}, 120_000);

afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

afterAll(async () => {
  adminA?.close();
  adminB?.close();
  await a?.stop({ removeDataDir: true });
  await b?.stop({ removeDataDir: true });
  await etcd?.stop();
});

interface SyncUnderTest {
  received: SyncResponse[];
  next(match: (m: SyncResponse) => boolean, timeoutMs?: number): Promise<SyncResponse>;
  send(req: SyncRequest): void;
  close(): void;
}

function openSync(cp: TestControlPlane, creds: NodeCredentials): SyncUnderTest {
  const clients = nodeClients(cp, creds);
  const stream = clients.sync.stream();
  const received: SyncResponse[] = [];
  const waiters: Array<() => void> = [];
  let seen = 0;
  stream.on('data', (m: SyncResponse) => {
    received.push(m);
    for (const w of waiters.splice(0)) w();
  });
  stream.on('error', () => {});
  stream.write({ hello: { version: 0, agentVersion: 'test' } });
  const sync: SyncUnderTest = {
    received,
    next(match, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no matching sync message within ${timeoutMs} ms`)),
          timeoutMs,
        );
        const check = (): void => {
          while (seen < received.length) {
            const m = received[seen++]!;
            if (match(m)) {
              clearTimeout(timer);
              resolve(m);
              return;
            }
          }
          waiters.push(check);
        };
        check();
      });
    },
    send: (req) => stream.write(req),
    close() {
      stream.cancel();
      clients.close();
    },
  };
  cleanups.push(() => sync.close());
  return sync;
}

const service = (name: string): ResourceMessage => ({
  kind: 'Service',
  name,
  json: JSON.stringify({
    apiVersion: 'weft/v1',
    kind: 'Service',
    metadata: { name },
    spec: { ports: [{ port: 80 }] },
  }),
  revision: 0,
  source: `${name}.yaml: document 1`,
});
const has = (m: SyncResponse, kind: string, name: string) =>
  m.upserts.some((u) => u.kind === kind && u.name === name);
const removes = (m: SyncResponse, name: string) => m.removals.some((r) => r.name === name);
const staleIn = (m: SyncResponse, name: string) => {
  const u = m.upserts.find((x) => x.kind === 'Workload' && x.name === name);
  return u === undefined ? undefined : (JSON.parse(u.json).status?.stale ?? false);
};

async function register(cp: TestControlPlane, creds: NodeCredentials, port: number) {
  const c = nodeClients(cp, creds);
  try {
    await unary(c.identity, c.identity.registerWorkloads, {
      workloads: [{ service: 'echo', port, health: 'healthy' }] as never,
    });
  } finally {
    c.close();
  }
}

describe('the CA of the replicas', () => {
  it('refuses a replica without the CA the others sign with, or with another one', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'weft-cp-replica-'));
    const dir = mkdtempSync(join(tmpdir(), 'weft-cp-replica-'));
    try {
      await expect(startControlPlane({ dataDir: empty, config: replicaConfig() })).rejects.toThrow(
        `etcd already holds a control plane whose CA has pin ${a.caPin}`,
      );
      const other = await createTestCa('weft.local');
      writeFileSync(join(dir, 'ca.key'), other.keyPem, { mode: 0o600 });
      writeFileSync(join(dir, 'ca.crt'), other.certPem);
      await expect(startControlPlane({ dataDir: dir, config: replicaConfig() })).rejects.toThrow(
        `but this replica's CA has pin`,
      );
      expect(b.caPin).toBe(a.caPin);
    } finally {
      await rm(empty, { recursive: true, force: true });
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses to start on etcd over a data directory that holds the embedded store', async () => {
    const single = await startControlPlane({});
    await single.stop();
    await expect(
      startControlPlane({ dataDir: single.dataDir, config: replicaConfig() }),
    ).rejects.toThrow(
      `${single.dataDir}/store holds this control plane's state in the embedded store`,
    );
    await rm(single.dataDir, { recursive: true, force: true });
  });
});

describe('decided by etcd transactions', () => {
  it('never hands out one virtual IP twice when two replicas allocate at the same time', async () => {
    // Pairs of names whose first-choice address is the same: each pair races for one VIP.
    const pairs: Array<[string, string]> = [];
    const byVip = new Map<string, string>();
    for (let i = 0; pairs.length < 12; i++) {
      const name = `race-${i}`;
      const vip = pickVip(name, new Set());
      const other = byVip.get(vip);
      if (other !== undefined) {
        pairs.push([other, name]);
        byVip.delete(vip);
      } else byVip.set(vip, name);
    }
    await Promise.all(
      pairs.flatMap(([x, y]) => [
        adminA.apply([service(x)], `${x}.yaml`),
        adminB.apply([service(y)], `${y}.yaml`),
      ]),
    );
    const services = await adminB.get('Service');
    const vips = new Map<string, string>();
    for (const [x, y] of pairs) {
      for (const name of [x, y]) {
        const doc = services.find((s) => s.name === name);
        const vip = JSON.parse(doc!.json).status.vip as string;
        expect(vips.get(vip), `${name} and ${vips.get(vip)} share ${vip}`).toBeUndefined();
        vips.set(vip, name);
      }
    }
    expect(vips.size).toBe(24);
  });

  it('refuses at one replica a token redeemed at the other', async () => {
    const token = await a.createToken({ node: 'node-once', services: ['echo'] });
    await joinNode(a, 'node-once', { token });
    await expect(joinNode(b, 'node-once', { token })).rejects.toThrow(/token/i);
    // At the same moment at both: exactly one join.
    const both = await b.createToken({ node: 'node-race', services: ['echo'] });
    const results = await Promise.allSettled([
      joinNode(a, 'node-race', { token: both }),
      joinNode(b, 'node-race', { token: both }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  });
});

describe('weft apply over two replicas', () => {
  const withVersion = (name: string, port: number, resourceVersion: string): ResourceMessage => {
    const doc = {
      apiVersion: 'weft/v1',
      kind: 'Service',
      metadata: { name, resourceVersion },
      spec: { ports: [{ port }] },
    };
    return { ...service(name), json: JSON.stringify(doc) };
  };

  it('lets exactly one of two conflicting applies win, the other told of the conflict', async () => {
    await adminA.apply([service('contested')], 'contested.yaml');
    const [read] = await adminB.get('Service', 'contested');
    const version = JSON.parse(read!.json).metadata.resourceVersion as string;
    const results = await Promise.allSettled([
      adminA.apply([withVersion('contested', 81, version)], 'a.yaml'),
      adminB.apply([withVersion('contested', 82, version)], 'b.yaml'),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(lost.reason).toMatchObject({ code: 'WEFT_E_CONFLICT' });
    expect(String(lost.reason.message)).toContain(
      'Service/contested was changed since it was read',
    );
  });

  it('refuses a stale document on the command line, and --force overwrites it', async () => {
    await adminA.apply([service('cli-stale')], 'cli-stale.yaml');
    const [read] = await adminA.get('Service', 'cli-stale');
    const stale = JSON.parse(read!.json).metadata.resourceVersion as string;
    await adminB.apply(
      [service('cli-stale')].map((r) => ({ ...r, json: r.json.replace('80', '81') })),
      'b.yaml',
    );
    const dir = mkdtempSync(join(tmpdir(), 'weft-apply-'));
    const file = join(dir, 'svc.yaml');
    writeFileSync(
      file,
      `apiVersion: weft/v1\nkind: Service\nmetadata:\n  name: cli-stale\n  resourceVersion: "${stale}"\nspec:\n  ports: [{ port: 82 }]\n`,
    );
    const admin = ['--server', b.grpcAddress, '--credentials', b.adminCredentials.dir];
    try {
      const refused = await runWeft(['apply', '-f', file, ...admin]);
      expect(refused.exitCode).toBe(1);
      expect(refused.stderr).toContain('Service/cli-stale was changed since it was read');
      const forced = await runWeft(['apply', '-f', file, '--force', ...admin]);
      expect(forced.stderr).toBe('');
      expect(forced.stdout).toContain('service/cli-stale configured');
      const [now] = await adminA.get('Service', 'cli-stale');
      expect(JSON.parse(now!.json).spec.ports[0].port).toBe(82);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('sync streams on every replica', () => {
  it('brings a change applied through one replica to an agent on the other', async () => {
    const node = await joinNode(a, 'node-watch', { services: ['echo'] });
    const atB = openSync(b, node);
    await atB.next((m) => m.full);
    await adminA.apply([service('applied-at-a')], 'applied-at-a.yaml');
    const delta = await atB.next((m) => has(m, 'Service', 'applied-at-a'));
    expect(delta.full).toBe(false);
    await adminA.delete('Service', 'applied-at-a');
    await atB.next((m) => removes(m, 'applied-at-a'));
  });
});

describe('liveness across replicas', () => {
  it('keeps fresh the workloads of a node that heart-beats to the other replica', async () => {
    await adminA.apply([service('echo')], 'echo.yaml');
    const alive = await joinNode(a, 'node-alive', { services: ['echo'] });
    const silent = await joinNode(a, 'node-silent', { services: ['echo'] });
    await register(a, alive, 7000);
    await register(a, silent, 7001);
    const atA = openSync(a, alive);
    await atA.next((m) => m.full);
    const beat = () =>
      atA.send({ heartbeat: { workloads: [{ name: 'echo-7000', health: 'healthy' }] } });
    beat();
    const heart = setInterval(beat, 200);
    try {
      const observer = openSync(b, await joinNode(b, 'node-observer', { services: ['echo'] }));
      // The sentinel: node-silent, heard from by neither replica, is removed; node-alive, which
      // heart-beats to A only, is never marked stale by B (nor by A) until then.
      const gone = await observer.next((m) => removes(m, 'node-silent-echo-7001'), 30_000);
      const upTo = observer.received.slice(0, observer.received.indexOf(gone) + 1);
      expect(upTo.some((m) => staleIn(m, 'node-alive-echo-7000') === true)).toBe(false);
      expect(upTo.some((m) => removes(m, 'node-alive-echo-7000'))).toBe(false);
    } finally {
      clearInterval(heart);
    }
  }, 60_000);

  it('removes the workloads of a node whose replica is gone, on the replica still up', async () => {
    const c = await startControlPlane({ dataDir: dataDirWithCaOf(a), config: replicaConfig() });
    let stopped = false;
    try {
      const orphan = await joinNode(c, 'node-orphan', { services: ['echo'] });
      await register(c, orphan, 7100);
      const atC = openSync(c, orphan);
      await atC.next((m) => m.full);
      atC.send({ heartbeat: { workloads: [{ name: 'echo-7100', health: 'healthy' }] } });
      const observer = openSync(b, await joinNode(b, 'node-observer-2', { services: ['echo'] }));
      await observer.next((m) => has(m, 'Workload', 'node-orphan-echo-7100'));
      // Its replica stops (its agent would move; this one does not): the workloads go when
      // the node's lease, which only its heartbeats kept alive, runs out.
      await c.stop({ removeDataDir: true });
      stopped = true;
      atC.close();
      await observer.next((m) => removes(m, 'node-orphan-echo-7100'), 30_000);
      await waitFor('the workload to be gone from etcd', async () => {
        const left = await b.controlPlane.store.get('/resources/Workload/node-orphan-echo-7100');
        return left === undefined;
      });
    } finally {
      if (!stopped) await c.stop({ removeDataDir: true });
    }
  }, 60_000);
});

describe('weft controlplane --store etcd', () => {
  it('runs a replica on etcd from the command line flags', async () => {
    const dir = dataDirWithCaOf(a);
    writeFileSync(
      join(dir, 'cp.yaml'),
      'listen: 127.0.0.1\ngrpcPort: 0\nhttpPort: 0\nadvertise: [127.0.0.1]\n',
    );
    const child = spawn(
      process.execPath,
      [
        join(ROOT, 'bin/weft'),
        'controlplane',
        '--config',
        join(dir, 'cp.yaml'),
        '--data-dir',
        dir,
        '--store',
        'etcd',
        '--etcd-endpoints',
        etcd.endpoint,
        '--etcd-prefix',
        prefix,
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (c: Buffer) => {
      output += c.toString('utf8');
    });
    child.stderr.on('data', (c: Buffer) => {
      output += c.toString('utf8');
    });
    const exited = once(child, 'exit');
    try {
      const ready = await waitFor(
        'the replica to log that it is ready',
        () => {
          if (child.exitCode !== null) throw new Error(`weft controlplane exited:\n${output}`);
          const line = output.split('\n').find((l) => l.includes('"control plane ready"'));
          return line === undefined
            ? undefined
            : (JSON.parse(line) as { caPin: string; listen: { grpc: string } });
        },
        { timeoutMs: 30_000, detail: () => output },
      );
      // The same CA as the others, and the state they share: a service applied at A is there.
      expect(ready.caPin).toBe(a.caPin);
      await adminA.apply([service('seen-by-cli')], 'seen-by-cli.yaml');
      const admin = WeftAdminClient.open({
        server: ready.listen.grpc,
        credentialsDir: join(dir, 'admin'),
      });
      try {
        const got = await admin.get('Service', 'seen-by-cli');
        expect(got.map((r) => r.name)).toEqual(['seen-by-cli']);
      } finally {
        admin.close();
      }
    } finally {
      child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('refuses etcd flags without --store etcd, and endpoints it cannot use', async () => {
    const without = await runWeft(['controlplane', '--etcd-endpoints', etcd.endpoint]);
    expect(without.exitCode).not.toBe(0);
    expect(without.stderr).toContain('--etcd-endpoints needs --store etcd');
    const bad = await runWeft(['controlplane', '--store', 'etcd', '--etcd-endpoints', 'etcd1']);
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toContain('--etcd-endpoints (store.endpoints): etcd1 is not a URL');
  });
});

describe('a replica while etcd is away', () => {
  it('is not ready, naming etcd, and is ready again when etcd is back', async () => {
    const own = await startEtcd();
    const cp = await startControlPlane({
      config: { store: { type: 'etcd', endpoints: [own.endpoint] } },
    });
    const readyz = async () => {
      const res = await fetch(`${cp.httpUrl}/readyz`);
      return { status: res.status, body: await res.text() };
    };
    try {
      expect((await readyz()).status).toBe(200);
      await own.kill();
      const down = await waitFor(
        '/readyz to say the store is away',
        async () => {
          const r = await readyz();
          return r.status !== 200 ? r : undefined;
        },
        30_000,
      );
      expect(down.body).toContain(`etcd (${own.endpoint})`);
      await own.start();
      await waitFor(
        '/readyz to be ready again',
        async () => (await readyz()).status === 200,
        60_000,
      );
    } finally {
      await cp.stop({ removeDataDir: true });
      await own.stop();
    }
  }, 120_000);
});
