// The README tells users to run scripts/install.sh, scripts/uninstall.sh and scripts/bootstrap
// directly: each must be executable in the checkout (git mode 100755), or the shell refuses it.
import { accessSync, constants, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SCRIPTS = fileURLToPath(new URL('../../scripts', import.meta.url));

/** Files under scripts/ (one level down too) that start with a #! line. */
function scriptsWithShebang(): string[] {
  const found: string[] = [];
  for (const dir of [SCRIPTS, ...subdirs(SCRIPTS)]) {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isFile() && readFileSync(path, 'utf8').startsWith('#!')) found.push(path);
    }
  }
  return found;
}

function subdirs(dir: string): string[] {
  return readdirSync(dir)
    .map((name) => join(dir, name))
    .filter((path) => statSync(path).isDirectory());
}

describe('scripts/', () => {
  it('has the scripts the README names', () => {
    const names = scriptsWithShebang().map((p) => p.slice(SCRIPTS.length + 1));
    expect(names).toEqual(expect.arrayContaining(['bootstrap', 'install.sh', 'uninstall.sh']));
  });

  it.each(scriptsWithShebang().map((p) => [p.slice(SCRIPTS.length + 1), p]))(
    '%s is executable',
    (_name, path) => {
      expect(() => accessSync(path, constants.X_OK)).not.toThrow();
      expect(statSync(path).mode & 0o111).toBe(0o111);
    },
  );
});
