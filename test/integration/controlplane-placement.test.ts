// Workload placement against a real control plane on loopback (issue 10, deliverable 2): a
// node registers workloads of, and gets certificates for, only the services it is allowed to
// serve (by its join token or by `weft node allow`). The attack: node n2 registers `frontend`
// (a service it does not run, with no Service resource) and `echo` (one it does not serve) to
// get their identities and pull their traffic.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyAndCsr } from '../../src/api/csr.js';
import type { RegisterWorkloadsResponse, ResourceMessage } from '../../src/api/messages.js';
import { unary } from '../../src/api/proto.js';
import { serviceSpiffeId, spiffeIdOfCertificate } from '../../src/api/spiffe.js';
import {
  adminClient,
  joinNode,
  LOG_LEVEL,
  type NodeCredentials,
  nodeClients,
  startControlPlane,
  type TestControlPlane,
} from '../helpers/controlplane.js';

let cp: TestControlPlane;
let n1: NodeCredentials;
let n2: NodeCredentials;

beforeAll(async () => {
  cp = await startControlPlane();
  n1 = await joinNode(cp, 'n1', { services: ['echo'], addresses: ['10.0.0.1'] });
  n2 = await joinNode(cp, 'n2', { services: ['web'], addresses: ['10.0.0.2'] });
  await register(n1, [{ service: 'echo', port: 8080 }]);
});
afterAll(() => cp.stop({ removeDataDir: true }));

type Registration = { service: string; port: number; name?: string };

async function register(
  node: NodeCredentials,
  workloads: Registration[],
): Promise<RegisterWorkloadsResponse> {
  const c = nodeClients(cp, node);
  try {
    return await unary(c.identity, c.identity.registerWorkloads, { workloads });
  } finally {
    c.close();
  }
}

async function sign(node: NodeCredentials, service: string) {
  const { csrPem } = await createKeyAndCsr(serviceSpiffeId(cp.trustDomain, service));
  const c = nodeClients(cp, node);
  try {
    return await unary(c.identity, c.identity.signWorkload, { service, csrPem });
  } finally {
    c.close();
  }
}

async function refusal(call: Promise<unknown>): Promise<grpc.ServiceError> {
  const outcome = await call.then(
    () => undefined,
    (err: grpc.ServiceError) => err,
  );
  if (outcome === undefined) throw new Error('the call succeeded but should have been refused');
  return outcome;
}

/** Workload names and services the control plane stores, as `weft get workloads` shows them. */
async function storedWorkloads(): Promise<string[]> {
  const admin = adminClient(cp);
  try {
    const res = await unary(admin, admin.get, { kind: 'Workload', name: '' });
    return res.resources
      .map((r: ResourceMessage) => {
        const doc = JSON.parse(r.json) as { spec: { service: string; node: string } };
        return `${doc.spec.node}/${doc.spec.service}:${r.name}`;
      })
      .sort();
  } finally {
    admin.close();
  }
}

async function allow(node: string, services: { allow?: string[]; disallow?: string[] }) {
  const admin = adminClient(cp);
  try {
    return await unary(admin, admin.setNodeServices, {
      node,
      allow: services.allow ?? [],
      disallow: services.disallow ?? [],
    });
  } finally {
    admin.close();
  }
}

describe('a node registers only services it may serve', () => {
  it('refuses frontend and echo from n2, stores neither, and leaves echo to n1', async () => {
    const res = await register(n2, [
      { service: 'frontend', port: 8080 },
      { service: 'echo', port: 8081 },
    ]);
    expect(res.names).toEqual([]);
    expect(res.refused).toEqual([
      {
        name: 'frontend-8080',
        service: 'frontend',
        reason: 'service_not_allowed',
        message:
          'node n2 may not serve service "frontend": allow it on the control plane with `weft node allow n2 --service frontend`',
      },
      expect.objectContaining({
        name: 'echo-8081',
        service: 'echo',
        reason: 'service_not_allowed',
      }),
    ]);
    expect(await storedWorkloads()).toEqual(['n1/echo:n1-echo-8080']);
  });

  it('logs each refusal at warn naming node and service, and counts it', async () => {
    const warned = cp.logs.filter(
      (l) => l.level === LOG_LEVEL.warn && l.node === 'n2' && l.reason === 'service_not_allowed',
    );
    expect(warned.map((l) => l.service).sort()).toEqual(['echo', 'frontend']);
    const text = await (await fetch(`${cp.httpUrl}/metrics`)).text();
    expect(text).toContain(
      'weft_controlplane_refusals_total{method="RegisterWorkloads",reason="service_not_allowed"} 2',
    );
  });

  it('refuses a certificate for svc/frontend and svc/echo to n2', async () => {
    for (const service of ['frontend', 'echo']) {
      const err = await refusal(sign(n2, service));
      expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(err.details).toBe(
        `node n2 may not serve service "${service}": allow it on the control plane with \`weft node allow n2 --service ${service}\``,
      );
    }
  });

  it('stores the allowed entries of a registration and refuses only the others', async () => {
    const res = await register(n2, [
      { service: 'web', port: 9090 },
      { service: 'frontend', port: 8080 },
    ]);
    expect(res.names).toEqual(['n2-web-9090']);
    expect(res.refused.map((r) => r.service)).toEqual(['frontend']);
    expect(await storedWorkloads()).toEqual(['n1/echo:n1-echo-8080', 'n2/web:n2-web-9090']);
    expect(spiffeIdOfCertificate((await sign(n2, 'web')).certificatePem)).toBe(
      'spiffe://weft.local/svc/web',
    );
  });

  it('accepts frontend once the operator allows it, without a new join', async () => {
    const res = await allow('n2', { allow: ['frontend'] });
    expect(res.services).toEqual(['frontend', 'web']);
    const reg = await register(n2, [
      { service: 'web', port: 9090 },
      { service: 'frontend', port: 8080 },
    ]);
    expect(reg.refused).toEqual([]);
    expect(reg.names).toEqual(['n2-web-9090', 'n2-frontend-8080']);
    const cert = await sign(n2, 'frontend');
    expect(spiffeIdOfCertificate(cert.certificatePem)).toBe('spiffe://weft.local/svc/frontend');
  });

  it('still signs only for a service the node has a workload of, allowed or not', async () => {
    await allow('n2', { allow: ['orders'] });
    const err = await refusal(sign(n2, 'orders'));
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.details).toMatch(/no workload of service "orders" is registered on node n2/);
  });

  it('disallowing a service removes its workloads from the node and revokes its certificates there', async () => {
    const cert = await sign(n2, 'frontend');
    const res = await allow('n2', { disallow: ['frontend', 'orders'] });
    expect(res.services).toEqual(['web']);
    expect(res.workloadsRemoved).toBe(1);
    expect(await storedWorkloads()).toEqual(['n1/echo:n1-echo-8080', 'n2/web:n2-web-9090']);
    const admin = adminClient(cp);
    const revocations = await unary(admin, admin.get, { kind: 'Revocation', name: '' });
    admin.close();
    const serials = revocations.resources.flatMap(
      (r) =>
        (JSON.parse(r.json) as { spec: { certificates: { serial: string }[] } }).spec.certificates,
    );
    const { X509Certificate } = await import('node:crypto');
    const serial = new X509Certificate(cert.certificatePem).serialNumber
      .toLowerCase()
      .replace(/^0+/, '');
    expect(serials.map((s) => s.serial)).toContain(serial);
  });

  it('refuses allowing a service name that is not a DNS label, or an unknown node', async () => {
    const bad = await refusal(allow('n2', { allow: ['Not_A_Label'] }));
    expect(bad.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(bad.details).toBe(
      'service "Not_A_Label" is not a valid service name (a DNS label: lowercase letters, digits and "-")',
    );
    const unknown = await refusal(allow('nobody', { allow: ['web'] }));
    expect(unknown.code).toBe(grpc.status.NOT_FOUND);
    expect(unknown.details).toBe('node "nobody" not found (see weft get nodes)');
  });
});

describe('a control plane upgraded from before placement', () => {
  it('allows each existing node the services it has workloads of, once, and says so', async () => {
    const old = await startControlPlane();
    const store = old.controlPlane.store;
    // State as an older control plane left it: a node with no allowed services, its workload,
    // and an unscoped token.
    const { nodeKey, resourceKey, tokenKey } = await import('../../src/controlplane/store/keys.js');
    const { newToken } = await import('../../src/controlplane/identity/tokens.js');
    await store.put(nodeKey('legacy'), {
      name: 'legacy',
      spiffeId: 'spiffe://weft.local/node/legacy',
      addresses: ['10.0.0.7'],
      zone: '',
      joinedAtMs: 1,
      tokenId: '000000000000',
      certNotAfterMs: Date.now() + 3_600_000,
    });
    await store.put(resourceKey('Workload', 'legacy-echo-8080'), {
      apiVersion: 'weft/v1',
      kind: 'Workload',
      metadata: { name: 'legacy-echo-8080' },
      spec: {
        service: 'echo',
        node: 'legacy',
        address: '10.0.0.7',
        port: 8080,
        health: 'healthy',
        weight: 1,
      },
    });
    const unscoped = newToken(3_600_000, 'old', { node: 'x', services: [], replace: false });
    const { node: _n, services: _s, replace: _r, ...record } = unscoped.record;
    await store.put(tokenKey(record.id), record);
    const dataDir = old.dataDir;
    await old.stop();

    const upgraded = await startControlPlane({ dataDir });
    try {
      const admin = adminClient(upgraded);
      const nodes = await unary(admin, admin.listNodes, {});
      admin.close();
      expect(nodes.nodes.find((n) => n.name === 'legacy')?.services).toEqual(['echo']);
      expect(
        upgraded.logs.find((l) => l.node === 'legacy' && l.level === LOG_LEVEL.warn)?.msg,
      ).toBe(
        'node joined before placement: allowed the services it has workloads of (check with weft get nodes)',
      );
      const err = await refusal(joinNode(upgraded, 'x', { token: unscoped.token }));
      expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(err.details).toBe(
        `join token ${record.id} was made before tokens named their node, and is no longer accepted; create a new one with \`weft token create --node NAME\``,
      );
    } finally {
      await upgraded.stop({ removeDataDir: true });
    }
  });
});
