// Key pairs made on the host (ECDSA P-256, WebCrypto) for the control plane's CA and local
// credentials; the agent's keys and CSRs are key-and-csr.ts's. A private key never leaves the
// machine that made it; the CA only ever sees the CSR.
import type { webcrypto } from 'node:crypto';
import { ecdsaP256, subtle, x509 } from './x509.js';

type CryptoKeyPair = webcrypto.CryptoKeyPair;
type CryptoKey = webcrypto.CryptoKey;

export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return (await subtle.generateKey(ecdsaP256, true, ['sign', 'verify'])) as CryptoKeyPair;
}

export async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  const der = await subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

// The CSR (the same for the agent, which must not load @peculiar/x509): key-and-csr.ts.
export { createKeyAndCsr, type KeyAndCsr } from './key-and-csr.js';
