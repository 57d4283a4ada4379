// SPIFFE IDs in weft: spiffe://<td>/node/<host>, /svc/<service>, /admin/<name>, /controlplane.
// Builders validate their parts; parsers return undefined for anything that is not weft's shape.
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';

/** A DNS label (RFC 1123): hostnames, service names, admin names. */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** A SPIFFE trust domain: lowercase letters, digits, '.', '-', '_'. */
export const TRUST_DOMAIN = /^[a-z0-9]([-a-z0-9._]{0,253}[a-z0-9])?$/;

export type SpiffeKind = 'node' | 'svc' | 'admin' | 'controlplane';

export interface SpiffeId {
  trustDomain: string;
  kind: SpiffeKind;
  /** Host, service or admin name; '' for the control plane. */
  name: string;
}

export function isDnsLabel(value: string): boolean {
  return DNS_LABEL.test(value);
}

function build(trustDomain: string, kind: SpiffeKind, name: string): string {
  if (!TRUST_DOMAIN.test(trustDomain)) throw new Error(`invalid trust domain "${trustDomain}"`);
  if (kind === 'controlplane') return `spiffe://${trustDomain}/controlplane`;
  if (!DNS_LABEL.test(name)) throw new Error(`invalid ${kind} name "${name}": must be a DNS label`);
  return `spiffe://${trustDomain}/${kind}/${name}`;
}

export const nodeSpiffeId = (td: string, hostname: string): string => build(td, 'node', hostname);
export const serviceSpiffeId = (td: string, service: string): string => build(td, 'svc', service);
export const adminSpiffeId = (td: string, name: string): string => build(td, 'admin', name);
export const controlPlaneSpiffeId = (td: string): string => build(td, 'controlplane', '');

/** Parses a weft SPIFFE ID; undefined when it is not one. */
export function parseSpiffeId(uri: string): SpiffeId | undefined {
  const m = /^spiffe:\/\/([^/]+)\/(node|svc|admin)\/([^/]+)$/.exec(uri);
  if (m !== null) {
    const [, trustDomain, kind, name] = m as unknown as [string, string, SpiffeKind, string];
    if (!TRUST_DOMAIN.test(trustDomain) || !DNS_LABEL.test(name)) return undefined;
    return { trustDomain, kind, name };
  }
  const cp = /^spiffe:\/\/([^/]+)\/controlplane$/.exec(uri);
  if (cp !== null && TRUST_DOMAIN.test(cp[1]!)) {
    return { trustDomain: cp[1]!, kind: 'controlplane', name: '' };
  }
  return undefined;
}

/**
 * Splits Node's subjectaltname string ("DNS:a, URI:spiffe://x, IP Address:1.2.3.4") into
 * [type, value] pairs. Node quotes values holding separators as JSON strings.
 */
export function parseSubjectAltName(san: string | undefined): Array<[string, string]> {
  if (san === undefined || san === '') return [];
  const out: Array<[string, string]> = [];
  const re =
    /(DNS|URI|IP Address|email|othername|DirName|Registered ID):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g;
  for (let m = re.exec(san); m !== null; m = re.exec(san)) {
    const raw = m[2]!;
    out.push([m[1]!, raw.startsWith('"') ? (JSON.parse(raw) as string) : raw]);
    if (m[0] === '') break;
  }
  return out;
}

/** The URI SANs of a certificate (PEM, Node X509Certificate or a TLS peer certificate). */
export function uriSans(cert: string | X509Certificate | PeerCertificate): string[] {
  let san: string | undefined;
  if (typeof cert === 'string') san = new X509Certificate(cert).subjectAltName;
  else if (cert instanceof X509Certificate) san = cert.subjectAltName;
  else san = cert.subjectaltname;
  return parseSubjectAltName(san)
    .filter(([type]) => type === 'URI')
    .map(([, value]) => value);
}

/**
 * The SPIFFE ID of a certificate: its single spiffe:// URI SAN. Undefined when it has none
 * or several (an X.509-SVID carries exactly one).
 */
export function spiffeIdOfCertificate(
  cert: string | X509Certificate | PeerCertificate,
): string | undefined {
  const ids = uriSans(cert).filter((uri) => uri.startsWith('spiffe://'));
  return ids.length === 1 ? ids[0] : undefined;
}
