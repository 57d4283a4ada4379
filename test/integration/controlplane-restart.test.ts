// Stop the control plane and start it again on the same data directory: nothing it had
// acknowledged is lost (resources, virtual IPs, used tokens, the CA, joined nodes), and agents
// resume where they were.
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, expect, it } from 'vitest';
import { WeftAdminClient } from '../../src/api/admin-client.js';
import { caPin } from '../../src/api/ca-pin.js';
import { createKeyAndCsr } from '../../src/api/csr.js';
import type { SyncResponse } from '../../src/api/messages.js';
import { unary } from '../../src/api/proto.js';
import { nodeSpiffeId } from '../../src/api/spiffe.js';
import {
  joinNode,
  nodeClients,
  startControlPlane,
  type TestControlPlane,
} from '../helpers/controlplane.js';

let cp: TestControlPlane | undefined;
afterAll(() => cp?.stop({ removeDataDir: true }));

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

async function state(current: TestControlPlane) {
  const admin = WeftAdminClient.open({
    server: current.grpcAddress,
    credentialsDir: current.adminCredentials.dir,
  });
  try {
    const services = await admin.get('services');
    const workloads = await admin.get('workloads');
    return {
      services: services.map((s) => s.json),
      workloads: workloads.map((w) => w.json),
      nodes: (await admin.listNodes()).map((n) => n.name),
    };
  } finally {
    admin.close();
  }
}

function firstSyncMessage(
  current: TestControlPlane,
  creds: { keyPem: string; certificatePem: string },
  version: number,
): Promise<SyncResponse> {
  const c = nodeClients(current, creds);
  const stream = c.sync.stream();
  return new Promise<SyncResponse>((resolve, reject) => {
    stream.on('data', resolve);
    stream.on('error', reject);
    stream.write({ hello: { version } });
  }).finally(() => {
    stream.cancel();
    c.close();
  });
}

// The sync view publishes a store change after a short coalescing interval, not inside the write
// that made it: wait until a full snapshot holds the change before taking its version.
async function syncedVersion(
  current: TestControlPlane,
  creds: { keyPem: string; certificatePem: string },
  holds: (kinds: string[]) => boolean,
): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const snapshot = await firstSyncMessage(current, creds, 0);
    if (holds(snapshot.upserts.map((u) => `${u.kind}/${u.name}`))) return snapshot.version;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the sync view never published the change');
}

it('keeps resources, virtual IPs, used tokens, nodes and the CA across a restart', async () => {
  cp = await startControlPlane();
  const admin = WeftAdminClient.open({
    server: cp.grpcAddress,
    credentialsDir: cp.adminCredentials.dir,
  });
  await admin.apply([service('echo'), service('orders')], 'services.yaml');
  admin.close();
  const usedToken = await cp.createToken({ node: 'node-a', services: ['echo'] });
  const node = await joinNode(cp, 'node-a', { token: usedToken });
  const c = nodeClients(cp, node);
  await unary(c.identity, c.identity.registerWorkloads, {
    workloads: [{ service: 'echo', port: 8080, health: 'healthy' }],
  });
  c.close();
  const versionOlder = await syncedVersion(cp, node, (ids) =>
    ids.some((id) => id.startsWith('Workload/')),
  );
  const admin1 = WeftAdminClient.open({
    server: cp.grpcAddress,
    credentialsDir: cp.adminCredentials.dir,
  });
  await admin1.apply([service('later')], 'later.yaml');
  admin1.close();
  const unusedToken = await cp.createToken({ node: 'node-b', ttl: '1h' });
  const before = await state(cp);
  const versionBefore = await syncedVersion(cp, node, (ids) => ids.includes('Service/later'));
  const { dataDir, caPin, trustBundlePem } = cp;
  const adminCert = cp.adminCredentials.certPem;

  await cp.stop();
  cp = await startControlPlane({ dataDir });

  // The same CA: same pin, same bundle; the admin credential and the node certificate still work.
  expect(cp.caPin).toBe(caPin);
  expect(cp.trustBundlePem).toBe(trustBundlePem);
  expect(cp.adminCredentials.certPem).toBe(adminCert);
  // Resources with their virtual IPs, workloads and nodes, unchanged.
  expect(await state(cp)).toEqual(before);
  // An agent holding the last version is current: an empty delta, no snapshot.
  const resumed = await firstSyncMessage(cp, node, versionBefore);
  expect(resumed).toMatchObject({
    full: false,
    baseVersion: versionBefore,
    version: versionBefore,
    upserts: [],
    removals: [],
  });
  // An agent one change behind gets just that change.
  const behind = await firstSyncMessage(cp, node, versionOlder);
  expect(behind.full).toBe(false);
  expect(behind.baseVersion).toBe(versionOlder);
  expect(behind.upserts.map((u) => `${u.kind}/${u.name}`)).toEqual(['Service/later']);

  // The used token stays used; the unused one still works.
  const { csrPem } = await createKeyAndCsr(nodeSpiffeId(cp.trustDomain, 'node-b'));
  const j = nodeClients(cp);
  const used = await unary(j.identity, j.identity.join, {
    token: usedToken,
    hostname: 'node-b',
    csrPem,
  }).catch((e: grpc.ServiceError) => e);
  expect((used as grpc.ServiceError).code).toBe(grpc.status.PERMISSION_DENIED);
  expect((used as grpc.ServiceError).details).toContain('was already used (by node-a');
  const ok = await unary(j.identity, j.identity.join, {
    token: unusedToken,
    hostname: 'node-b',
    csrPem,
  });
  j.close();
  expect(ok.spiffeId).toBe('spiffe://weft.local/node/node-b');

  // A new service never gets a virtual IP already taken.
  const admin2 = WeftAdminClient.open({
    server: cp.grpcAddress,
    credentialsDir: cp.adminCredentials.dir,
  });
  await admin2.apply([service('new')], 'new.yaml');
  const vips = (await admin2.get('svc')).map(
    (s) => (JSON.parse(s.json) as { status: { vip: string } }).status.vip,
  );
  admin2.close();
  expect(new Set(vips).size).toBe(4);
});

it('uses the CA given in its config instead of creating one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-given-ca-'));
  const keyFile = join(dir, 'ca.key');
  const certFile = join(dir, 'ca.crt');
  // An operator's CA made with openssl: a SEC1 "EC PRIVATE KEY", P-256.
  execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyFile]);
  execFileSync('openssl', [
    'req',
    '-x509',
    '-new',
    '-key',
    keyFile,
    '-out',
    certFile,
    '-days',
    '30',
    '-subj',
    '/CN=operator CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const given = await startControlPlane({ config: { ca: { certFile, keyFile } } });
  try {
    const caPem = readFileSync(certFile, 'utf8');
    expect(given.caPin).toBe(caPin(caPem));
    expect(existsSync(join(given.dataDir, 'ca.key'))).toBe(false);
    const node = await joinNode(given, 'node-a');
    expect(
      new X509Certificate(node.certificatePem).verify(new X509Certificate(caPem).publicKey),
    ).toBe(true);
  } finally {
    await given.stop({ removeDataDir: true });
    await rm(dir, { recursive: true, force: true });
  }
});
