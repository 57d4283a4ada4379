// The CA key as etcd keeps it: AES-256-GCM under the KEK, with the store prefix, the CA's pin
// and a hash of the whole trust bundle as associated data, so that a sealed key moved under
// another prefix, paired with another CA certificate, or beside a trust bundle with a
// certificate added (which agents would then trust) does not open. Pure functions; load-ca.ts
// does the store I/O.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { WeftError } from '../../errors.js';
import type { Kek } from './kek-file.js';

export interface SealedCaKey {
  alg: 'A256GCM';
  /** Which KEK sealed it (kekId): tells "wrong KEK file" apart from "damaged record". */
  kekId: string;
  /** The pin of the CA whose key this is. */
  pin: string;
  iv: string;
  ciphertext: string;
  tag: string;
}

/** GCM's whole tag. */
const TAG_BYTES = 16;

function associatedData(prefix: string, pin: string, trustBundlePem: string): Buffer {
  const bundle = createHash('sha256').update(trustBundlePem).digest('hex');
  return Buffer.from(`weft ca key v2\0${prefix}\0${pin}\0${bundle}`, 'utf8');
}

/** The CA of `pin` whose trust bundle (`<prefix>ca`'s trustBundlePem) is `trustBundlePem`. */
export interface SealedFor {
  prefix: string;
  pin: string;
  trustBundlePem: string;
}

export function sealCaKey(keyPem: string, kek: Kek, f: SealedFor): SealedCaKey {
  const { prefix, pin } = f;
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', kek.key, iv);
  cipher.setAAD(associatedData(prefix, pin, f.trustBundlePem));
  const ciphertext = Buffer.concat([cipher.update(keyPem, 'utf8'), cipher.final()]);
  return {
    alg: 'A256GCM',
    kekId: kek.id,
    pin,
    iv: iv.toString('base64'),
    ciphertext: ciphertext.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
  };
}

/** The CA key PEM, or a WEFT_E_CONFIG naming the KEK file and what to do. */
export function openCaKey(
  sealed: SealedCaKey,
  kek: Kek,
  prefix: string,
  trustBundlePem: string,
): string {
  if (sealed.kekId !== kek.id)
    throw new WeftError(
      'WEFT_E_CONFIG',
      `caKekFile ${kek.file} is not the key-encryption key that sealed the CA key in etcd (${prefix}ca-key was sealed by KEK ${sealed.kekId}, this file is KEK ${kek.id}): give this replica the same KEK file as the other replicas (copy it, mode 0600)`,
    );
  try {
    // The tag's length is fixed: Node would take a tag cut short (down to 4 bytes), which a
    // writer to etcd could forge far more easily than a whole one.
    const tag = Buffer.from(sealed.tag, 'base64');
    if (tag.length !== TAG_BYTES) throw new Error(`a ${tag.length}-byte tag`);
    const decipher = createDecipheriv('aes-256-gcm', kek.key, Buffer.from(sealed.iv, 'base64'), {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(associatedData(prefix, sealed.pin, trustBundlePem));
    decipher.setAuthTag(tag);
    const plain = Buffer.concat([
      decipher.update(Buffer.from(sealed.ciphertext, 'base64')),
      decipher.final(),
    ]);
    return plain.toString('utf8');
  } catch {
    throw new WeftError(
      'WEFT_E_CONFIG',
      `the CA key in etcd (${prefix}ca-key) does not open with ${kek.file} although the KEK ids match: it, or the CA record beside it (${prefix}ca), was altered or copied from another prefix; restore both from an etcd backup`,
    );
  }
}
