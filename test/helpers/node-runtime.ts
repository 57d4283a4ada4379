// The Node.js release weft is pinned to (runtime/node.pin) and where scripts/bootstrap puts it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The pinned node binary in this checkout (scripts/bootstrap, scripts/fetch-node). */
export const PINNED_NODE = join(ROOT, 'runtime/node/bin/node');

export interface NodePin {
  version: string;
  /** sha512 (hex) of each package's tarball, by package name. */
  sha512: Record<string, string>;
}

/** runtime/node.pin: `version X.Y.Z` and `sha512 PACKAGE HEX` lines; `#` starts a comment. */
export function readNodePin(path = join(ROOT, 'runtime/node.pin')): NodePin {
  const pin: NodePin = { version: '', sha512: {} };
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const [key, a, b] = line.trim().split(/\s+/);
    if (key === 'version' && a) pin.version = a;
    if (key === 'sha512' && a && b) pin.sha512[a] = b;
  }
  return pin;
}
