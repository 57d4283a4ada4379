// The control plane's own certificates: its TLS server certificate (made at every start, so
// that advertised names follow the config) and the admin credential the CLI uses, kept in
// <data-dir>/admin (admin.key 0600, admin.crt, ca.crt) and re-issued when close to expiry.
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { ADMIN_FILES } from '../../api/admin-client.js';
import { exportPrivateKeyPem, generateKeyPair } from '../../api/csr.js';
import { adminSpiffeId, controlPlaneSpiffeId, spiffeIdOfCertificate } from '../../api/spiffe.js';
import { writeFileDurable } from '../files.js';
import type { CertificateAuthority } from './certificate-authority.js';

const DAY_MS = 86_400_000;
export const SERVER_CERT_TTL_MS = 90 * DAY_MS;
const ADMIN_CERT_TTL_MS = 365 * DAY_MS;
const ADMIN_RENEW_BEFORE_MS = 30 * DAY_MS;

export interface KeyAndChain {
  keyPem: string;
  certificatePem: string;
  notAfter: Date;
}

/** This host's addresses and name, plus loopback: the default advertised names. */
export function defaultAdvertise(): string[] {
  const out = new Set<string>([hostname(), 'localhost', '127.0.0.1', '::1']);
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? [])
      if (!a.internal && !a.address.startsWith('fe80:')) out.add(a.address);
  }
  return [...out];
}

export async function issueServerCertificate(
  ca: CertificateAuthority,
  trustDomain: string,
  advertise: readonly string[],
): Promise<KeyAndChain> {
  const keys = await generateKeyPair();
  const names = [...new Set([...advertise, 'localhost', '127.0.0.1', '::1'])];
  const issued = await ca.issue({
    spiffeId: controlPlaneSpiffeId(trustDomain),
    publicKey: keys.publicKey,
    ttlMs: SERVER_CERT_TTL_MS,
    dnsNames: names.filter((n) => isIP(n) === 0),
    ipAddresses: names.filter((n) => isIP(n) !== 0),
  });
  // The CA goes last in the chain so that an agent joining with only a CA pin finds it (an
  // intermediate CA is in the chain already).
  const chain = issued.certificatePem.includes(ca.certPem.trim())
    ? issued.certificatePem
    : issued.certificatePem + ca.certPem;
  return {
    keyPem: await exportPrivateKeyPem(keys.privateKey),
    certificatePem: chain,
    notAfter: issued.notAfter,
  };
}

function adminStillGood(dir: string, ca: CertificateAuthority, spiffeId: string): boolean {
  const certFile = join(dir, ADMIN_FILES.cert);
  if (!existsSync(certFile) || !existsSync(join(dir, ADMIN_FILES.key))) return false;
  try {
    const cert = new X509Certificate(readFileSync(certFile));
    const caCert = new X509Certificate(ca.certPem);
    return (
      cert.verify(caCert.publicKey) &&
      spiffeIdOfCertificate(cert) === spiffeId &&
      new Date(cert.validTo).getTime() - Date.now() > ADMIN_RENEW_BEFORE_MS &&
      readFileSync(join(dir, ADMIN_FILES.ca), 'utf8') === ca.trustBundlePem
    );
  } catch {
    return false;
  }
}

/** Makes sure <dataDir>/admin holds a valid admin credential; returns the directory. */
export async function ensureAdminCredentials(
  ca: CertificateAuthority,
  trustDomain: string,
  dataDir: string,
): Promise<string> {
  const dir = join(dataDir, 'admin');
  const spiffeId = adminSpiffeId(trustDomain, 'root');
  if (adminStillGood(dir, ca, spiffeId)) return dir;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keys = await generateKeyPair();
  const issued = await ca.issue({ spiffeId, publicKey: keys.publicKey, ttlMs: ADMIN_CERT_TTL_MS });
  await writeFileDurable(
    join(dir, ADMIN_FILES.key),
    await exportPrivateKeyPem(keys.privateKey),
    0o600,
  );
  await writeFileDurable(join(dir, ADMIN_FILES.cert), issued.certificatePem, 0o644);
  await writeFileDurable(join(dir, ADMIN_FILES.ca), ca.trustBundlePem, 0o644);
  return dir;
}
