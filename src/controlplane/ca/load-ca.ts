// Finds the control plane's CA at start: the CA given in the config, or the one this control
// plane created in its data directory (created on first start: key 0600). The store records
// which CA is in use, so that a missing or swapped CA is noticed instead of silently replaced.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { WeftError } from '../../errors.js';
import type { ControlPlaneConfig } from '../config.js';
import { writeFileDurable } from '../files.js';
import { CA_KEY } from '../store/keys.js';
import type { Store } from '../store/store.js';
import { CertificateAuthority } from './certificate-authority.js';

export interface CaRecord {
  pin: string;
  trustBundlePem: string;
  source: 'generated' | 'file';
  certFile?: string;
  since: string;
}

function readPem(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new WeftError(
      'WEFT_E_CONFIG',
      `cannot read the ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
}

async function openCa(
  config: ControlPlaneConfig,
  dataDir: string,
  known: CaRecord | undefined,
): Promise<{ ca: CertificateAuthority; record: Omit<CaRecord, 'since'> }> {
  if (config.ca !== undefined) {
    const { certFile, keyFile } = config.ca;
    const ca = await CertificateAuthority.fromPem(
      readPem(certFile, 'CA certificate'),
      readPem(keyFile, 'CA key'),
      `ca (${certFile})`,
    );
    return {
      ca,
      record: { pin: ca.pin, trustBundlePem: ca.trustBundlePem, source: 'file', certFile },
    };
  }
  const certFile = join(dataDir, 'ca.crt');
  const keyFile = join(dataDir, 'ca.key');
  if (existsSync(keyFile) && existsSync(certFile)) {
    const ca = await CertificateAuthority.fromPem(
      readPem(certFile, 'CA certificate'),
      readPem(keyFile, 'CA key'),
      certFile,
    );
    return { ca, record: { pin: ca.pin, trustBundlePem: ca.trustBundlePem, source: 'generated' } };
  }
  if (known !== undefined && config.store.type === 'etcd') {
    // Until the CA is shared through etcd (issue #14, item 3), replicas share it as files.
    throw new WeftError(
      'WEFT_E_CONFIG',
      `etcd already holds a control plane whose CA has pin ${known.pin}, and ${dataDir} has no CA (ca.key, ca.crt): every replica must sign with that CA. Copy ca.key and ca.crt from the data directory of the replica that created it into ${dataDir} (mode 0600 for ca.key), or give every replica the same \`ca:\` files, then start this one again`,
    );
  }
  if (known?.source === 'generated') {
    throw new WeftError(
      'WEFT_E_STORE',
      `the CA this control plane created (pin ${known.pin}) is missing from ${dataDir} (ca.key, ca.crt): restore them from a backup; a new CA would lock every joined agent out`,
    );
  }
  const created = await CertificateAuthority.create(config.trustDomain);
  await writeFileDurable(keyFile, created.keyPem, 0o600);
  await writeFileDurable(certFile, created.certPem, 0o644);
  return {
    ca: created.ca,
    record: { pin: created.ca.pin, trustBundlePem: created.ca.trustBundlePem, source: 'generated' },
  };
}

export async function loadCa(
  config: ControlPlaneConfig,
  dataDir: string,
  store: Store,
  log: Logger,
): Promise<CertificateAuthority> {
  const known = await store.get<CaRecord>(CA_KEY);
  const { ca, record } = await openCa(config, dataDir, known?.value);
  if (
    known === undefined ||
    known.value.pin !== record.pin ||
    known.value.trustBundlePem !== record.trustBundlePem
  ) {
    if (known !== undefined && known.value.pin !== record.pin && config.store.type === 'etcd') {
      // Another replica signs with the recorded CA: two CAs would split the mesh in two.
      throw new WeftError(
        'WEFT_E_CONFIG',
        `etcd holds a control plane whose CA has pin ${known.value.pin}, but this replica's CA has pin ${record.pin}: every replica must sign with the same CA. Give this replica the CA of the others (the same \`ca:\` files, or ca.key and ca.crt copied into ${dataDir}); to replace the CA on purpose, stop every replica and delete the key ${config.store.prefix}ca from etcd first`,
      );
    }
    if (known !== undefined && known.value.pin !== record.pin) {
      log.warn(
        { oldPin: known.value.pin, newPin: record.pin },
        'the CA changed: agents holding certificates from the old CA must join again',
      );
    }
    await store.put(CA_KEY, { ...record, since: new Date().toISOString() } satisfies CaRecord);
  }
  return ca;
}
