// What the agent keeps in its data directory: the directory 0700, keys and certificates 0600,
// the last-known-good snapshot written atomically and validated again when read back.
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createKeyAndCsr, generateKeyPair } from '../../src/api/csr.js';
import { ecdsaP256, x509 } from '../../src/api/x509.js';
import { type Identity, IdentityStore } from '../../src/controlplane-client/identity-store.js';
import { certInfo } from '../../src/controlplane-client/pki.js';
import { snapshotRules } from '../../src/controlplane-client/resource-rules.js';
import { applyDelta } from '../../src/controlplane-client/snapshot.js';
import { SnapshotCache } from '../../src/controlplane-client/snapshot-cache.js';

let dir: string;
beforeEach(async () => {
  dir = join(await mkdtemp(join(tmpdir(), 'weft-agent-test-')), 'data');
});
afterEach(async () => {
  await rm(join(dir, '..'), { recursive: true, force: true });
});

/** A CA, and a leaf for spiffeId signed by it from a key made like the agent makes keys. */
async function issue(spiffeId: string): Promise<{ identity: Identity; caPem: string }> {
  const caKeys = await generateKeyPair();
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=ca',
    keys: caKeys,
    signingAlgorithm: ecdsaP256,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  const { keyPem, csrPem } = await createKeyAndCsr(spiffeId);
  const csr = new x509.Pkcs10CertificateRequest(csrPem);
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: '0abc',
    subject: 'CN=leaf',
    issuer: ca.subject,
    publicKey: csr.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: ecdsaP256,
    notBefore: new Date(Date.now() - 1_000),
    notAfter: new Date(Date.now() + 60_000),
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }])],
  });
  const certPem = leaf.toString('pem');
  return {
    identity: { spiffeId, keyPem, certPem, info: certInfo(certPem) },
    caPem: ca.toString('pem'),
  };
}

const mode = async (path: string) => (await stat(path)).mode & 0o777;

describe('IdentityStore', () => {
  it('keeps the directory 0700 and every key and certificate 0600, and reads them back', async () => {
    const store = new IdentityStore(dir);
    await store.init();
    const node = await issue('spiffe://weft.local/node/a');
    const svc = await issue('spiffe://weft.local/svc/echo');
    const record = {
      hostname: 'a',
      trustDomain: 'weft.local',
      spiffeId: node.identity.spiffeId,
      controlPlane: '127.0.0.1:1',
    };
    await store.saveNode(record, node.identity, node.caPem);
    await store.saveWorkload('echo', svc.identity);

    expect(await mode(dir)).toBe(0o700);
    for (const f of ['node.pem', 'node.json', 'trust-bundle.pem', 'workloads/echo.pem']) {
      expect(await mode(join(dir, f)), f).toBe(0o600);
    }
    const again = new IdentityStore(dir);
    const loaded = await again.loadNode();
    expect(loaded?.record).toEqual(record);
    expect(loaded?.identity.spiffeId).toBe('spiffe://weft.local/node/a');
    expect(loaded?.identity.info.serial).toBe('0abc');
    const workloads = await again.loadWorkloads();
    expect([...workloads.keys()]).toEqual(['echo']);
    expect(workloads.get('echo')?.spiffeId).toBe('spiffe://weft.local/svc/echo');
    // Temp files of the atomic writes never stay behind.
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('treats a key that does not match its certificate as absent, so it gets re-issued', async () => {
    const store = new IdentityStore(dir);
    await store.init();
    const a = await issue('spiffe://weft.local/svc/echo');
    const b = await issue('spiffe://weft.local/svc/echo');
    await store.saveWorkload('echo', { ...a.identity, keyPem: b.identity.keyPem });
    expect((await store.loadWorkloads()).size).toBe(0);
  });
});

describe('SnapshotCache', () => {
  it('round-trips an accepted snapshot, written 0600', async () => {
    const { caPem } = await issue('spiffe://weft.local/controlplane');
    await new IdentityStore(dir).init();
    const cache = new SnapshotCache(dir);
    const json = JSON.stringify({
      apiVersion: 'weft/v1',
      kind: 'Service',
      metadata: { name: 'echo' },
      spec: { ports: [{ port: 80 }] },
      status: { vip: '240.240.0.9' },
    });
    const r = applyDelta(
      undefined,
      {
        version: 12,
        baseVersion: 0,
        full: true,
        upserts: [{ kind: 'Service', name: 'echo', revision: 3, json }],
        removals: [],
        trustBundlePem: caPem,
      },
      snapshotRules,
    );
    if (!r.ok) throw new Error(r.reason);
    await cache.save(r.snapshot, 1_700_000_000_000);
    expect(await mode(cache.path)).toBe(0o600);
    const loaded = await cache.load(snapshotRules);
    if (!loaded || 'error' in loaded) throw new Error(`not loaded: ${JSON.stringify(loaded)}`);
    expect(loaded.snapshot.version).toBe(12);
    expect(loaded.acceptedUnixMs).toBe(1_700_000_000_000);
    expect(loaded.snapshot.resources.get('Service/echo')?.revision).toBe(3);
  });

  it('writes a large snapshot in pieces as the same JSON, and reads it back', async () => {
    const { caPem } = await issue('spiffe://weft.local/controlplane');
    await new IdentityStore(dir).init();
    const cache = new SnapshotCache(dir);
    const upserts = Array.from({ length: 2_000 }, (_, i) => ({
      kind: 'Workload',
      name: `n${i}-web-8080`,
      revision: i + 1,
      json: JSON.stringify({
        apiVersion: 'weft/v1',
        kind: 'Workload',
        metadata: { name: `n${i}-web-8080` },
        spec: { service: 'web', node: `n${i}`, address: `10.0.${i >> 8}.${i & 255}`, port: 8080 },
      }),
    }));
    const r = applyDelta(
      undefined,
      { version: 7, baseVersion: 0, full: true, upserts, removals: [], trustBundlePem: caPem },
      snapshotRules,
    );
    if (!r.ok) throw new Error(r.reason);
    await cache.save(r.snapshot, 1_700_000_000_000);
    const text = await readFile(cache.path, 'utf8');
    expect(text.length).toBeGreaterThan(4 * 64 * 1024); // several pieces
    expect(text).toBe(
      JSON.stringify({
        format: 1,
        version: 7,
        trustBundlePem: caPem,
        acceptedUnixMs: 1_700_000_000_000,
        resources: upserts,
      }),
    );
    const loaded = await cache.load(snapshotRules);
    if (!loaded || 'error' in loaded) throw new Error(`not loaded: ${JSON.stringify(loaded)}`);
    expect(loaded.snapshot.resources.size).toBe(2_000);
  });

  it('reports a damaged cache instead of serving it', async () => {
    await new IdentityStore(dir).init();
    const cache = new SnapshotCache(dir);
    expect(await cache.load(snapshotRules)).toBeUndefined();
    await writeFile(cache.path, '{"format":1,"version":3,"trustBundlePem":"","resources":[');
    expect(await cache.load(snapshotRules)).toMatchObject({
      error: expect.stringMatching(/not valid JSON/),
    });
    await writeFile(
      cache.path,
      JSON.stringify({
        format: 1,
        version: 3,
        trustBundlePem: '',
        acceptedUnixMs: 1,
        resources: [],
      }),
    );
    expect(await cache.load(snapshotRules)).toMatchObject({
      error: expect.stringMatching(/does not validate: .*trust bundle/),
    });
  });
});
