// The sync stream as an agent sees it, with a raw grpc-js client over mTLS: a full snapshot,
// then deltas that carry only what changed, versions that acks and nacks refer to, and what
// happens to the workloads of a node that stops heart-beating (stale, then removed).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WeftAdminClient } from '../../src/api/admin-client.js';
import type { ResourceMessage, SyncRequest, SyncResponse } from '../../src/api/messages.js';
import { unary } from '../../src/api/proto.js';
import {
  joinNode,
  type NodeCredentials,
  nodeClients,
  startControlPlane,
  type TestControlPlane,
} from '../helpers/controlplane.js';

interface SyncClientUnderTest {
  received: SyncResponse[];
  /** The next message matching `match` (already received ones count), within timeoutMs. */
  next(match: (m: SyncResponse) => boolean, timeoutMs?: number): Promise<SyncResponse>;
  send(req: SyncRequest): void;
  close(): void;
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function openSync(cp: TestControlPlane, creds: NodeCredentials, version = 0): SyncClientUnderTest {
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
  stream.write({ hello: { version, agentVersion: 'test' } });
  const client: SyncClientUnderTest = {
    received,
    next(match, timeoutMs = 1_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `no matching sync message within ${timeoutMs} ms; got ${received.length - seen} others`,
              ),
            ),
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
    send: (req) => {
      stream.write(req);
    },
    close() {
      stream.cancel();
      clients.close();
    },
  };
  cleanups.push(() => client.close());
  return client;
}

const docOf = (r: ResourceMessage) =>
  JSON.parse(r.json) as { spec: Record<string, unknown>; status?: Record<string, unknown> };
const has = (m: SyncResponse, kind: string, name: string) =>
  m.upserts.some((u) => u.kind === kind && u.name === name);
/** The health of workload `name` if this message upserts it. */
const healthIn = (m: SyncResponse, name: string) => {
  const u = m.upserts.find((x) => x.kind === 'Workload' && x.name === name);
  return u === undefined ? undefined : docOf(u).spec.health;
};
/** The workload `name` as this message upserts it. */
const workloadIn = (m: SyncResponse, name: string) => {
  const u = m.upserts.find((x) => x.kind === 'Workload' && x.name === name);
  return u === undefined ? undefined : docOf(u);
};
const service = (name: string, port = 80) => ({
  kind: 'Service',
  name,
  json: JSON.stringify({
    apiVersion: 'weft/v1',
    kind: 'Service',
    metadata: { name },
    spec: { ports: [{ port }] },
  }),
  revision: 0,
  source: `${name}.yaml: document 1`,
});

let cp: TestControlPlane;
let admin: WeftAdminClient;
let nodeA: NodeCredentials;
let nodeB: NodeCredentials;

beforeAll(async () => {
  cp = await startControlPlane({
    config: { workloadStaleAfter: '600ms', workloadRemoveAfter: '1500ms' },
  });
  admin = WeftAdminClient.open({ server: cp.grpcAddress, credentialsDir: cp.adminCredentials.dir });
  nodeA = await joinNode(cp, 'node-a', { services: ['echo'] });
  nodeB = await joinNode(cp, 'node-b', { services: ['echo'] });
  await admin.apply([service('echo')], 'echo.yaml');
});

afterAll(async () => {
  admin.close();
  await cp.stop({ removeDataDir: true });
});

async function register(
  creds: NodeCredentials,
  workloads: Array<{ service: string; port: number; health?: string; name?: string }>,
) {
  const c = nodeClients(cp, creds);
  try {
    return await unary(c.identity, c.identity.registerWorkloads, { workloads: workloads as never });
  } finally {
    c.close();
  }
}

describe('snapshots and deltas', () => {
  it('sends a full snapshot first, then a delta within 1 s of an apply', async () => {
    await register(nodeA, [{ service: 'echo', port: 8080, health: 'healthy' }]);
    const sync = openSync(cp, nodeA);
    const full = await sync.next((m) => m.full);
    expect(full.baseVersion).toBe(0);
    expect(full.trustBundlePem).toBe(cp.trustBundlePem);
    const echo = docOf(full.upserts.find((u) => u.kind === 'Service' && u.name === 'echo')!);
    expect(echo.status?.vip).toMatch(/^240\.240\.\d+\.\d+$/);
    let version = full.version;
    if (!has(full, 'Workload', 'node-a-echo-8080')) {
      // The registration may still sit in the coalescing window: then it is the next delta.
      const next = await sync.next((m) => has(m, 'Workload', 'node-a-echo-8080'));
      expect(next.baseVersion).toBe(full.version);
      version = next.version;
    }
    sync.send({ ack: { version } });

    await admin.apply([service('orders')], 'orders.yaml');
    const delta = await sync.next((m) => has(m, 'Service', 'orders'), 1_000);
    expect(delta.full).toBe(false);
    expect(delta.baseVersion).toBe(version);
    expect(delta.upserts.map((u) => `${u.kind}/${u.name}`)).toEqual(['Service/orders']);
    expect(delta.trustBundlePem).toBe('');

    await admin.delete('service', 'orders');
    const removal = await sync.next((m) => m.removals.length > 0, 1_000);
    expect(removal.baseVersion).toBe(delta.version);
    expect(removal.removals).toEqual([{ kind: 'Service', name: 'orders' }]);
    expect(removal.upserts).toEqual([]);
  });

  it('sends one Workload when one workload’s health changes', async () => {
    await register(nodeA, [
      { service: 'echo', port: 8080, health: 'healthy' },
      { service: 'echo', port: 8081, health: 'healthy' },
    ]);
    const observer = openSync(cp, nodeB);
    // In the snapshot, or in the delta right after it when the registration was still pending.
    await observer.next((m) => healthIn(m, 'node-a-echo-8081') === 'healthy');
    const a = openSync(cp, nodeA);
    await a.next((m) => m.full);
    a.send({ heartbeat: { workloads: [{ name: 'echo-8081', health: 'unhealthy' }] } });
    const delta = await observer.next((m) => m.upserts.length > 0 || m.removals.length > 0);
    expect(delta.upserts.map((u) => u.name)).toEqual(['node-a-echo-8081']);
    expect(docOf(delta.upserts[0]!).spec.health).toBe('unhealthy');
    expect(delta.removals).toEqual([]);
  });

  it('merges a burst of changes into few pushes that end in the same state', async () => {
    const observer = openSync(cp, nodeB);
    const full = await observer.next((m) => m.full);
    const names = Array.from({ length: 20 }, (_, i) => `burst-${i}`);
    await Promise.all(names.map((n) => admin.apply([service(n)], `${n}.yaml`)));
    const last = await observer.next(
      (m) =>
        names.every((n) => observer.received.some((r) => has(r, 'Service', n))) &&
        has(m, 'Service', m.upserts.at(-1)!.name),
    );
    const deltas = observer.received.filter((m) => !m.full);
    expect(deltas.length).toBeLessThan(names.length);
    // Each delta builds on the one before.
    let version = full.version;
    for (const d of deltas) {
      expect(d.baseVersion).toBe(version);
      version = d.version;
    }
    expect(last.version).toBe(version);
    await Promise.all(names.map((n) => admin.delete('service', n)));
  });

  it('resumes with a delta from the version the agent holds, or nothing when it is current', async () => {
    const first = openSync(cp, nodeB);
    const full = await first.next((m) => m.full);
    first.close();
    await admin.apply([service('resume')], 'resume.yaml');
    const again = openSync(cp, nodeB, full.version);
    const delta = await again.next((m) => has(m, 'Service', 'resume'));
    // Depending on when the apply is published, an empty delta may come first; never a full.
    expect(again.received.every((m) => !m.full && m.baseVersion >= full.version)).toBe(true);
    expect(delta.upserts.map((u) => u.name)).toEqual(['resume']);
    const current = openSync(cp, nodeB, delta.version);
    const empty = await current.next(() => true);
    expect(empty).toMatchObject({
      full: false,
      baseVersion: delta.version,
      version: delta.version,
      upserts: [],
      removals: [],
    });
    const stranger = openSync(cp, nodeB, delta.version + 1_000);
    expect((await stranger.next(() => true)).full).toBe(true);
  });
});

describe('a fleet reconnecting at once', () => {
  it('gives each of 24 streams (more than the 16 full-snapshot slots) its snapshot and the changes after it', async () => {
    const nodes = await Promise.all(
      Array.from({ length: 24 }, (_, i) => joinNode(cp, `fleet-${i}`)),
    );
    const streams = nodes.map((n) => openSync(cp, n));
    // A change while streams wait for a slot: each must end up holding it.
    await admin.apply([service('fleet-change', 81)], 'fleet.yaml');
    for (const s of streams) {
      // A stream that waited for a slot gets the snapshot taken when its turn came, so the
      // change is in it or in a delta after it; a slot never released would leave it waiting.
      const full = await s.next((m) => m.full, 10_000);
      if (!has(full, 'Service', 'fleet-change'))
        await s.next((m) => has(m, 'Service', 'fleet-change'), 10_000);
    }
    const text = await (await fetch(`${cp.httpUrl}/metrics`)).text();
    expect(text).toContain('weft_controlplane_sync_full_snapshots{state="waiting"} 0');
    for (const s of streams) s.close();
  });
});

describe('acks and nacks', () => {
  it('shows acked versions and rejections in ListNodes, and keeps pushing after a rejection', async () => {
    const sync = openSync(cp, nodeB);
    const full = await sync.next((m) => m.full);
    sync.send({ ack: { version: full.version } });
    await admin.apply([service('nacked')], 'nacked.yaml');
    const bad = await sync.next((m) => has(m, 'Service', 'nacked'));
    sync.send({ nack: { version: bad.version, reason: 'test: refusing Service/nacked' } });
    await expect
      .poll(async () => (await admin.listNodes()).find((n) => n.name === 'node-b'))
      .toMatchObject({
        ackedVersion: full.version,
        lastNack: `version ${bad.version}: test: refusing Service/nacked`,
        state: 'connected',
      });
    // The next push builds on what the agent acknowledged, so it can apply it.
    await admin.apply([service('after-nack')], 'after-nack.yaml');
    const next = await sync.next((m) => has(m, 'Service', 'after-nack'));
    expect(next.baseVersion).toBe(full.version);
    // Services only: on a slow machine, node-a's workloads may also have changed meanwhile
    // (its heartbeats stopped with an earlier test), and they rightly ride the same delta.
    const services = next.upserts.filter((u) => u.kind === 'Service').map((u) => u.name);
    expect(services.sort()).toEqual(['after-nack', 'nacked']);
    sync.send({ ack: { version: next.version } });
    await expect
      .poll(async () => (await admin.listNodes()).find((n) => n.name === 'node-b')?.ackedVersion)
      .toBe(next.version);
  });
});

describe('heartbeats', () => {
  it('marks the workloads of a silent node stale, keeping the health it reported, then removes them', async () => {
    const nodeC = await joinNode(cp, 'node-c', { services: ['echo'] });
    // The sentinel: a node that goes silent while node-c heart-beats.
    const nodeS = await joinNode(cp, 'node-s', { services: ['echo'] });
    await register(nodeC, [{ service: 'echo', port: 7000, health: 'healthy' }]);
    await register(nodeS, [{ service: 'echo', port: 7001, health: 'healthy' }]);
    const observer = openSync(cp, nodeB);
    await observer.next((m) => healthIn(m, 'node-c-echo-7000') === 'healthy');
    const settled = observer.received.length;
    const c = openSync(cp, nodeC);
    await c.next((m) => m.full);
    // Alive while it heart-beats, as an agent does (here every 100 ms)...
    const beat = () =>
      c.send({ heartbeat: { workloads: [{ name: 'echo-7000', health: 'healthy' }] } });
    beat();
    const heart = setInterval(beat, 100);
    let removedSentinel: SyncResponse;
    try {
      // ...while node-s, last heard from after node-c first was, falls silent and is removed
      // after workloadRemoveAfter: had the heartbeats been ignored, node-c would have been
      // marked stale long before that removal.
      const s = openSync(cp, nodeS);
      await s.next((m) => m.full);
      s.close();
      removedSentinel = await observer.next(
        (m) => m.removals.some((r) => r.name === 'node-s-echo-7001'),
        3_000,
      );
    } finally {
      clearInterval(heart);
    }
    const upToSentinel = observer.received.slice(
      settled,
      observer.received.indexOf(removedSentinel) + 1,
    );
    expect(upToSentinel.some((m) => healthIn(m, 'node-c-echo-7000') !== undefined)).toBe(false);
    // ...then silent: stale after workloadStaleAfter, still healthy (its peers may still reach
    // it), and gone after workloadRemoveAfter.
    c.close();
    const marked = await observer.next((m) => healthIn(m, 'node-c-echo-7000') !== undefined, 3_000);
    const doc = workloadIn(marked, 'node-c-echo-7000')!;
    expect(doc.spec.health).toBe('healthy');
    expect(doc.status).toMatchObject({ stale: true, reason: 'NodeSilent' });
    expect(Date.parse(String(doc.status?.lastSeen))).toBeGreaterThan(0);
    const removed = await observer.next(
      (m) => m.removals.some((r) => r.name === 'node-c-echo-7000'),
      3_000,
    );
    expect(removed.removals).toEqual([{ kind: 'Workload', name: 'node-c-echo-7000' }]);
    expect((await admin.get('workloads')).map((w) => w.name)).not.toContain('node-c-echo-7000');
  });

  it('clears the stale mark, with the health reported, when the node heart-beats again', async () => {
    const nodeD = await joinNode(cp, 'node-d', { services: ['echo'] });
    await register(nodeD, [{ service: 'echo', port: 7100, health: 'healthy' }]);
    const observer = openSync(cp, nodeB);
    await observer.next((m) => workloadIn(m, 'node-d-echo-7100')?.status?.stale === true, 3_000);
    const d = openSync(cp, nodeD);
    d.send({ heartbeat: { workloads: [{ name: 'echo-7100', health: 'unhealthy' }] } });
    const restored = await observer.next((m) => healthIn(m, 'node-d-echo-7100') !== undefined);
    const doc = workloadIn(restored, 'node-d-echo-7100')!;
    expect(doc.spec.health).toBe('unhealthy');
    expect(doc.status).toBeUndefined();
  });
});

describe('metrics', () => {
  it('exposes sync and agent figures on /metrics', async () => {
    const text = await (await fetch(`${cp.httpUrl}/metrics`)).text();
    for (const name of [
      'weft_controlplane_connected_agents',
      'weft_controlplane_sync_version',
      'weft_controlplane_sync_acks_total',
      'weft_controlplane_sync_nacks_total 1',
      'weft_controlplane_sync_latency_seconds_bucket',
      'weft_controlplane_certificates_issued_total{type="node"}',
      'weft_controlplane_store_revision',
      'weft_controlplane_tokens_created_total',
      'weft_controlplane_workloads_marked_stale_total',
      'weft_controlplane_sync_full_snapshots{state="sending"}',
    ]) {
      expect(text, name).toContain(name);
    }
    expect((await fetch(`${cp.httpUrl}/readyz`)).status).toBe(200);
    expect((await fetch(`${cp.httpUrl}/healthz`)).status).toBe(200);
  });
});
