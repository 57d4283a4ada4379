// A replica that loses etcd while the other replica keeps it (a real etcd; replica A reaches it
// through a TCP relay the test cuts, a partition of A alone): A says why in /readyz, refuses
// changes, tokens and joins at once with WEFT_E_STORE naming etcd, and sends its agent to B,
// which has etcd; changes made through B reach the agent meanwhile. When the relay is restored
// A is ready again and takes changes, without a restart.
import { copyFileSync, mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentConfigSchema } from '../../src/agent/config.js';
import { WeftAdminClient } from '../../src/api/admin-client.js';
import { fromGrpcError } from '../../src/api/grpc-errors.js';
import { orderReplicas } from '../../src/controlplane-client/replica-choice.js';
import {
  type ControlPlaneSession,
  startControlPlaneSession,
} from '../../src/controlplane-client/session.js';
import { WeftError } from '../../src/errors.js';
import { joinNode, startControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { startTcpRelay, type TcpRelay } from '../helpers/tcp-relay.js';
import { waitFor } from '../helpers/wait.js';

/** The agent's reconnect backoff: every wait is just under 8 s (a fixed draw of the jitter). */
const BACKOFF = { baseMs: 8_000, capMs: 8_000, random: () => 0.99 };

let etcd: TestEtcd;
let relay: TcpRelay;
let a: TestControlPlane;
let b: TestControlPlane;
let app: Server;
let root: string;
let session: ControlPlaneSession;
const logs: Array<Record<string, unknown> & { msg: string }> = [];
const prefix = `/weft-etcd-lost-${process.pid}/`;

const service = (name: string) => ({
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

const admin = (cp: TestControlPlane) =>
  WeftAdminClient.open({ server: cp.grpcAddress, credentialsDir: cp.adminCredentials.dir });

async function applyThrough(cp: TestControlPlane, name: string): Promise<void> {
  const client = admin(cp);
  try {
    await client.apply([service(name)], `${name}.yaml`);
  } finally {
    client.close();
  }
}

async function readyz(cp: TestControlPlane): Promise<{ status: number; body: string }> {
  const res = await fetch(`${cp.httpUrl}/readyz`);
  return { status: res.status, body: await res.text() };
}

/** The error a promise rejects with (it must reject). */
async function failure(p: Promise<unknown>): Promise<WeftError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof WeftError)) throw new Error(`expected a WeftError, got ${String(err)}`);
  return err;
}

const on = () => session.status().controlPlane;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'weft-etcd-lost-'));
  etcd = await startEtcd();
  relay = await startTcpRelay({ host: '127.0.0.1', port: Number(new URL(etcd.endpoint).port) });
  const store = (endpoint: string) => ({ type: 'etcd' as const, endpoints: [endpoint], prefix });
  b = await startControlPlane({ config: { store: store(etcd.endpoint), syncCoalesce: '20ms' } });
  const aDir = mkdtempSync(join(root, 'replica-a-'));
  for (const f of ['ca.key', 'ca.crt']) copyFileSync(join(b.dataDir, f), join(aDir, f));
  a = await startControlPlane({
    dataDir: aDir,
    config: { store: store(`http://127.0.0.1:${relay.port}`), syncCoalesce: '20ms' },
  });
  app = createServer((s) => s.end());
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));

  // A host name whose own replica order starts with A: the agent connects to A first.
  const replicas = [a.grpcAddress, b.grpcAddress];
  const hostname = Array.from({ length: 64 }, (_, i) => `node-lost-${i}`).find(
    (h) =>
      orderReplicas(
        replicas.map((r) => ({ dial: r, name: r })),
        h,
      )[0]!.dial === a.grpcAddress,
  )!;
  const token = await b.createToken({ node: hostname, services: ['echo'] });
  const config = agentConfigSchema.parse({
    hostname,
    dataDir: join(root, 'agent'),
    addresses: ['127.0.0.1'],
    controlPlane: { addresses: replicas, token, caPin: b.caPin },
    workloads: [{ service: 'echo', port: (app.address() as { port: number }).port }],
    heartbeatIntervalMs: 500,
  });
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n'))
        if (line !== '') logs.push(JSON.parse(line));
      done();
    },
  });
  session = await startControlPlaneSession(config, pino({ level: 'info' }, sink), {
    backoff: BACKOFF,
  });
  await waitFor(
    'the agent on replica A',
    () => (session.state === 'connected' && on() === a.grpcAddress) || undefined,
    { timeoutMs: 60_000, detail: () => JSON.stringify(session.status()) },
  );
}, 180_000);

afterAll(async () => {
  await session?.stop();
  app?.close();
  await a?.stop({ removeDataDir: true });
  await b?.stop({ removeDataDir: true });
  await relay?.close();
  await etcd?.stop();
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

describe('a replica cut off from etcd', () => {
  it('is not ready, refuses changes at once naming etcd, and sends its agent to the replica that has etcd', async () => {
    expect((await readyz(a)).status).toBe(200);
    const held = session.status().version;
    relay.cut();
    const down = await waitFor(
      "A's /readyz to say etcd is unreachable",
      async () => {
        const r = await readyz(a);
        return r.status === 503 ? r : undefined;
      },
      60_000,
    );
    expect(down.body).toMatch(
      new RegExp(`^not ready: etcd \\(http://127.0.0.1:${relay.port}\\) unreachable since \\S+Z: `),
    );

    // Changes, tokens and joins at A are refused with a code and a message naming etcd.
    const applied = await failure(applyThrough(a, 'through-a-while-cut'));
    expect(applied.code).toBe('WEFT_E_STORE');
    expect(applied.message).toContain(`etcd (http://127.0.0.1:${relay.port}) unreachable since`);
    expect(applied.message).toContain('nothing was changed');
    const client = admin(a);
    try {
      const token = await failure(
        client.createToken({
          ttlSeconds: 60,
          description: 't',
          node: 'n',
          services: [],
          replace: false,
        }),
      );
      expect(token.code).toBe('WEFT_E_STORE');
      expect(token.message).toContain(`etcd (http://127.0.0.1:${relay.port}) unreachable since`);
    } finally {
      client.close();
    }
    const joinToken = await b.createToken({ node: 'joins-at-a' });
    const joined = await failure(
      joinNode(a, 'joins-at-a', { token: joinToken }).catch((err: unknown) => {
        throw fromGrpcError(err);
      }),
    );
    expect(joined.code).toBe('WEFT_E_STORE');
    expect(joined.message).toContain(`etcd (http://127.0.0.1:${relay.port}) unreachable since`);
    expect(a.logs).toContainEqual(
      expect.objectContaining({
        msg: 'the store is unreachable: not ready, refusing changes, sending agents to another replica',
      }),
    );

    // B has etcd: ready, and the agent moved there because A told it to (not after a failure).
    expect((await readyz(b)).status).toBe(200);
    await waitFor(
      'the agent on replica B',
      () => (session.state === 'connected' && on() === b.grpcAddress) || undefined,
      { timeoutMs: 60_000, detail: () => JSON.stringify(session.status()) },
    );
    expect(logs).toContainEqual(
      expect.objectContaining({
        msg: 'moving to another control plane replica',
        from: a.grpcAddress,
        to: b.grpcAddress,
        why: 'stopping',
      }),
    );
    expect(session.status().version).toBeGreaterThanOrEqual(held);
    await applyThrough(b, 'through-b-while-a-is-cut');
    await waitFor(
      'the change made through B',
      () => session.snapshot()?.resources.has('Service/through-b-while-a-is-cut') || undefined,
      30_000,
    );
    // A refused it: nothing of it reached etcd.
    expect(session.snapshot()?.resources.has('Service/through-a-while-cut')).toBe(false);
  }, 180_000);

  it('is ready again and takes changes when etcd is reachable again, without a restart', async () => {
    relay.restore();
    await waitFor(
      "A's /readyz to be ready again",
      async () => (await readyz(a)).status === 200,
      60_000,
    );
    await applyThrough(a, 'through-a-after');
    await waitFor(
      'the change made through A, at the agent on B',
      () => session.snapshot()?.resources.has('Service/through-a-after') || undefined,
      30_000,
    );
    expect(a.logs).toContainEqual(
      expect.objectContaining({
        msg: 'the store answers again: ready, accepting agents and changes',
      }),
    );
  }, 180_000);
});

describe('every replica without etcd (etcd itself down)', () => {
  it('leaves the agent serving its snapshot, moving between replicas only after its backoff, and all converge when etcd is back', async () => {
    await waitFor('the agent connected', () => session.state === 'connected' || undefined, 60_000);
    const held = session.snapshot()!.version;
    const from = logs.length;
    const moves = () =>
      logs.slice(from).filter((l) => l.msg === 'moving to another control plane replica');
    await etcd.kill();
    for (const cp of [a, b])
      await waitFor(
        'both replicas not ready',
        async () => (await readyz(cp)).status === 503,
        60_000,
      );
    // The sentinel: two moves after a backoff each (every replica refuses the agent now).
    await waitFor(
      'two moves after the backoff',
      () => moves().filter((m) => m.why === 'failed').length >= 2 || undefined,
      { timeoutMs: 90_000, detail: () => JSON.stringify(moves()) },
    );
    // At most one move at once per replica that lost etcd (when it told its agents); every
    // other move waited its backoff: no hopping around replicas that cannot help.
    expect(moves().filter((m) => m.why === 'stopping').length).toBeLessThanOrEqual(2);
    expect(session.snapshot()?.version).toBe(held);
    expect(session.view()).toBeDefined();

    await etcd.start();
    for (const cp of [a, b])
      await waitFor(
        'both replicas ready again',
        async () => (await readyz(cp)).status === 200,
        60_000,
      );
    await applyThrough(a, 'after-etcd-is-back');
    await waitFor(
      'the agent connected again, with the change',
      () =>
        (session.state === 'connected' &&
          session.snapshot()?.resources.has('Service/after-etcd-is-back')) ||
        undefined,
      60_000,
    );
  }, 240_000);
});
