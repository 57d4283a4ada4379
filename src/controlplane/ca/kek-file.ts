// The key-encryption key (KEK) of a control plane on etcd: 32 random bytes in a file that only
// its owner may read. It seals the CA key kept in etcd (sealed-ca-key.ts), so that etcd, its
// backups and anyone holding an etcd client certificate never hold a usable CA key.
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { WeftError } from '../../errors.js';

export const KEK_BYTES = 32;

export interface Kek {
  /** The file it was read from (for messages). */
  file: string;
  key: Buffer;
  /** Names the key without revealing it: a wrong file is told apart from a tampered record. */
  id: string;
}

/** A short name of a KEK: sha256 over a label and the key (not the key's own hash). */
export function kekId(key: Buffer): string {
  return createHash('sha256').update('weft ca kek id\0').update(key).digest('hex').slice(0, 16);
}

const HOW_TO_MAKE = `make one with: umask 077; head -c ${KEK_BYTES} /dev/urandom > FILE`;

/** Reads and checks a KEK file: a regular file, mode 0600 or narrower, exactly 32 bytes. */
export async function readKekFile(file: string): Promise<Kek> {
  const bad = (message: string) => new WeftError('WEFT_E_CONFIG', `caKekFile ${file}: ${message}`);
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(file);
  } catch (err) {
    throw bad(
      `cannot read it (${(err as NodeJS.ErrnoException).code ?? err}): give every replica the same key-encryption key file (${HOW_TO_MAKE} on the first host, then copy it)`,
    );
  }
  if (!info.isFile()) throw bad('is not a regular file');
  if ((info.mode & 0o077) !== 0)
    throw bad(
      `group or others may access it (mode ${(info.mode & 0o777).toString(8).padStart(4, '0')}): it unlocks the mesh's CA key; run chmod 600 ${file}`,
    );
  const key = await readFile(file);
  if (key.length !== KEK_BYTES)
    throw bad(`holds ${key.length} bytes, not ${KEK_BYTES} random bytes (${HOW_TO_MAKE})`);
  return { file, key, id: kekId(key) };
}
