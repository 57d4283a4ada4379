// Finds the control plane's CA at start (the plan: ca-plan.ts). On the file store: the CA given
// in the config, or the one this control plane created in its data directory (key 0600). On
// etcd with a KEK (caKekFile): the CA key lives in etcd sealed under the KEK, so every replica
// signs with it and no host but the first ever writes it to disk. The store records which CA
// is in use, so that a missing or swapped CA is noticed instead of silently replaced.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { WeftError } from '../../errors.js';
import type { ControlPlaneConfig } from '../config.js';
import { writeFileDurable } from '../files.js';
import type { MigrationMarker } from '../migrate/migration-marker.js';
import { CA_KEY, CA_SEALED_KEY, MIGRATION_KEY } from '../store/keys.js';
import type { Store, StoreEntry } from '../store/store.js';
import { type CaPlan, type CaRefusal, planCa } from './ca-plan.js';
import { CertificateAuthority } from './certificate-authority.js';
import { type Kek, readKekFile } from './kek-file.js';
import { openCaKey, type SealedCaKey, sealCaKey } from './sealed-ca-key.js';

export interface CaRecord {
  pin: string;
  trustBundlePem: string;
  source: 'generated' | 'file';
  certFile?: string;
  since: string;
}

interface LocalCa {
  ca: CertificateAuthority;
  certPem: string;
  keyPem: string;
  record: Omit<CaRecord, 'since'>;
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

/** The CA this host has: the config's `ca:` files, else ca.key/ca.crt in the data directory. */
async function localCa(config: ControlPlaneConfig, dataDir: string): Promise<LocalCa | undefined> {
  const given = config.ca !== undefined;
  const certFile = config.ca?.certFile ?? join(dataDir, 'ca.crt');
  const keyFile = config.ca?.keyFile ?? join(dataDir, 'ca.key');
  if (!given && !(existsSync(keyFile) && existsSync(certFile))) return undefined;
  const certPem = readPem(certFile, 'CA certificate');
  const keyPem = readPem(keyFile, 'CA key');
  const ca = await CertificateAuthority.fromPem(
    certPem,
    keyPem,
    given ? `ca (${certFile})` : certFile,
  );
  const record: Omit<CaRecord, 'since'> = given
    ? { pin: ca.pin, trustBundlePem: ca.trustBundlePem, source: 'file', certFile }
    : { pin: ca.pin, trustBundlePem: ca.trustBundlePem, source: 'generated' };
  return { ca, certPem, keyPem, record };
}

function refusal(
  reason: CaRefusal,
  config: ControlPlaneConfig,
  dataDir: string,
  known: { record?: CaRecord; sealed?: SealedCaKey; localPin?: string },
): WeftError {
  const prefix = config.store.type === 'etcd' ? config.store.prefix : '';
  const pin = known.sealed?.pin ?? known.record?.pin;
  switch (reason) {
    case 'kek-needed':
      return new WeftError(
        'WEFT_E_CONFIG',
        `etcd (${prefix}ca-key) holds the CA key of pin ${pin} sealed by KEK ${known.sealed?.kekId}, and this replica has no key-encryption key: start it with --ca-kek-file FILE (caKekFile in the config), a copy (mode 0600) of the KEK file the other replicas use`,
      );
    case 'ca-missing':
      return new WeftError(
        'WEFT_E_STORE',
        `the CA this control plane created (pin ${pin}) is missing from ${dataDir} (ca.key, ca.crt): restore them from a backup; a new CA would lock every joined agent out`,
      );
    case 'ca-not-here':
      return new WeftError(
        'WEFT_E_CONFIG',
        `etcd already holds a control plane whose CA has pin ${pin}, and ${dataDir} has no CA (ca.key, ca.crt): every replica must sign with that CA. Give every replica the same --ca-kek-file (start the replica that has ca.key and ca.crt with it once: it seals the CA key into etcd), or copy ca.key and ca.crt from the data directory of the replica that created it into ${dataDir} (mode 0600 for ca.key), or give every replica the same \`ca:\` files, then start this one again`,
      );
    case 'no-sealed-key':
      return new WeftError(
        'WEFT_E_CONFIG',
        `etcd records a CA of pin ${pin} but holds no sealed CA key (${prefix}ca-key), and ${dataDir} has no CA (ca.key, ca.crt): start the replica that has that CA's ca.key and ca.crt with this --ca-kek-file once (it seals the key into etcd), or give this replica those files, then start this one again`,
      );
    case 'other-ca':
      return new WeftError(
        'WEFT_E_CONFIG',
        `etcd holds a control plane whose CA has pin ${pin}, but this replica's CA has pin ${known.localPin}: every replica must sign with the same CA. Give this replica the CA of the others (the same --ca-kek-file and no CA files of its own, the same \`ca:\` files, or ca.key and ca.crt copied into ${dataDir}); to replace the CA on purpose, stop every replica and delete the keys ${prefix}ca and ${prefix}ca-key from etcd first`,
      );
  }
}

/** Writes the CA record and its sealed key at once, unless another replica got there first. */
async function storeSealed(
  store: Store,
  recordEntry: StoreEntry<CaRecord> | undefined,
  record: CaRecord,
  sealed: SealedCaKey,
): Promise<boolean> {
  const txn = await store.txn({
    compares: [
      { key: CA_KEY, modRevision: recordEntry?.modRevision ?? 0 },
      { key: CA_SEALED_KEY, modRevision: 0 },
    ],
    ops: [
      { type: 'put', key: CA_KEY, value: record },
      { type: 'put', key: CA_SEALED_KEY, value: sealed },
    ],
  });
  return txn.succeeded;
}

async function carryOut(
  plan: Exclude<CaPlan, { kind: 'refuse' }>,
  config: ControlPlaneConfig,
  dataDir: string,
  store: Store,
  facts: { recordEntry?: StoreEntry<CaRecord>; sealed?: SealedCaKey; local?: LocalCa; kek?: Kek },
  log: Logger,
): Promise<CertificateAuthority | 'raced'> {
  const { recordEntry, sealed, local, kek } = facts;
  const known = recordEntry?.value;
  const prefix = config.store.type === 'etcd' ? config.store.prefix : '';
  const since = new Date().toISOString();
  switch (plan.kind) {
    case 'open-sealed': {
      if (known === undefined || known.pin !== sealed!.pin)
        throw new WeftError(
          'WEFT_E_STORE',
          `etcd holds a sealed CA key (${prefix}ca-key, pin ${sealed!.pin}) but its CA record (${prefix}ca) ${known === undefined ? 'is missing' : `names pin ${known.pin}`}: restore both from an etcd backup`,
        );
      const keyPem = openCaKey(sealed!, kek!, prefix, known.trustBundlePem);
      return CertificateAuthority.fromPem(
        known.trustBundlePem,
        keyPem,
        `the CA in etcd (${prefix}ca)`,
      );
    }
    case 'seal-local':
    case 'create-sealed': {
      const made =
        plan.kind === 'seal-local'
          ? local!
          : await CertificateAuthority.create(config.trustDomain).then((c) => ({
              ca: c.ca,
              keyPem: c.keyPem,
              record: {
                pin: c.ca.pin,
                trustBundlePem: c.ca.trustBundlePem,
                source: 'generated' as const,
              },
            }));
      const record = { ...(known ?? made.record), since: known?.since ?? since };
      const stored = await storeSealed(
        store,
        recordEntry,
        record,
        sealCaKey(made.keyPem, kek!, {
          prefix,
          pin: made.ca.pin,
          trustBundlePem: record.trustBundlePem,
        }),
      );
      if (!stored) return 'raced';
      log.info(
        { pin: made.ca.pin, kek: kek!.id, created: plan.kind === 'create-sealed' },
        'the CA key is sealed in etcd under the KEK: every replica with that KEK signs with this CA',
      );
      return made.ca;
    }
    case 'use-local':
    case 'create-local': {
      let ca: CertificateAuthority;
      let record: Omit<CaRecord, 'since'>;
      if (plan.kind === 'use-local') {
        ({ ca, record } = local!);
      } else {
        const created = await CertificateAuthority.create(config.trustDomain);
        await writeFileDurable(join(dataDir, 'ca.key'), created.keyPem, 0o600);
        await writeFileDurable(join(dataDir, 'ca.crt'), created.certPem, 0o644);
        ca = created.ca;
        record = { pin: ca.pin, trustBundlePem: ca.trustBundlePem, source: 'generated' };
      }
      if (known?.pin !== record.pin || known.trustBundlePem !== record.trustBundlePem) {
        if (known !== undefined && known.pin !== record.pin)
          log.warn(
            { oldPin: known.pin, newPin: record.pin },
            'the CA changed: agents holding certificates from the old CA must join again',
          );
        await store.put(CA_KEY, { ...record, since } satisfies CaRecord);
      }
      return ca;
    }
  }
}

export async function loadCa(
  config: ControlPlaneConfig,
  dataDir: string,
  store: Store,
  log: Logger,
): Promise<CertificateAuthority> {
  if (config.store.type === 'etcd') {
    // The CA is the last thing a migration writes: until then etcd holds part of a state.
    const migration = (await store.get<MigrationMarker>(MIGRATION_KEY))?.value;
    if (migration?.state === 'in-progress')
      throw new WeftError(
        'WEFT_E_STORE',
        `etcd (${config.store.prefix}) holds a migration from ${migration.from} that did not finish (started ${migration.startedAt}): run \`weft controlplane migrate\` again (it starts over), then start the replicas`,
      );
  }
  const kek = config.caKekFile === undefined ? undefined : await readKekFile(config.caKekFile);
  const local = await localCa(config, dataDir);
  // Two replicas starting on an empty etcd race to store the CA: the loser loads the winner's.
  for (let attempt = 0; attempt < 3; attempt++) {
    const recordEntry = await store.get<CaRecord>(CA_KEY);
    const sealed =
      config.store.type === 'etcd'
        ? (await store.get<SealedCaKey>(CA_SEALED_KEY))?.value
        : undefined;
    const plan = planCa({
      store: config.store.type,
      kek: kek !== undefined,
      localPin: local?.ca.pin,
      record: recordEntry?.value,
      sealedPin: sealed?.pin,
    });
    if (plan.kind === 'refuse')
      throw refusal(plan.reason, config, dataDir, {
        record: recordEntry?.value,
        sealed,
        localPin: local?.ca.pin,
      });
    const ca = await carryOut(
      plan,
      config,
      dataDir,
      store,
      { recordEntry, sealed, local, kek },
      log,
    );
    if (ca !== 'raced') return ca;
  }
  throw new WeftError(
    'WEFT_E_STORE',
    'the CA records in etcd kept changing while this replica started: start it again',
  );
}
