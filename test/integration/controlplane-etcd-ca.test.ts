// The CA across control plane replicas on a real etcd (started by this file): the CA key lives
// in etcd sealed under a key-encryption key (KEK) that every replica reads from a file, so the
// replicas sign with one CA while etcd never holds a usable key; a replica without the KEK, or
// with another one, is refused at start with what to do.
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { caPin } from '../../src/api/ca-pin.js';
import { spiffeIdOfCertificate } from '../../src/api/spiffe.js';
import { CertificateAuthority } from '../../src/controlplane/ca/certificate-authority.js';
import { kekId, readKekFile } from '../../src/controlplane/ca/kek-file.js';
import type { CaRecord } from '../../src/controlplane/ca/load-ca.js';
import { openCaKey, type SealedCaKey } from '../../src/controlplane/ca/sealed-ca-key.js';
import {
  joinNode,
  runWeft,
  type StartControlPlaneOptions,
  startControlPlane,
  type TestControlPlane,
} from '../helpers/controlplane.js';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { createTestCa } from '../helpers/test-pki.js';

let etcd: TestEtcd;
let raw: Etcd3;
let dir: string;
let kekFile: string;
let prefixes = 0;
const running: TestControlPlane[] = [];

beforeAll(async () => {
  etcd = await startEtcd();
  raw = new Etcd3({ hosts: etcd.endpoint });
  dir = mkdtempSync(join(tmpdir(), 'weft-kek-test-'));
  kekFile = writeKek('kek', randomBytes(32));
}, 120_000);

afterEach(async () => {
  for (const cp of running.splice(0)) await cp.stop({ removeDataDir: true });
});

afterAll(async () => {
  raw?.close();
  await etcd?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

function writeKek(name: string, bytes: Buffer, mode = 0o600): string {
  const file = join(dir, name);
  writeFileSync(file, bytes, { mode });
  return file;
}

const newPrefix = (): string => `/weft-ca-${process.pid}-${++prefixes}/`;

function replica(
  prefix: string,
  extra: Partial<NonNullable<StartControlPlaneOptions['config']>> = {},
): NonNullable<StartControlPlaneOptions['config']> {
  return {
    store: { type: 'etcd', endpoints: [etcd.endpoint], prefix },
    caKekFile: kekFile,
    ...extra,
  };
}

async function start(options: StartControlPlaneOptions): Promise<TestControlPlane> {
  const cp = await startControlPlane(options);
  running.push(cp);
  return cp;
}

/** Every value under the prefix, as etcd holds it. */
async function everyValue(prefix: string): Promise<Map<string, Buffer>> {
  const all = await raw.getAll().prefix(prefix).buffers();
  return new Map(Object.entries(all));
}

/** The key in every form it could be written in: PEM, DER, the raw scalar; binary, hex, base64. */
function keyForms(keyPem: string): Array<[string, Buffer]> {
  const key = createPrivateKey(keyPem);
  const scalar = Buffer.from(key.export({ format: 'jwk' }).d!, 'base64url');
  const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
  const sec1 = key.export({ type: 'sec1', format: 'der' });
  const forms: Array<[string, Buffer]> = [['PEM marker', Buffer.from('PRIVATE KEY')]];
  for (const [name, bytes] of [
    ['scalar', scalar],
    ['PKCS#8 DER', pkcs8],
    ['SEC1 DER', sec1],
  ] as const) {
    forms.push([name, bytes]);
    forms.push([`${name} hex`, Buffer.from(bytes.toString('hex'))]);
    forms.push([`${name} base64`, Buffer.from(bytes.toString('base64'))]);
    forms.push([`${name} base64url`, Buffer.from(bytes.toString('base64url'))]);
  }
  return forms;
}

/** Which (etcd key, form) pairs hold the key in clear: must be none. */
function keyFound(values: Map<string, Buffer>, keyPem: string): string[] {
  const found: string[] = [];
  for (const [key, value] of values)
    for (const [form, bytes] of keyForms(keyPem))
      if (value.includes(bytes)) found.push(`${key}: ${form}`);
  return found;
}

function verifiesUnder(certPem: string, bundlePem: string): boolean {
  const leaf = new X509Certificate(certPem);
  const ca = new X509Certificate(bundlePem);
  return leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
}

describe('the CA key sealed in etcd under the KEK', () => {
  it('gives replicas started at once on an empty etcd one CA; each issues certificates the others trust', async () => {
    const prefix = newPrefix();
    const [a, b] = await Promise.all([
      start({ config: replica(prefix) }),
      start({ config: replica(prefix) }),
    ]);
    expect(b.caPin).toBe(a.caPin);
    expect(b.trustBundlePem).toBe(a.trustBundlePem);
    // The key is in etcd (sealed) and nowhere on the replicas' disks.
    for (const cp of [a, b]) expect(existsSync(join(cp.dataDir, 'ca.key'))).toBe(false);

    const atA = await joinNode(a, 'node-at-a');
    const atB = await joinNode(b, 'node-at-b');
    for (const node of [atA, atB]) {
      expect(node.caPem).toBe(a.trustBundlePem);
      expect(verifiesUnder(node.certificatePem, a.trustBundlePem)).toBe(true);
    }
    expect(spiffeIdOfCertificate(new X509Certificate(atB.certificatePem))).toBe(
      'spiffe://weft.local/node/node-at-b',
    );

    // A third replica, started after both stopped, loads the CA from etcd alone.
    await a.stop({ removeDataDir: true });
    await b.stop({ removeDataDir: true });
    running.splice(0);
    const c = await start({ config: replica(prefix) });
    expect(c.caPin).toBe(a.caPin);
    const atC = await joinNode(c, 'node-at-c');
    expect(verifiesUnder(atC.certificatePem, a.trustBundlePem)).toBe(true);
  }, 120_000);

  it('leaves no usable key in etcd: no key in clear under the prefix, and the sealed one opens only with the KEK', async () => {
    const prefix = newPrefix();
    const a = await start({ config: replica(prefix) });
    await joinNode(a, 'node-1');
    const values = await everyValue(prefix);
    const sealed = JSON.parse(values.get(`${prefix}ca-key`)!.toString('utf8')) as SealedCaKey;

    // The test opens it with the KEK to learn the key, then looks for it everywhere.
    const kek = await readKekFile(kekFile);
    const keyPem = openCaKey(sealed, kek, prefix, a.trustBundlePem);
    expect(new X509Certificate(a.trustBundlePem).checkPrivateKey(createPrivateKey(keyPem))).toBe(
      true,
    );
    expect(values.size).toBeGreaterThan(2);
    expect(keyFound(values, keyPem)).toEqual([]);
    // The search finds the key where it is (the check can fail).
    expect(keyFound(new Map([['pem', Buffer.from(keyPem)]]), keyPem)).not.toEqual([]);

    // Another KEK does not open it, even one that claims the right id; nor does the right KEK
    // under another prefix (the prefix is authenticated with it).
    const other = { file: 'other', key: randomBytes(32), id: '' };
    other.id = kekId(other.key);
    expect(() => openCaKey(sealed, other, prefix, a.trustBundlePem)).toThrow(
      'other is not the key-encryption key that sealed the CA key in etcd',
    );
    expect(() =>
      openCaKey(sealed, { ...other, id: sealed.kekId }, prefix, a.trustBundlePem),
    ).toThrow('does not open with other although the KEK ids match');
    expect(() => openCaKey(sealed, kek, '/elsewhere/', a.trustBundlePem)).toThrow('does not open');
    // Nor beside a trust bundle with a certificate added: agents would trust that one too.
    const foreign = (await CertificateAuthority.create('elsewhere.test')).certPem;
    expect(() => openCaKey(sealed, kek, prefix, `${a.trustBundlePem}${foreign}`)).toThrow(
      'does not open',
    );
  }, 120_000);

  it('refuses a replica without the KEK, with another KEK, or with a KEK file others may read', async () => {
    const prefix = newPrefix();
    const a = await start({ config: replica(prefix) });
    const none = replica(prefix);
    delete none.caKekFile;
    await expect(startControlPlane({ config: none })).rejects.toThrow(
      `sealed by KEK ${kekId((await readKekFile(kekFile)).key)}, and this replica has no key-encryption key: start it with --ca-kek-file FILE`,
    );
    const wrong = writeKek('wrong-kek', randomBytes(32));
    await expect(
      startControlPlane({ config: replica(prefix, { caKekFile: wrong }) }),
    ).rejects.toThrow(
      `caKekFile ${wrong} is not the key-encryption key that sealed the CA key in etcd`,
    );
    const readable = writeKek('readable-kek', randomBytes(32), 0o644);
    await expect(
      startControlPlane({ config: replica(prefix, { caKekFile: readable }) }),
    ).rejects.toThrow(`caKekFile ${readable}: group or others may access it (mode 0644)`);
    const short = writeKek('short-kek', randomBytes(31));
    await expect(
      startControlPlane({ config: replica(prefix, { caKekFile: short }) }),
    ).rejects.toThrow(`caKekFile ${short}: holds 31 bytes, not 32 random bytes`);
    const missing = join(dir, 'no-such-kek');
    await expect(
      startControlPlane({ config: replica(prefix, { caKekFile: missing }) }),
    ).rejects.toThrow(`caKekFile ${missing}: cannot read it (ENOENT)`);
    // None of them changed what the others sign with.
    const b = await start({ config: replica(prefix) });
    expect(b.caPin).toBe(a.caPin);
  }, 120_000);

  it('seals an imported CA (`ca:` files) on an empty etcd, and refuses a replica with another CA', async () => {
    const prefix = newPrefix();
    const imported = await createTestCa('weft.local');
    const certFile = join(dir, 'imported.crt');
    const keyFile = join(dir, 'imported.key');
    writeFileSync(certFile, imported.certPem);
    writeFileSync(keyFile, imported.keyPem, { mode: 0o600 });
    const a = await start({ config: replica(prefix, { ca: { certFile, keyFile } }) });
    expect(a.caPin).toBe(caPin(imported.certPem));
    const b = await start({ config: replica(prefix) });
    expect(b.caPin).toBe(caPin(imported.certPem));
    expect(keyFound(await everyValue(prefix), imported.keyPem)).toEqual([]);

    const another = await createTestCa('weft.local');
    const otherDir = mkdtempSync(join(tmpdir(), 'weft-cp-replica-'));
    writeFileSync(join(otherDir, 'ca.key'), another.keyPem, { mode: 0o600 });
    writeFileSync(join(otherDir, 'ca.crt'), another.certPem);
    try {
      await expect(
        startControlPlane({ dataDir: otherDir, config: replica(prefix) }),
      ).rejects.toThrow(
        `etcd holds a control plane whose CA has pin ${a.caPin}, but this replica's CA has pin ${caPin(another.certPem)}`,
      );
    } finally {
      await rm(otherDir, { recursive: true, force: true });
    }
  }, 120_000);

  it('re-seals the CA key under a new KEK (rotate-kek): replicas on it sign with the same CA, one on the old KEK is refused', async () => {
    const prefix = newPrefix();
    const a = await start({ config: replica(prefix) });
    const fresh = writeKek('fresh-kek', randomBytes(32));
    const rotate = (current: string, next: string) =>
      runWeft([
        'controlplane',
        'rotate-kek',
        '--etcd-endpoints',
        etcd.endpoint,
        '--etcd-prefix',
        prefix,
        '--ca-kek-file',
        current,
        '--new-kek-file',
        next,
      ]);
    const rotated = await rotate(kekFile, fresh);
    expect(rotated).toMatchObject({ exitCode: 0, stderr: '' });
    expect(rotated.stdout).toContain(
      `the CA key (pin ${a.caPin}) in etcd ${prefix} is sealed under ${fresh}`,
    );
    // The running replica still signs; a new one on the new KEK signs with the same CA.
    await joinNode(a, 'node-during-rotation');
    const b = await start({ config: replica(prefix, { caKekFile: fresh }) });
    expect(b.caPin).toBe(a.caPin);
    await expect(startControlPlane({ config: replica(prefix) })).rejects.toThrow(
      `caKekFile ${kekFile} is not the key-encryption key that sealed the CA key in etcd`,
    );
    // The old KEK no longer opens it, so it cannot rotate it either.
    const again = await rotate(kekFile, writeKek('third-kek', randomBytes(32)));
    expect(again.exitCode).not.toBe(0);
    expect(again.stderr).toContain(`caKekFile ${kekFile} is not the key-encryption key`);
    const sealed = JSON.parse(
      (await everyValue(prefix)).get(`${prefix}ca-key`)!.toString('utf8'),
    ) as SealedCaKey;
    const record = JSON.parse(
      (await everyValue(prefix)).get(`${prefix}ca`)!.toString('utf8'),
    ) as CaRecord;
    const keyPem = openCaKey(sealed, await readKekFile(fresh), prefix, record.trustBundlePem);
    expect(keyFound(await everyValue(prefix), keyPem)).toEqual([]);
  }, 120_000);

  it('seals the CA of replicas that shared it as copied files once one starts with the KEK', async () => {
    const prefix = newPrefix();
    const byHand = replica(prefix);
    delete byHand.caKekFile;
    const first = await start({ config: byHand });
    expect(existsSync(join(first.dataDir, 'ca.key'))).toBe(true);
    // The replica that has the files, restarted with the KEK, seals them into etcd...
    const copy = mkdtempSync(join(tmpdir(), 'weft-cp-replica-'));
    for (const f of ['ca.key', 'ca.crt']) copyFileSync(join(first.dataDir, f), join(copy, f));
    const sealing = await start({ dataDir: copy, config: replica(prefix) });
    expect(sealing.caPin).toBe(first.caPin);
    // ... and from then on a replica needs only the KEK, and one without it is refused.
    const next = await start({ config: replica(prefix) });
    expect(next.caPin).toBe(first.caPin);
    await expect(startControlPlane({ config: byHand })).rejects.toThrow(
      'and this replica has no key-encryption key',
    );
  }, 120_000);
});
