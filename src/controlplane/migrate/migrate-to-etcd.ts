// `weft controlplane migrate`: copies an embedded (file) store's contents (resources, nodes,
// tokens, virtual IPs, workloads with their leases) and its CA into etcd, the CA key sealed
// under the KEK. All or nothing: a marker is written first and completed last, in the same
// transaction as the CA, so a run that failed half-way is redone by the next run and no
// replica starts on it (load-ca.ts). The file store is only read, under its directory lock,
// so a running file-store control plane is refused.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WeftError } from '../../errors.js';
import { CertificateAuthority } from '../ca/certificate-authority.js';
import { readKekFile } from '../ca/kek-file.js';
import type { CaRecord } from '../ca/load-ca.js';
import { sealCaKey } from '../ca/sealed-ca-key.js';
import type { NodeRecord } from '../identity/node-record.js';
import { EtcdStore, type EtcdStoreOptions } from '../store/etcd-store.js';
import { FileStore } from '../store/file-store.js';
import { CA_KEY, CA_SEALED_KEY, MIGRATION_KEY, NODES_PREFIX } from '../store/keys.js';
import type { Store, StoreEntry, StoreOp } from '../store/store.js';
import { type MigrationMarker, planMigrationTarget } from './migration-marker.js';

/** etcd refuses a transaction of more than 128 operations by default (--max-txn-ops). */
const OPS_PER_TXN = 100;

export interface MigrateOptions {
  /** The file-store control plane's data directory. */
  from: string;
  /** The etcd to write to; prefix as validated by the control plane config ("/weft/"). */
  etcd: EtcdStoreOptions & { prefix: string };
  kekFile: string;
  /** The CA files when the control plane used `ca:` files rather than its data directory's. */
  ca?: { certFile: string; keyFile: string };
  overwrite: boolean;
  /** Progress, one line at a time. */
  say?: (line: string) => void;
}

export interface MigrateResult {
  keys: number;
  leases: number;
  caPin: string;
  fileStoreRevision: number;
  /** Why the prefix was cleared first, if it was. */
  cleared?: 'unfinished' | 'overwrite';
}

function readFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new WeftError(
      'WEFT_E_CONFIG',
      `cannot read the ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? err}${
        what.startsWith('CA')
          ? ' (a control plane run with `ca:` files: give --ca-cert and --ca-key)'
          : ''
      }`,
    );
  }
}

async function openSource(from: string): Promise<FileStore> {
  const dir = join(from, 'store');
  if (!existsSync(join(dir, 'state.json')))
    throw new WeftError(
      'WEFT_E_USAGE',
      `--from ${from}: no embedded store there (${dir}/state.json): give the data directory of the control plane that ran on the file store (default /var/lib/weft-cp)`,
    );
  try {
    return await FileStore.open({ dir });
  } catch (err) {
    throw new WeftError(
      'WEFT_E_STORE',
      `cannot read the embedded store: ${(err as Error).message} (migrate copies a store that nobody writes: systemctl stop weft-controlplane)`,
    );
  }
}

/** Deletes every key under the prefix, a batch per transaction. */
async function clear(target: Store): Promise<void> {
  const { entries } = await target.list('/');
  for (let i = 0; i < entries.length; i += OPS_PER_TXN) {
    const ops: StoreOp[] = entries
      .slice(i, i + OPS_PER_TXN)
      .map((e) => ({ type: 'delete', key: e.key }));
    await target.txn({ ops });
  }
}

/** The file store's leases, granted anew in etcd with the same TTL: old id -> new id. */
async function copyLeases(
  source: Store,
  target: Store,
  entries: StoreEntry[],
): Promise<Map<string, string>> {
  const ids = new Set<string>();
  for (const e of entries) {
    if (e.lease !== undefined) ids.add(e.lease);
    const nodeLease = e.key.startsWith(NODES_PREFIX) ? (e.value as NodeRecord).lease : undefined;
    if (nodeLease !== undefined) ids.add(nodeLease);
  }
  const map = new Map<string, string>();
  for (const id of ids) {
    const left = await source.leaseTimeToLive(id);
    if (left !== undefined) map.set(id, await target.grantLease(left.ttlMs));
  }
  return map;
}

/** An entry as it is written to etcd: leases renamed (a node whose lease is gone gets none). */
function copiedOp(e: StoreEntry, leases: Map<string, string>): StoreOp {
  let value = e.value;
  if (e.key.startsWith(NODES_PREFIX)) {
    const { lease, ...rest } = e.value as NodeRecord;
    const mapped = lease === undefined ? undefined : leases.get(lease);
    value = mapped === undefined ? rest : { ...rest, lease: mapped };
  }
  const lease = e.lease === undefined ? undefined : leases.get(e.lease);
  return { type: 'put', key: e.key, value, lease };
}

export async function migrateToEtcd(o: MigrateOptions): Promise<MigrateResult> {
  const say = o.say ?? (() => {});
  const kek = await readKekFile(o.kekFile);
  const source = await openSource(o.from);
  let target: EtcdStore | undefined;
  try {
    const { entries, revision: fileStoreRevision } = await source.list('/');
    const caRecord = entries.find((e) => e.key === CA_KEY)?.value as CaRecord | undefined;
    const certFile = o.ca?.certFile ?? join(o.from, 'ca.crt');
    const keyFile = o.ca?.keyFile ?? join(o.from, 'ca.key');
    const keyPem = readFile(keyFile, 'CA key');
    const ca = await CertificateAuthority.fromPem(
      readFile(certFile, 'CA certificate'),
      keyPem,
      certFile,
    );
    if (caRecord !== undefined && caRecord.pin !== ca.pin)
      throw new WeftError(
        'WEFT_E_CONFIG',
        `${certFile} is a CA of pin ${ca.pin}, but the embedded store records the control plane's CA as pin ${caRecord.pin}: give the CA this control plane signs with (--ca-cert, --ca-key)`,
      );

    target = await EtcdStore.open(o.etcd);
    const there = await target.list('/');
    const marker = (await target.get<MigrationMarker>(MIGRATION_KEY))?.value;
    const plan = planMigrationTarget({
      keys: there.entries.length,
      marker,
      overwrite: o.overwrite,
    });
    const where = `etcd prefix ${o.etcd.prefix}`;
    if (plan.kind === 'refuse')
      throw new WeftError(
        'WEFT_E_CONFLICT',
        plan.why === 'migrated-already'
          ? `${where} holds a finished migration from ${marker?.from} (${marker?.finishedAt}): nothing to do. To migrate again over it, stop every replica and add --overwrite`
          : `${where} already holds ${there.entries.length} keys (another control plane's state?): migrate writes only to an empty prefix. Give another --etcd-prefix, or add --overwrite to delete what is there first (stop every replica on it)`,
      );
    if (plan.kind === 'clear-and-write') {
      say(
        plan.why === 'unfinished'
          ? `${where} holds an unfinished migration from ${marker?.from}: starting over`
          : `--overwrite: deleting the ${there.entries.length} keys under ${where}`,
      );
      await clear(target);
    }

    const startedAt = new Date().toISOString();
    const begun = await target.put(
      MIGRATION_KEY,
      {
        state: 'in-progress',
        from: o.from,
        startedAt,
        fileStoreRevision,
      } satisfies MigrationMarker,
      { prevModRevision: 0 },
    );
    if (!begun.succeeded)
      throw new WeftError(
        'WEFT_E_CONFLICT',
        `another migrate is writing to ${where}: let it finish`,
      );
    // Every later transaction holds only while the marker is still ours.
    const ours = [{ key: MIGRATION_KEY, modRevision: begun.revision }];

    const copied = entries.filter(
      (e) => e.key !== CA_KEY && e.key !== CA_SEALED_KEY && e.key !== MIGRATION_KEY,
    );
    const leases = await copyLeases(source, target, copied);
    let last = begun.revision;
    for (let i = 0; i < copied.length; i += OPS_PER_TXN) {
      const ops = copied.slice(i, i + OPS_PER_TXN).map((e) => copiedOp(e, leases));
      const txn = await target.txn({ compares: ours, ops });
      if (!txn.succeeded)
        throw new WeftError(
          'WEFT_E_CONFLICT',
          `the migration marker in ${where} changed under this run: another migrate? Run it again once alone`,
        );
      last = txn.revision;
      say(`copied ${Math.min(i + OPS_PER_TXN, copied.length)} of ${copied.length} keys`);
    }

    const record: CaRecord = caRecord ?? {
      pin: ca.pin,
      trustBundlePem: ca.trustBundlePem,
      source: 'generated',
      since: startedAt,
    };
    const done: MigrationMarker = {
      state: 'done',
      from: o.from,
      startedAt,
      fileStoreRevision,
      historyAfter: Math.max(fileStoreRevision + 1, last + 1),
      finishedAt: new Date().toISOString(),
    };
    const finished = await target.txn({
      compares: ours,
      ops: [
        { type: 'put', key: CA_KEY, value: record },
        {
          type: 'put',
          key: CA_SEALED_KEY,
          value: sealCaKey(keyPem, kek, {
            prefix: o.etcd.prefix,
            pin: ca.pin,
            trustBundlePem: record.trustBundlePem,
          }),
        },
        { type: 'put', key: MIGRATION_KEY, value: done },
      ],
    });
    if (!finished.succeeded)
      throw new WeftError(
        'WEFT_E_CONFLICT',
        `the migration marker in ${where} changed under this run: another migrate? Run it again once alone`,
      );
    return {
      keys: copied.length,
      leases: leases.size,
      caPin: ca.pin,
      fileStoreRevision,
      cleared: plan.kind === 'clear-and-write' ? plan.why : undefined,
    };
  } finally {
    await target?.close();
    await source.close();
  }
}
