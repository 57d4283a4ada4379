// Re-seals the CA key kept in etcd under a new KEK (`weft controlplane rotate-kek`): opened
// with the old KEK, sealed with the new one, written only if nobody changed it meanwhile.
// Running replicas hold the CA in memory and go on signing; each replica is restarted on the
// new KEK file afterwards (one still on the old file is refused at start, naming it).
import { WeftError } from '../../errors.js';
import { EtcdStore, type EtcdStoreOptions } from '../store/etcd-store.js';
import { CA_KEY, CA_SEALED_KEY } from '../store/keys.js';
import { readKekFile } from './kek-file.js';
import type { CaRecord } from './load-ca.js';
import { openCaKey, type SealedCaKey, sealCaKey } from './sealed-ca-key.js';

export interface RotateKekOptions {
  etcd: EtcdStoreOptions & { prefix: string };
  oldKekFile: string;
  newKekFile: string;
}

export async function rotateKek(
  o: RotateKekOptions,
): Promise<{ pin: string; from: string; to: string }> {
  const [oldKek, newKek] = [await readKekFile(o.oldKekFile), await readKekFile(o.newKekFile)];
  if (oldKek.id === newKek.id)
    throw new WeftError(
      'WEFT_E_USAGE',
      `${o.newKekFile} holds the same key as ${o.oldKekFile}: make a new one (umask 077; head -c 32 /dev/urandom > FILE)`,
    );
  const store = await EtcdStore.open(o.etcd);
  try {
    const entry = await store.get<SealedCaKey>(CA_SEALED_KEY);
    if (entry === undefined)
      throw new WeftError(
        'WEFT_E_NOT_FOUND',
        `etcd (${o.etcd.prefix}ca-key) holds no sealed CA key: nothing to rotate (start a replica with --ca-kek-file first)`,
      );
    const record = await store.get<CaRecord>(CA_KEY);
    if (record === undefined)
      throw new WeftError(
        'WEFT_E_STORE',
        `etcd holds a sealed CA key (${o.etcd.prefix}ca-key) but no CA record (${o.etcd.prefix}ca): restore both from an etcd backup`,
      );
    const trustBundlePem = record.value.trustBundlePem;
    const keyPem = openCaKey(entry.value, oldKek, o.etcd.prefix, trustBundlePem);
    const resealed = sealCaKey(keyPem, newKek, {
      prefix: o.etcd.prefix,
      pin: entry.value.pin,
      trustBundlePem,
    });
    const txn = await store.put(CA_SEALED_KEY, resealed, { prevModRevision: entry.modRevision });
    if (!txn.succeeded)
      throw new WeftError(
        'WEFT_E_CONFLICT',
        `the sealed CA key in etcd (${o.etcd.prefix}ca-key) changed while it was re-sealed: run rotate-kek again`,
      );
    return { pin: entry.value.pin, from: oldKek.id, to: newKek.id };
  } finally {
    await store.close();
  }
}
