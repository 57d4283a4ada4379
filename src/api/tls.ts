// TLS for clients of the control plane: channel credentials that trust weft's CA and check the
// server's SPIFFE ID (not its hostname: agents reach the control plane by whatever address
// works), and reading a peer's chain (the agent's join pins the CA key in it).
import { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { WeftError } from '../errors.js';
import { controlPlaneSpiffeId, parseSpiffeId, spiffeIdOfCertificate } from './spiffe.js';

export interface ClientTlsMaterial {
  /** The CA certificate(s) to trust (the trust bundle). */
  caPem: string;
  /** Client certificate chain and key (node or admin); omit for Join. */
  certPem?: string;
  keyPem?: string;
}

/**
 * checkServerIdentity for the control plane: its certificate must carry
 * spiffe://<trustDomain>/controlplane (any trust domain when none is given).
 */
export function checkControlPlaneIdentity(trustDomain?: string) {
  return (_host: string, cert: PeerCertificate): Error | undefined => {
    const id = spiffeIdOfCertificate(cert);
    const parsed = id === undefined ? undefined : parseSpiffeId(id);
    const ok =
      parsed?.kind === 'controlplane' &&
      (trustDomain === undefined || id === controlPlaneSpiffeId(trustDomain));
    if (ok) return undefined;
    const want =
      trustDomain === undefined ? 'spiffe://<td>/controlplane' : controlPlaneSpiffeId(trustDomain);
    return new Error(
      `the server is not a weft control plane: its certificate is ${id ?? 'without a SPIFFE ID'}, expected ${want}`,
    );
  };
}

/** gRPC channel credentials for talking to the control plane. */
export function controlPlaneCredentials(
  material: ClientTlsMaterial,
  trustDomain?: string,
): grpc.ChannelCredentials {
  const key = material.keyPem === undefined ? null : Buffer.from(material.keyPem);
  const cert = material.certPem === undefined ? null : Buffer.from(material.certPem);
  return grpc.credentials.createSsl(Buffer.from(material.caPem), key, cert, {
    checkServerIdentity: checkControlPlaneIdentity(trustDomain),
  });
}

/** Splits "host:port" / "[v6]:port" / "host" (then defaultPort). */
export function parseHostPort(
  address: string,
  defaultPort: number,
): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(address) ?? /^([^:]+)(?::(\d+))?$/.exec(address);
  const port = m?.[2] === undefined ? defaultPort : Number(m[2]);
  if (m === null || !(port >= 1 && port <= 65535)) {
    throw new WeftError('WEFT_E_USAGE', `invalid address "${address}": expected HOST:PORT`);
  }
  return { host: m[1]!, port };
}

/** A peer's certificate chain as presented, leaf first (Node links it via issuerCertificate). */
export function chainOf(leaf: DetailedPeerCertificate): X509Certificate[] {
  const out: X509Certificate[] = [];
  const seen = new Set<string>();
  for (
    let c: DetailedPeerCertificate | undefined = leaf;
    c?.raw !== undefined;
    c = c.issuerCertificate
  ) {
    if (seen.has(c.fingerprint256)) break; // a self-signed root links to itself
    seen.add(c.fingerprint256);
    out.push(new X509Certificate(c.raw));
  }
  return out;
}
