// This build's version (package.json, installed next to dist/ and read once at start), as the
// agent reports it to the control plane in Hello: `weft get nodes` shows it per node.
import { readFileSync } from 'node:fs';

function readVersion(): string {
  try {
    const pkg = JSON.parse(
      readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
    ) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

export const WEFT_VERSION = readVersion();
