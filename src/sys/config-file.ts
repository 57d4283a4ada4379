// Reading a config file the operator named: a missing or unreadable file is a config error
// that names it (never silently the defaults).
import { readFileSync } from 'node:fs';
import { WeftError } from '../errors.js';

export function readConfigFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new WeftError(
      'WEFT_E_CONFIG',
      `cannot read config ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
}
