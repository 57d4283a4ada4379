// @peculiar/x509, ready to use: the Reflect polyfill it needs is loaded first and its crypto
// provider is Node's WebCrypto. Import x509 from here, never from '@peculiar/x509' directly.
import './reflect-polyfill.js';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

// biome-ignore lint/suspicious/noExplicitAny: x509's Crypto is the DOM type, which Node's matches
x509.cryptoProvider.set(webcrypto as any);

export { x509 };

/** ECDSA P-256 with SHA-256: the only key type weft creates. */
export const ecdsaP256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export const subtle = webcrypto.subtle;
