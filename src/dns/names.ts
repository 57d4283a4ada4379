// DNS names as the server compares them, and where a name stands relative to the mesh
// domain. Comparison is ASCII case-insensitive (RFC 4343) and ignores a trailing dot.
import { WeftError } from '../errors.js';

/** Where a query name falls: the domain itself, a name under it, or outside it. */
export type MeshName = { kind: 'apex' } | { kind: 'service'; service: string };

const UPPER = /[A-Z]/;
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** Lower case (ASCII only: DNS folds no other letters) without trailing dots. */
export function normalizeName(name: string): string {
  let end = name.length;
  while (end > 0 && name.charCodeAt(end - 1) === 46 /* . */) end--;
  const trimmed = end === name.length ? name : name.slice(0, end);
  return UPPER.test(trimmed) ? trimmed.replace(/[A-Z]+/g, (s) => s.toLowerCase()) : trimmed;
}

/** The mesh domain in normalized form; throws WEFT_E_CONFIG naming `field` when invalid. */
export function validateDomain(domain: string, field = 'domain'): string {
  const normalized = normalizeName(domain.trim());
  const labels = normalized.split('.');
  const bad = labels.find((l) => !LABEL.test(l));
  if (normalized === '' || bad !== undefined || normalized.length > 253) {
    throw new WeftError(
      'WEFT_E_CONFIG',
      `${field}: "${domain}" is not a DNS domain (letters, digits, '-' and '_' in dot-separated labels of 1-63 characters)`,
    );
  }
  return normalized;
}

/**
 * Where `qname` stands relative to `domain` (already normalized): `echo.MESH.` under `mesh`
 * is the service `echo`; a name outside the domain gives undefined and is forwarded.
 */
export function meshNameOf(qname: string, domain: string): MeshName | undefined {
  const name = normalizeName(qname);
  if (name === domain) return { kind: 'apex' };
  if (name.length <= domain.length + 1) return undefined;
  const cut = name.length - domain.length - 1;
  if (name.charCodeAt(cut) !== 46 /* . */ || !name.endsWith(domain)) return undefined;
  return { kind: 'service', service: name.slice(0, cut) };
}
