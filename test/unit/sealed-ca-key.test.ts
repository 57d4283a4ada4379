// The CA key as etcd keeps it (src/controlplane/ca/sealed-ca-key.ts): it opens only with the
// KEK that sealed it, under the prefix and pin it was sealed for, with its whole tag.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Kek } from '../../src/controlplane/ca/kek-file.js';
import { openCaKey, sealCaKey } from '../../src/controlplane/ca/sealed-ca-key.js';

const kek = (id: string): Kek => ({ file: `/etc/weft/${id}`, key: randomBytes(32), id });
const KEY_PEM = '-----BEGIN PRIVATE KEY-----\nnot a real key\n-----END PRIVATE KEY-----\n';
const BUNDLE = '-----BEGIN CERTIFICATE-----\nthe CA\n-----END CERTIFICATE-----\n';
const FOR = { prefix: '/weft/', pin: 'pin1', trustBundlePem: BUNDLE };

describe('the sealed CA key', () => {
  it('opens with its KEK, prefix and pin, and holds no key in clear', () => {
    const k = kek('a');
    const sealed = sealCaKey(KEY_PEM, k, FOR);
    expect(JSON.stringify(sealed)).not.toContain('PRIVATE KEY');
    expect(openCaKey(sealed, k, '/weft/', BUNDLE)).toBe(KEY_PEM);
  });

  it.each([
    ['another prefix', (s: ReturnType<typeof sealCaKey>) => s, '/other/'],
    ['another pin', (s: ReturnType<typeof sealCaKey>) => ({ ...s, pin: 'pin2' }), '/weft/'],
    [
      'a certificate added to the trust bundle',
      (s: ReturnType<typeof sealCaKey>) => s,
      '/weft/',
      `${BUNDLE}${BUNDLE}`,
    ],
    [
      'a tag cut to 4 bytes',
      (s: ReturnType<typeof sealCaKey>) => ({
        ...s,
        tag: Buffer.from(s.tag, 'base64').subarray(0, 4).toString('base64'),
      }),
      '/weft/',
    ],
    [
      'a changed ciphertext',
      (s: ReturnType<typeof sealCaKey>) => {
        const c = Buffer.from(s.ciphertext, 'base64');
        c[0] = (c[0] as number) ^ 1;
        return { ...s, ciphertext: c.toString('base64') };
      },
      '/weft/',
    ],
  ])('does not open with %s', (_what, alter, prefix, bundle = BUNDLE) => {
    const k = kek('a');
    const sealed = alter(sealCaKey(KEY_PEM, k, FOR));
    expect(() => openCaKey(sealed, k, prefix, bundle)).toThrow(/does not open/);
  });

  it('names the KEK file when another KEK sealed it', () => {
    const sealed = sealCaKey(KEY_PEM, kek('a'), FOR);
    expect(() => openCaKey(sealed, kek('b'), '/weft/', BUNDLE)).toThrow(
      /\/etc\/weft\/b is not the key-encryption key/,
    );
  });
});
