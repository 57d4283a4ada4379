// The mesh's certificate authority: signs short-lived X.509-SVIDs (one spiffe:// URI SAN) for
// nodes, workloads, the control plane and admins. It holds the CA key in memory as a
// non-extractable WebCrypto key; only creating a new CA ever writes a key (see ./ca-files.ts).

import type { webcrypto } from 'node:crypto';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { caPin, splitPemCertificates } from '../../api/ca-pin.js';
import { exportPrivateKeyPem, generateKeyPair } from '../../api/csr.js';
import { ecdsaP256, subtle, x509 } from '../../api/x509.js';
import { WeftError } from '../../errors.js';

type CryptoKey = webcrypto.CryptoKey;

/** Ten years: the CA outlives every certificate it signs by far. */
const CA_LIFETIME_MS = 10 * 365 * 86_400_000;
/** NotBefore is set this far back (capped at a tenth of the lifetime) for clocks that lag. */
const MAX_BACKDATE_MS = 60_000;

export interface IssueRequest {
  spiffeId: string;
  /** The subject's public key: from a verified CSR, or a key made here. */
  publicKey: x509.PublicKey | CryptoKey;
  ttlMs: number;
  dnsNames?: string[];
  ipAddresses?: string[];
}

export interface IssuedCertificate {
  /** The leaf, then any intermediates between it and the trust bundle. */
  certificatePem: string;
  notBefore: Date;
  notAfter: Date;
  serialNumber: string;
}

interface CurveInfo {
  namedCurve: 'P-256' | 'P-384';
  hash: 'SHA-256' | 'SHA-384';
}

const CURVES: Record<string, CurveInfo> = {
  prime256v1: { namedCurve: 'P-256', hash: 'SHA-256' },
  secp384r1: { namedCurve: 'P-384', hash: 'SHA-384' },
};

export class CertificateAuthority {
  /** The signing CA certificate. */
  readonly certPem: string;
  /** What peers must trust: every certificate of the CA file (roots and intermediates). */
  readonly trustBundlePem: string;
  /** sha256 of the signing CA's public key (see caPin). */
  readonly pin: string;
  private readonly cert: x509.X509Certificate;
  private readonly signingKey: CryptoKey;
  private readonly hash: string;
  /** Certificates between issued leaves and the root, appended to every chain. */
  private readonly intermediatesPem: string;

  private constructor(bundle: string[], signingKey: CryptoKey, hash: string) {
    this.certPem = bundle[0]!;
    this.trustBundlePem = bundle.join('');
    this.pin = caPin(this.certPem);
    this.cert = new x509.X509Certificate(this.certPem);
    this.signingKey = signingKey;
    this.hash = hash;
    this.intermediatesPem = bundle
      .filter((pem) => !new X509Certificate(pem).checkIssued(new X509Certificate(pem)))
      .join('');
  }

  /**
   * A CA from PEM text: certPem starts with the signing CA certificate (more certificates may
   * follow: its issuers), keyPem is its ECDSA P-256/P-384 key (PKCS#8 or SEC1).
   */
  static async fromPem(
    certPem: string,
    keyPem: string,
    where = 'the CA',
  ): Promise<CertificateAuthority> {
    const bundle = splitPemCertificates(certPem);
    if (bundle.length === 0)
      throw new WeftError('WEFT_E_CONFIG', `${where}: no PEM certificate found`);
    const cert = new X509Certificate(bundle[0]!);
    if (!cert.ca)
      throw new WeftError(
        'WEFT_E_CONFIG',
        `${where}: the first certificate is not a CA (basicConstraints CA:TRUE)`,
      );
    let key: ReturnType<typeof createPrivateKey>;
    try {
      key = createPrivateKey(keyPem);
    } catch (err) {
      throw new WeftError(
        'WEFT_E_CONFIG',
        `${where}: the key is not a PEM private key: ${(err as Error).message}`,
      );
    }
    const curve =
      key.asymmetricKeyType === 'ec'
        ? CURVES[key.asymmetricKeyDetails?.namedCurve ?? '']
        : undefined;
    if (curve === undefined)
      throw new WeftError('WEFT_E_CONFIG', `${where}: the key must be ECDSA P-256 or P-384`);
    if (!cert.checkPrivateKey(key))
      throw new WeftError('WEFT_E_CONFIG', `${where}: the key does not belong to the certificate`);
    const der = key.export({ type: 'pkcs8', format: 'der' });
    const signingKey = await subtle.importKey(
      'pkcs8',
      der,
      { name: 'ECDSA', namedCurve: curve.namedCurve },
      false,
      ['sign'],
    );
    return new CertificateAuthority(bundle, signingKey, curve.hash);
  }

  /** A new self-signed ECDSA P-256 CA; returns its PEMs for the caller to keep. */
  static async create(
    trustDomain: string,
  ): Promise<{ ca: CertificateAuthority; certPem: string; keyPem: string }> {
    const keys = await generateKeyPair();
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      name: [{ CN: [`weft CA ${trustDomain}`] }, { O: ['weft'] }],
      keys,
      signingAlgorithm: ecdsaP256,
      notBefore: new Date(now - MAX_BACKDATE_MS),
      notAfter: new Date(now + CA_LIFETIME_MS),
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    const certPem = `${cert.toString('pem')}\n`;
    const keyPem = await exportPrivateKeyPem(keys.privateKey);
    return { ca: await CertificateAuthority.fromPem(certPem, keyPem), certPem, keyPem };
  }

  private async authorityKeyId(): Promise<x509.AuthorityKeyIdentifierExtension> {
    const ski = this.cert.getExtension(x509.SubjectKeyIdentifierExtension);
    if (ski !== null) return new x509.AuthorityKeyIdentifierExtension(ski.keyId);
    return x509.AuthorityKeyIdentifierExtension.create(this.cert.publicKey);
  }

  /** Signs a leaf certificate for one SPIFFE ID (client and server use). */
  async issue(request: IssueRequest): Promise<IssuedCertificate> {
    const now = Date.now();
    const backdate = Math.min(MAX_BACKDATE_MS, Math.floor(request.ttlMs / 10));
    // X.509 times have whole seconds: round here so that what we report is what the cert says.
    const second = (ms: number): Date => new Date(Math.floor(ms / 1000) * 1000);
    const notBefore = second(now - backdate);
    const notAfter = second(Math.min(now + request.ttlMs, this.cert.notAfter.getTime()));
    const names: x509.JsonGeneralName[] = [{ type: 'url', value: request.spiffeId }];
    for (const dns of request.dnsNames ?? []) names.push({ type: 'dns', value: dns });
    for (const ip of request.ipAddresses ?? []) names.push({ type: 'ip', value: ip });
    const publicKey =
      request.publicKey instanceof x509.PublicKey
        ? request.publicKey
        : await x509.PublicKey.create(request.publicKey);
    const cert = await x509.X509CertificateGenerator.create({
      subject: '',
      issuer: this.cert.subject,
      notBefore,
      notAfter,
      publicKey,
      signingKey: this.signingKey,
      signingAlgorithm: { name: 'ECDSA', hash: this.hash } as EcdsaParams,
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
        await x509.SubjectKeyIdentifierExtension.create(publicKey),
        await this.authorityKeyId(),
      ],
    });
    return {
      certificatePem: `${cert.toString('pem')}\n${this.intermediatesPem}`,
      notBefore,
      notAfter,
      serialNumber: cert.serialNumber,
    };
  }
}

interface EcdsaParams {
  name: string;
  hash: string;
}
