// A throwaway PKI for tests: a self-signed ECDSA P-256 CA per trust domain and leaf
// X.509-SVIDs (one spiffe:// URI SAN) signed by it, all as PEM text, made in memory.
import { webcrypto } from 'node:crypto';
import { ecdsaP256, x509 } from '../../src/api/x509.js';

type CryptoKey = webcrypto.CryptoKey;

export interface TestCa {
  trustDomain: string;
  /** The CA certificate: what peers put in their trust bundle. */
  certPem: string;
  keyPem: string;
  /** For issueLeaf: the CA's signing key and parsed certificate. */
  signingKey: CryptoKey;
  cert: x509.X509Certificate;
}

export interface TestLeaf {
  spiffeId: string;
  /** The leaf certificate (the CA is a root, so the chain is the leaf alone). */
  certPem: string;
  keyPem: string;
  /** Hex, as @peculiar/x509 prints it. */
  serialNumber: string;
  notAfter: Date;
}

export interface LeafOptions {
  /** Lifetime from now; default one hour. */
  ttlMs?: number;
  /** Extra URI SANs after the SPIFFE ID (to build deliberately malformed SVIDs). */
  extraUris?: string[];
  /** No URI SAN at all (a DNS SAN instead): a certificate that is not an SVID. */
  noUri?: boolean;
}

const subtle = webcrypto.subtle;

async function newKeys(): Promise<webcrypto.CryptoKeyPair> {
  return (await subtle.generateKey(ecdsaP256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

async function keyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

function randomSerial(): string {
  // Positive 16-byte serial: the top bit cleared so DER does not read it as negative.
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return Buffer.from(bytes).toString('hex');
}

/** A new self-signed CA for `trustDomain`, valid for a day. */
export async function createTestCa(trustDomain = 'weft.local'): Promise<TestCa> {
  const keys = await newKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=test CA ${trustDomain}`,
    keys,
    signingAlgorithm: ecdsaP256,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 86_400_000),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    trustDomain,
    certPem: `${cert.toString('pem')}\n`,
    keyPem: await keyPem(keys.privateKey),
    signingKey: keys.privateKey,
    cert,
  };
}

/** A leaf SVID for `spiffeId` signed by `ca`, usable as TLS client and server certificate. */
export async function issueLeaf(
  ca: TestCa,
  spiffeId: string,
  options: LeafOptions = {},
): Promise<TestLeaf> {
  const keys = await newKeys();
  const now = Date.now();
  const notAfter = new Date(now + (options.ttlMs ?? 3_600_000));
  const names: x509.JsonGeneralName[] = options.noUri
    ? [{ type: 'dns', value: 'not-an-svid.example' }]
    : [{ type: 'url', value: spiffeId }];
  for (const uri of options.extraUris ?? []) names.push({ type: 'url', value: uri });
  const serialNumber = randomSerial();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber,
    subject: '',
    issuer: ca.cert.subject,
    notBefore: new Date(now - 60_000),
    notAfter,
    publicKey: keys.publicKey,
    signingKey: ca.signingKey,
    signingAlgorithm: ecdsaP256,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      // An empty subject makes the SAN the only name, so RFC 5280 wants it critical.
      new x509.SubjectAlternativeNameExtension(names, true),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert.publicKey),
    ],
  });
  return {
    spiffeId,
    certPem: `${cert.toString('pem')}\n`,
    keyPem: await keyPem(keys.privateKey),
    serialNumber: cert.serialNumber,
    notAfter,
  };
}
