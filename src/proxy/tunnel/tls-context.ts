// TLS settings of the tunnel, one place for both ends: TLS 1.3 only, ALPN h2, our key and
// chain, and the mesh trust bundle as the only roots (never the system store).
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import { WeftError } from '../../errors.js';
import type { TlsIdentity } from './types.js';

export const TUNNEL_ALPN = ['h2'];
export const TUNNEL_TLS_VERSION = 'TLSv1.3' as const;

/** Context options for an identity and a trust bundle; minVersion lives in the context. */
export function contextOptions(identity: TlsIdentity, trustBundle: string): SecureContextOptions {
  return {
    key: identity.key,
    cert: identity.cert,
    ca: trustBundle,
    minVersion: TUNNEL_TLS_VERSION,
  };
}

/**
 * A secure context, built now so that a bad key, a key that does not match its certificate, or
 * an empty bundle is reported when configured, naming `where`, not at the first handshake.
 */
export function buildContext(
  identity: TlsIdentity,
  trustBundle: string,
  where: string,
): SecureContext {
  if (typeof identity?.key !== 'string' || !identity.key.includes('PRIVATE KEY')) {
    throw new WeftError('WEFT_E_CONFIG', `${where}.key must be a PEM private key`);
  }
  if (typeof identity.cert !== 'string' || !identity.cert.includes('BEGIN CERTIFICATE')) {
    throw new WeftError('WEFT_E_CONFIG', `${where}.cert must be a PEM certificate chain`);
  }
  checkBundle(trustBundle, `${where} trust bundle`);
  try {
    return createSecureContext(contextOptions(identity, trustBundle));
  } catch (err) {
    throw new WeftError(
      'WEFT_E_CONFIG',
      `${where}: the key, certificate or trust bundle is unusable: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

export function checkBundle(trustBundle: string, where: string): void {
  if (typeof trustBundle !== 'string' || !trustBundle.includes('BEGIN CERTIFICATE')) {
    throw new WeftError('WEFT_E_CONFIG', `${where} must hold at least one PEM CA certificate`);
  }
}
