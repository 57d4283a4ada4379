// Join and certificates against a real control plane on loopback, with real grpc-js clients
// over real TLS: what is granted, and every refusal with its message, status and metric.
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { caPin } from '../../src/api/ca-pin.js';
import { createKeyAndCsr } from '../../src/api/csr.js';
import { fromGrpcError } from '../../src/api/grpc-errors.js';
import type { SyncResponse } from '../../src/api/messages.js';
import { CONTROL_PLANE_CHANNEL_OPTIONS, loadProto, unary } from '../../src/api/proto.js';
import { nodeSpiffeId, serviceSpiffeId, spiffeIdOfCertificate } from '../../src/api/spiffe.js';
import { controlPlaneCredentials } from '../../src/api/tls.js';
import { establishTrust } from '../../src/controlplane-client/control-plane-trust.js';
import {
  joinNode,
  type NodeCredentials,
  nodeClients,
  startControlPlane,
  type TestControlPlane,
} from '../helpers/controlplane.js';

let cp: TestControlPlane;

beforeAll(async () => {
  cp = await startControlPlane();
});
afterAll(() => cp.stop({ removeDataDir: true }));

/** The gRPC status and message of a call that must fail. */
async function refusal(
  call: Promise<unknown>,
): Promise<{ code: grpc.status; message: string; weftCode: string }> {
  try {
    await call;
  } catch (err) {
    const e = err as grpc.ServiceError;
    return { code: e.code, message: e.details, weftCode: fromGrpcError(err).code };
  }
  throw new Error('the call succeeded but should have been refused');
}

async function join(
  hostname: string,
  token: string,
  spiffeId = nodeSpiffeId(cp.trustDomain, hostname),
) {
  const { csrPem } = await createKeyAndCsr(spiffeId);
  const c = nodeClients(cp);
  try {
    return await unary(c.identity, c.identity.join, {
      token,
      hostname,
      csrPem,
      addresses: ['127.0.0.1'],
    });
  } finally {
    c.close();
  }
}

async function metric(name: string): Promise<string[]> {
  const text = await (await fetch(`${cp.httpUrl}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name));
}

describe('join', () => {
  it('gives a node certificate for spiffe://<td>/node/<host> with a good token', async () => {
    const token = await cp.createToken({ node: 'host-a', ttl: '1h' });
    const res = await join('host-a', token);
    expect(res.spiffeId).toBe('spiffe://weft.local/node/host-a');
    expect(res.trustDomain).toBe('weft.local');
    const cert = new X509Certificate(res.certificatePem);
    expect(spiffeIdOfCertificate(cert)).toBe('spiffe://weft.local/node/host-a');
    expect(cert.verify(new X509Certificate(res.trustBundlePem).publicKey)).toBe(true);
    // Short-lived (24 h by default), valid now despite small clock skew.
    const lifetime = Date.parse(cert.validTo) - Date.now();
    expect(lifetime).toBeGreaterThan(23 * 3_600_000);
    expect(lifetime).toBeLessThanOrEqual(24 * 3_600_000);
    expect(Date.parse(cert.validFrom)).toBeLessThan(Date.now());
  });

  it('lets an agent find the CA from its pin alone', async () => {
    const { caPem } = await establishTrust(cp.grpcAddress, { caPin: cp.caPin });
    expect(caPin(caPem)).toBe(cp.caPin);
    await expect(establishTrust(cp.grpcAddress, { caPin: 'ab'.repeat(32) })).rejects.toMatchObject({
      code: 'WEFT_E_DENIED',
    });
  });

  it('refuses a used token', async () => {
    const token = await cp.createToken({ node: 'host-b' });
    await join('host-b', token);
    const r = await refusal(join('host-c', token));
    expect(r.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(r.weftCode).toBe('WEFT_E_DENIED');
    expect(r.message).toMatch(
      /^join token [0-9a-f]{12} was already used \(by host-b at .*\); tokens are one-time/,
    );
  });

  it('refuses an expired token', async () => {
    const token = await cp.createToken({ node: 'host-d', ttl: '1s' });
    // The control plane judges expiry by Date: move its clock past the TTL instead of waiting
    // (only Date is faked, and it keeps running, so timers and gRPC go on as before).
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    vi.setSystemTime(Date.now() + 1_001);
    const r = await refusal(join('host-d', token)).finally(() => vi.useRealTimers());
    expect(r.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(r.message).toMatch(
      /^join token [0-9a-f]{12} expired at .*; create a new one with `weft token create --node host-d`$/,
    );
  });

  it('refuses an unknown token, and a token with a wrong secret, alike', async () => {
    const token = await cp.createToken({ node: 'host-e' });
    const wrongSecret = `${token.split('.')[0]}.${'A'.repeat(32)}`;
    for (const t of ['000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', wrongSecret]) {
      const r = await refusal(join('host-e', t));
      expect(r.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(r.message).toBe(
        'unknown join token: create one with `weft token create` on the control plane',
      );
    }
    const r = await refusal(join('host-e', 'not-a-token'));
    expect(r.message).toBe(
      'malformed join token: expected <id>.<secret> as printed by `weft token create`',
    );
    // The token was not consumed by the failed attempts.
    expect((await join('host-e', token)).spiffeId).toBe('spiffe://weft.local/node/host-e');
  });

  it('refuses a CSR for another SPIFFE ID, and keeps the token usable', async () => {
    const token = await cp.createToken({ node: 'host-f' });
    const r = await refusal(join('host-f', token, 'spiffe://weft.local/node/someone-else'));
    expect(r.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(r.message).toBe(
      'the CSR asks for spiffe://weft.local/node/someone-else, but this caller may only get spiffe://weft.local/node/host-f',
    );
    expect((await join('host-f', token)).spiffeId).toBe('spiffe://weft.local/node/host-f');
  });

  it('refuses a hostname that is not a DNS label', async () => {
    const r = await refusal(
      join('Host_G', await cp.createToken({ node: 'host-g' }), 'spiffe://weft.local/node/host-g'),
    );
    expect(r.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(r.message).toBe(
      'hostname "Host_G" is not a DNS label (lowercase letters, digits and "-", at most 63)',
    );
  });

  it('lets a host join again with a --replace token and replaces its certificate', async () => {
    const first = await joinNode(cp, 'host-h');
    const second = await joinNode(cp, 'host-h', {
      token: await cp.createToken({ node: 'host-h', replace: true }),
    });
    expect(second.certificatePem).not.toBe(first.certificatePem);
  });

  it('counts refusals by method and reason', async () => {
    const lines = await metric('weft_controlplane_refusals_total');
    expect(lines).toContain(
      'weft_controlplane_refusals_total{method="Join",reason="token_used"} 1',
    );
    expect(lines).toContain(
      'weft_controlplane_refusals_total{method="Join",reason="token_expired"} 1',
    );
    expect(lines).toContain(
      'weft_controlplane_refusals_total{method="Join",reason="spiffe_id_mismatch"} 1',
    );
  });
});

describe('with a node certificate', () => {
  let a: NodeCredentials;
  let b: NodeCredentials;

  beforeAll(async () => {
    // node-a may serve payments too, but runs no workload of it.
    a = await joinNode(cp, 'node-a', { services: ['orders', 'payments'] });
    b = await joinNode(cp, 'node-b', { services: ['payments'] });
    const ca = nodeClients(cp, a);
    await unary(ca.identity, ca.identity.registerWorkloads, {
      workloads: [{ service: 'orders', port: 8080 }],
    });
    ca.close();
    const cb = nodeClients(cp, b);
    await unary(cb.identity, cb.identity.registerWorkloads, {
      workloads: [{ service: 'payments', port: 9090, health: 'healthy' }],
    });
    cb.close();
  });

  it('signs a workload certificate for a service registered on the node', async () => {
    const c = nodeClients(cp, a);
    const { csrPem } = await createKeyAndCsr(serviceSpiffeId(cp.trustDomain, 'orders'));
    const res = await unary(c.identity, c.identity.signWorkload, { service: 'orders', csrPem });
    c.close();
    expect(res.spiffeId).toBe('spiffe://weft.local/svc/orders');
    expect(spiffeIdOfCertificate(res.certificatePem)).toBe('spiffe://weft.local/svc/orders');
    expect(res.notAfterUnixMs).toBe(Date.parse(new X509Certificate(res.certificatePem).validTo));
  });

  it('refuses a workload certificate for a service registered only on another node', async () => {
    const c = nodeClients(cp, a);
    const { csrPem } = await createKeyAndCsr(serviceSpiffeId(cp.trustDomain, 'payments'));
    const r = await refusal(
      unary(c.identity, c.identity.signWorkload, { service: 'payments', csrPem }),
    );
    c.close();
    expect(r.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(r.message).toBe(
      'no workload of service "payments" is registered on node node-a: a node gets certificates only for services it runs (register the workload first)',
    );
  });

  it('refuses a workload CSR whose SPIFFE ID is not the service', async () => {
    const c = nodeClients(cp, a);
    const { csrPem } = await createKeyAndCsr(serviceSpiffeId(cp.trustDomain, 'payments'));
    const r = await refusal(
      unary(c.identity, c.identity.signWorkload, { service: 'orders', csrPem }),
    );
    c.close();
    expect(r.message).toBe(
      'the CSR asks for spiffe://weft.local/svc/payments, but this caller may only get spiffe://weft.local/svc/orders',
    );
  });

  it('renews the node certificate for its own name only', async () => {
    const c = nodeClients(cp, a);
    const good = await createKeyAndCsr(nodeSpiffeId(cp.trustDomain, 'node-a'));
    const res = await unary(c.identity, c.identity.renewNode, { csrPem: good.csrPem });
    expect(res.spiffeId).toBe('spiffe://weft.local/node/node-a');
    const bad = await createKeyAndCsr(nodeSpiffeId(cp.trustDomain, 'node-b'));
    const r = await refusal(unary(c.identity, c.identity.renewNode, { csrPem: bad.csrPem }));
    c.close();
    expect(r.message).toBe(
      'the CSR asks for spiffe://weft.local/node/node-b, but this caller may only get spiffe://weft.local/node/node-a',
    );
  });

  it('refuses an admin call made with a node certificate', async () => {
    const { Admin } = loadProto();
    const admin = new Admin(
      cp.grpcAddress,
      controlPlaneCredentials(
        { caPem: cp.trustBundlePem, keyPem: a.keyPem, certPem: a.certificatePem },
        cp.trustDomain,
      ),
      CONTROL_PLANE_CHANNEL_OPTIONS,
    );
    const r = await refusal(unary(admin, admin.createToken, { ttlSeconds: 60, node: 'x' }));
    admin.close();
    expect(r.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(r.message).toBe(
      'this call needs an admin identity (spiffe://weft.local/admin/...), but the client is spiffe://weft.local/node/node-a',
    );
  });
});

describe('without a node certificate', () => {
  it('refuses the Sync stream', async () => {
    const c = nodeClients(cp);
    const stream = c.sync.stream();
    const outcome = await new Promise<{ err?: grpc.ServiceError; data: SyncResponse[] }>(
      (resolve) => {
        const data: SyncResponse[] = [];
        stream.on('data', (d: SyncResponse) => data.push(d));
        stream.on('error', (err: grpc.ServiceError) => resolve({ err, data }));
        stream.on('end', () => resolve({ data }));
        stream.write({ hello: { version: 0 } });
      },
    );
    c.close();
    expect(outcome.data).toEqual([]);
    expect(outcome.err?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(outcome.err?.details).toBe(
      "this call needs a node certificate: join with a token first (the agent does it when its config has controlPlane.token); no valid client certificate was presented (missing, expired, or not issued by this control plane's CA)",
    );
  });

  it('refuses workload registration and certificates', async () => {
    const c = nodeClients(cp);
    const r1 = await refusal(
      unary(c.identity, c.identity.registerWorkloads, { workloads: [{ service: 'x', port: 1 }] }),
    );
    const { csrPem } = await createKeyAndCsr(serviceSpiffeId(cp.trustDomain, 'orders'));
    const r2 = await refusal(
      unary(c.identity, c.identity.signWorkload, { service: 'orders', csrPem }),
    );
    c.close();
    expect([r1.code, r2.code]).toEqual([grpc.status.UNAUTHENTICATED, grpc.status.UNAUTHENTICATED]);
  });

  it('refuses a client certificate from another CA', async () => {
    const other = await startControlPlane();
    try {
      const stranger = await joinNode(other, 'node-a');
      const c = nodeClients(cp, stranger);
      const r = await refusal(unary(c.identity, c.identity.registerWorkloads, { workloads: [] }));
      c.close();
      expect(r.code).toBe(grpc.status.UNAUTHENTICATED);
    } finally {
      await other.stop({ removeDataDir: true });
    }
  });
});
