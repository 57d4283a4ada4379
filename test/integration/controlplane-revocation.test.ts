// Taking identities back, against a real control plane on loopback (issue 10, deliverable 3):
// `weft delete node` (the DeleteNode Admin call) and a node's own Leave remove the node and its
// workloads and revoke its certificates at once: renewals, signing, registrations and syncs are
// refused from that moment, its open sync stream is ended, and a stolen certificate of a
// deleted-then-re-joined name does not pass. The serials revoked go to every agent in a
// Revocation resource.
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyAndCsr } from '../../src/api/csr.js';
import type { NodeInfo, SyncResponse } from '../../src/api/messages.js';
import { unary } from '../../src/api/proto.js';
import { nodeSpiffeId, serviceSpiffeId } from '../../src/api/spiffe.js';
import {
  adminClient,
  joinNode,
  LOG_LEVEL,
  type NodeCredentials,
  nodeClients,
  startControlPlane,
  type TestControlPlane,
} from '../helpers/controlplane.js';
import { waitFor } from '../helpers/wait.js';

let cp: TestControlPlane;

beforeAll(async () => {
  cp = await startControlPlane();
});
afterAll(() => cp.stop({ removeDataDir: true }));

const serialOf = (pem: string): string =>
  new X509Certificate(pem).serialNumber.toLowerCase().replace(/^0+/, '');

async function refusal(call: Promise<unknown>): Promise<grpc.ServiceError> {
  const outcome = await call.then(
    () => undefined,
    (err: grpc.ServiceError) => err,
  );
  if (outcome === undefined) throw new Error('the call succeeded but should have been refused');
  return outcome;
}

async function admin<T>(fn: (a: ReturnType<typeof adminClient>) => Promise<T>): Promise<T> {
  const a = adminClient(cp);
  try {
    return await fn(a);
  } finally {
    a.close();
  }
}

/** A node with an echo workload registered and a workload certificate for it. */
async function nodeWithWorkload(name: string) {
  const creds = await joinNode(cp, name, { services: ['echo'] });
  const c = nodeClients(cp, creds);
  await unary(c.identity, c.identity.registerWorkloads, {
    workloads: [{ service: 'echo', port: 8080, health: 'healthy' }],
  });
  const { csrPem } = await createKeyAndCsr(serviceSpiffeId(cp.trustDomain, 'echo'));
  const workload = await unary(c.identity, c.identity.signWorkload, { service: 'echo', csrPem });
  c.close();
  return { creds, workloadCert: workload.certificatePem };
}

/** A sync stream as the node; `ended` settles with the status it ends with. */
function openSync(creds: NodeCredentials) {
  const c = nodeClients(cp, creds);
  const stream = c.sync.stream();
  const received: SyncResponse[] = [];
  const ended = new Promise<{ code: grpc.status; details: string }>((resolve) => {
    stream.on('data', (msg: SyncResponse) => received.push(msg));
    stream.on('error', (err: grpc.ServiceError) => resolve(err));
    stream.on('end', () => resolve({ code: grpc.status.OK, details: 'ended' }));
  });
  stream.write({ hello: { version: 0, agentVersion: 'test/1' } });
  return { received, ended, close: () => c.close() };
}

/** Every call a node makes with `creds`, as gRPC statuses. */
async function everyCall(creds: NodeCredentials, hostname: string) {
  const c = nodeClients(cp, creds);
  try {
    const node = await createKeyAndCsr(nodeSpiffeId(cp.trustDomain, hostname));
    const svc = await createKeyAndCsr(serviceSpiffeId(cp.trustDomain, 'echo'));
    return {
      renew: await refusal(unary(c.identity, c.identity.renewNode, { csrPem: node.csrPem })),
      sign: await refusal(
        unary(c.identity, c.identity.signWorkload, { service: 'echo', csrPem: svc.csrPem }),
      ),
      register: await refusal(
        unary(c.identity, c.identity.registerWorkloads, {
          workloads: [{ service: 'echo', port: 8080 }],
        }),
      ),
    };
  } finally {
    c.close();
  }
}

async function syncRefusal(creds: NodeCredentials) {
  const s = openSync(creds);
  const end = await s.ended;
  s.close();
  return { end, received: s.received.length };
}

describe('weft delete node', () => {
  let victim: Awaited<ReturnType<typeof nodeWithWorkload>>;
  let stream: ReturnType<typeof openSync>;

  beforeAll(async () => {
    victim = await nodeWithWorkload('gone');
    await nodeWithWorkload('stays');
    // An unused token for the same name: deleting the node takes it too.
    await cp.createToken({ node: 'gone', replace: true });
    stream = openSync(victim.creds);
    await waitFor("the victim's first sync message", () => stream.received.length > 0);
  });
  afterAll(() => stream.close());

  it('removes the node, its workloads and unused tokens, and ends its sync stream', async () => {
    const res = await admin((a) => unary(a, a.deleteNode, { name: 'gone' }));
    expect(res).toEqual({ revokedCertificates: 2, workloadsRemoved: 1, tokensRemoved: 1 });
    // The stream the node had open ends at once, with the reason.
    const end = await stream.ended;
    expect(end.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(end.details).toBe(
      'node gone was removed from the mesh (weft delete node): its certificates are revoked; join again with a new token',
    );
    const nodes: NodeInfo[] = await admin(async (a) => (await unary(a, a.listNodes, {})).nodes);
    expect(nodes.map((n) => n.name)).toEqual(['stays']);
    const workloads = await admin((a) => unary(a, a.get, { kind: 'Workload', name: '' }));
    expect(workloads.resources.map((r) => r.name)).toEqual(['stays-echo-8080']);
    const tokens = await admin(async (a) => (await unary(a, a.listTokens, {})).tokens);
    expect(tokens.filter((t) => t.node === 'gone').map((t) => t.state)).toEqual(['used']);
    expect(
      cp.logs.find((l) => l.msg === 'node deleted: its certificates are revoked'),
    ).toMatchObject({ level: LOG_LEVEL.warn, node: 'gone', revokedCertificates: 2 });
  });

  it('refuses its renewals, signing, registrations and syncs from that moment', async () => {
    const calls = await everyCall(victim.creds, 'gone');
    for (const err of Object.values(calls)) {
      expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(err.details).toBe(
        'this certificate was revoked (node gone was removed from the mesh): join again with a new token',
      );
    }
    const sync = await syncRefusal(victim.creds);
    expect(sync.received).toBe(0);
    expect(sync.end.code).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('publishes the revoked serials (node and workload certificates) to every agent', async () => {
    const watcher = await joinNode(cp, 'watcher');
    const s = openSync(watcher);
    await waitFor("the watcher's first sync message", () => s.received.length > 0);
    s.close();
    const revocations = s.received[0]!.upserts.filter((u) => u.kind === 'Revocation');
    expect(revocations).toHaveLength(1);
    const doc = JSON.parse(revocations[0]!.json) as {
      spec: { node: string; reason: string; certificates: { serial: string; notAfter: string }[] };
    };
    expect(doc.spec.node).toBe('gone');
    expect(doc.spec.reason).toBe('deleted');
    expect(doc.spec.certificates.map((c) => c.serial).sort()).toEqual(
      [serialOf(victim.creds.certificatePem), serialOf(victim.workloadCert)].sort(),
    );
  });

  it('refuses a stolen certificate of the name after it joined again', async () => {
    const again = await joinNode(cp, 'gone', { services: ['echo'] });
    // The new node works ...
    const c = nodeClients(cp, again);
    const ok = await unary(c.identity, c.identity.registerWorkloads, {
      workloads: [{ service: 'echo', port: 8080 }],
    });
    c.close();
    expect(ok.names).toEqual(['gone-echo-8080']);
    // ... and the old certificate of the same name does not.
    const calls = await everyCall(victim.creds, 'gone');
    expect(calls.register.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(calls.register.details).toMatch(/^this certificate was revoked/);
    expect((await syncRefusal(victim.creds)).end.code).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('says so when the node does not exist', async () => {
    const err = await refusal(admin((a) => unary(a, a.deleteNode, { name: 'nobody' })));
    expect(err.code).toBe(grpc.status.NOT_FOUND);
    expect(err.details).toBe('node "nobody" not found (see weft get nodes)');
  });
});

describe('Leave', () => {
  it('removes the calling node like delete node, logged at info', async () => {
    const { creds } = await nodeWithWorkload('leaver');
    const c = nodeClients(cp, creds);
    const res = await unary(c.identity, c.identity.leave, {});
    c.close();
    expect(res).toEqual({ revokedCertificates: 2, workloadsRemoved: 1 });
    const nodes: NodeInfo[] = await admin(async (a) => (await unary(a, a.listNodes, {})).nodes);
    expect(nodes.map((n) => n.name)).not.toContain('leaver');
    expect(cp.logs.find((l) => l.msg === 'node left the mesh')).toMatchObject({
      level: LOG_LEVEL.info,
      node: 'leaver',
    });
    const calls = await everyCall(creds, 'leaver');
    expect(calls.renew.details).toBe(
      'this certificate was revoked (node leaver left the mesh): join again with a new token',
    );
  });
});
