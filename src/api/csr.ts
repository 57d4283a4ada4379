// Key pairs and PKCS#10 CSRs made on the host (ECDSA P-256, WebCrypto): the private key never
// leaves the machine that made it; the CA only ever sees the CSR.
import type { webcrypto } from 'node:crypto';
import { ecdsaP256, subtle, x509 } from './x509.js';

type CryptoKeyPair = webcrypto.CryptoKeyPair;
type CryptoKey = webcrypto.CryptoKey;

export interface KeyAndCsr {
  /** PKCS#8 PEM ("BEGIN PRIVATE KEY"); write it 0600. */
  keyPem: string;
  csrPem: string;
}

export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return (await subtle.generateKey(ecdsaP256, true, ['sign', 'verify'])) as CryptoKeyPair;
}

export async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  const der = await subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

/** A CSR whose only SAN is the URI `spiffeId`, signed by `keys`. */
export async function createCsr(spiffeId: string, keys: CryptoKeyPair): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: ecdsaP256,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }])],
  });
  return csr.toString('pem');
}

/** A fresh key pair and a CSR for `spiffeId`. */
export async function createKeyAndCsr(spiffeId: string): Promise<KeyAndCsr> {
  const keys = await generateKeyPair();
  return {
    keyPem: await exportPrivateKeyPem(keys.privateKey),
    csrPem: await createCsr(spiffeId, keys),
  };
}
