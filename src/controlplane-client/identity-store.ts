// The agent's identities on disk, in its data directory (0700): the node identity, one
// identity per local service, and the trust bundle. Each identity is one 0600 file holding the
// private key and its certificate chain, so that a renewal replaces both at once (a crash
// between two separate writes would leave a key that does not match its certificate).
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { WeftError } from '../errors.js';
import { ensurePrivateDir, writeFileAtomic } from './atomic-file.js';
import { type CertInfo, certInfo, keyMatchesCert } from './pki.js';

export interface Identity {
  spiffeId: string;
  keyPem: string;
  /** Leaf first, then intermediates. */
  certPem: string;
  info: CertInfo;
}

export interface NodeRecord {
  hostname: string;
  trustDomain: string;
  spiffeId: string;
  /** The control plane this node joined; a different address in the config means rejoin. */
  controlPlane: string;
}

const KEY_BLOCK = /-----BEGIN (?:EC |)PRIVATE KEY-----[\s\S]+?-----END (?:EC |)PRIVATE KEY-----\n?/;

export class IdentityStore {
  constructor(readonly dataDir: string) {}

  async init(): Promise<void> {
    await ensurePrivateDir(this.dataDir);
    await ensurePrivateDir(join(this.dataDir, 'workloads'));
  }

  // ---- node

  async saveNode(record: NodeRecord, identity: Identity, trustBundlePem: string): Promise<void> {
    // Order matters for a crash in between: the node record is written last, and a data dir
    // without it is treated as "not joined".
    await this.saveTrustBundle(trustBundlePem);
    await this.saveIdentity(this.nodePath(), identity);
    await writeFileAtomic(this.recordPath(), `${JSON.stringify(record, null, 2)}\n`);
  }

  async loadNode(): Promise<
    { record: NodeRecord; identity: Identity; trustBundlePem: string } | undefined
  > {
    const recordText = await readIfExists(this.recordPath());
    if (recordText === undefined) return undefined;
    const record = JSON.parse(recordText) as NodeRecord;
    const identity = await this.loadIdentity(this.nodePath());
    const trustBundlePem = await readIfExists(this.bundlePath());
    if (identity === undefined || trustBundlePem === undefined) return undefined;
    return { record, identity, trustBundlePem };
  }

  /** Forgets the node identity and the workload identities (the node left the mesh). */
  async forgetNode(): Promise<void> {
    // The record first: without it the directory counts as "not joined" whatever else remains.
    await rm(this.recordPath(), { force: true });
    await rm(this.nodePath(), { force: true });
    await rm(join(this.dataDir, 'workloads'), { recursive: true, force: true });
  }

  saveNodeIdentity(identity: Identity): Promise<void> {
    return this.saveIdentity(this.nodePath(), identity);
  }

  saveTrustBundle(pem: string): Promise<void> {
    return writeFileAtomic(this.bundlePath(), pem);
  }

  // ---- workloads (one identity per local service)

  saveWorkload(service: string, identity: Identity): Promise<void> {
    return this.saveIdentity(this.workloadPath(service), identity);
  }

  async loadWorkloads(): Promise<Map<string, Identity>> {
    const out = new Map<string, Identity>();
    const dir = join(this.dataDir, 'workloads');
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      if (!name.endsWith('.pem')) continue;
      const identity = await this.loadIdentity(join(dir, name));
      if (identity !== undefined) out.set(name.slice(0, -'.pem'.length), identity);
    }
    return out;
  }

  async removeWorkload(service: string): Promise<void> {
    await rm(this.workloadPath(service), { force: true });
  }

  // ---- files

  private async saveIdentity(path: string, identity: Identity): Promise<void> {
    const keyPem = identity.keyPem.endsWith('\n') ? identity.keyPem : `${identity.keyPem}\n`;
    await writeFileAtomic(path, keyPem + identity.certPem);
  }

  /** Reads key + chain; a damaged or mismatched file counts as absent (it will be re-issued). */
  private async loadIdentity(path: string): Promise<Identity | undefined> {
    const text = await readIfExists(path);
    if (text === undefined) return undefined;
    const keyPem = text.match(KEY_BLOCK)?.[0];
    const certPem = text.replace(KEY_BLOCK, '');
    if (keyPem === undefined || !keyMatchesCert(keyPem, certPem)) return undefined;
    const info = certInfo(certPem);
    return { spiffeId: info.spiffeId, keyPem, certPem, info };
  }

  private recordPath(): string {
    return join(this.dataDir, 'node.json');
  }

  private nodePath(): string {
    return join(this.dataDir, 'node.pem');
  }

  bundlePath(): string {
    return join(this.dataDir, 'trust-bundle.pem');
  }

  private workloadPath(service: string): string {
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(service)) {
      throw new WeftError(
        'WEFT_E_INTERNAL',
        `service name ${JSON.stringify(service)} is not a DNS label`,
      );
    }
    return join(this.dataDir, 'workloads', `${service}.pem`);
  }
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new WeftError('WEFT_E_STORE', `cannot read ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
