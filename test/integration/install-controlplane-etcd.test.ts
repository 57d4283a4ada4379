// scripts/install.sh --role controlplane --store etcd: every flag checked before anything
// changes, and the config it writes (shown with --print-config, which changes nothing) is one
// the control plane accepts and runs on against a real etcd (started by this file). The
// install itself (users, units, copies into /etc/weft) is exercised on booted hosts by
// test/hosts; here the host is left untouched. Needs root (install.sh refuses without it).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseControlPlaneConfig } from '../../src/controlplane/config.js';
import { startControlPlane } from '../helpers/controlplane.js';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { ROOT } from '../helpers/node-runtime.js';
import { requireRootAndTools } from '../helpers/prereqs.js';
import { createTestCa } from '../helpers/test-pki.js';

let dir: string;
let kek: string;
let etcd: TestEtcd;
const touched = ['/etc/weft', '/var/lib/weft-cp', '/opt/weft'].filter((p) => existsSync(p));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function install(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(join(ROOT, 'scripts/install.sh'), args, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : Number(err.code), stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  requireRootAndTools(['systemctl', 'stat']);
  dir = mkdtempSync(join(tmpdir(), 'weft-install-etcd-'));
  kek = join(dir, 'kek');
  writeFileSync(kek, randomBytes(32), { mode: 0o600 });
  etcd = await startEtcd();
}, 120_000);

afterAll(async () => {
  await etcd?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  // Nothing here installs: the host has what it had before.
  expect(['/etc/weft', '/var/lib/weft-cp', '/opt/weft'].filter((p) => existsSync(p))).toEqual(
    touched,
  );
});

describe('install.sh --role controlplane --store etcd', () => {
  it('writes the etcd store, its TLS files and the KEK as installed under /etc/weft', async () => {
    const ca = await createTestCa('weft.local');
    const [caFile, certFile, keyFile] = ['ca.pem', 'client.pem', 'client.key'].map((f) =>
      join(dir, f),
    );
    writeFileSync(caFile!, ca.certPem);
    writeFileSync(certFile!, ca.certPem);
    writeFileSync(keyFile!, ca.keyPem, { mode: 0o600 });
    const r = await install([
      '--role',
      'controlplane',
      '--store',
      'etcd',
      '--etcd-endpoints',
      'https://10.0.0.5:2379,https://10.0.0.6:2379',
      '--etcd-prefix',
      '/mesh-a/',
      '--etcd-ca',
      caFile!,
      '--etcd-cert',
      certFile!,
      '--etcd-key',
      keyFile!,
      '--ca-kek-file',
      kek,
      '--print-config',
    ]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const config = parseControlPlaneConfig(parseYaml(r.stdout), 'printed');
    expect(config.store).toEqual({
      type: 'etcd',
      endpoints: ['https://10.0.0.5:2379', 'https://10.0.0.6:2379'],
      prefix: '/mesh-a/',
      caFile: '/etc/weft/etcd-ca.pem',
      certFile: '/etc/weft/etcd-client.pem',
      keyFile: '/etc/weft/etcd-client.key',
    });
    expect(config.caKekFile).toBe('/etc/weft/ca-kek');
    expect(config.dataDir).toBe('/var/lib/weft-cp');
  });

  it('writes a config a control plane runs on: it stores its CA in etcd, sealed', async () => {
    const prefix = `/weft-install-${process.pid}/`;
    const r = await install([
      '--role',
      'controlplane',
      '--store',
      'etcd',
      '--etcd-endpoints',
      etcd.endpoint,
      '--etcd-prefix',
      prefix,
      '--ca-kek-file',
      kek,
      '--print-config',
    ]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const written = parseYaml(r.stdout) as Record<string, unknown>;
    // What install.sh copies to /etc/weft/ca-kek is the file given; the data dir is a test's.
    const { dataDir: _dataDir, ...rest } = written;
    const cp = await startControlPlane({ config: { ...rest, caKekFile: kek } as never });
    const raw = new Etcd3({ hosts: etcd.endpoint });
    try {
      expect(await raw.get(`${prefix}ca-key`).string()).toContain('"alg":"A256GCM"');
      expect(cp.caPin).toMatch(/^[0-9a-f]{64}$/);
    } finally {
      raw.close();
      await cp.stop({ removeDataDir: true });
    }
  }, 60_000);

  it('keeps the file store by default', async () => {
    const r = await install(['--role', 'controlplane', '--print-config']);
    expect(r.code).toBe(0);
    expect(parseControlPlaneConfig(parseYaml(r.stdout), 'printed').store).toEqual({
      type: 'file',
    });
  });

  it('refuses what it cannot install, naming the flag, before changing anything', async () => {
    const open = join(dir, 'open-kek');
    writeFileSync(open, randomBytes(32), { mode: 0o644 });
    const short = join(dir, 'short-kek');
    writeFileSync(short, randomBytes(16), { mode: 0o600 });
    const etcdArgs = ['--role', 'controlplane', '--store', 'etcd', '--etcd-endpoints'];
    const cases: Array<[string[], string]> = [
      [
        ['--role', 'controlplane', '--store', 'consul'],
        "--store must be file or etcd, got 'consul'",
      ],
      [
        ['--role', 'controlplane', '--etcd-endpoints', 'http://a:1'],
        '--etcd-*, --ca-kek-file need --store etcd',
      ],
      [
        ['--role', 'controlplane', '--store', 'etcd', '--ca-kek-file', kek],
        '--store etcd needs --etcd-endpoints',
      ],
      [
        [...etcdArgs, 'etcd1:2379', '--ca-kek-file', kek],
        "--etcd-endpoints: 'etcd1:2379' is not a client URL",
      ],
      [
        [...etcdArgs, 'http://a:1,https://b:1', '--ca-kek-file', kek],
        'give all http:// or all https://',
      ],
      [
        [...etcdArgs, 'http://a:1', '--etcd-ca', kek, '--ca-kek-file', kek],
        'are TLS files, but the endpoints are http://',
      ],
      [
        [...etcdArgs, 'https://a:1', '--etcd-cert', kek, '--ca-kek-file', kek],
        '--etcd-cert and --etcd-key go together',
      ],
      [
        [...etcdArgs, 'https://a:1', '--etcd-ca', kek, '--ca-kek-file', kek],
        `${kek}: not a readable PEM certificate`,
      ],
      [
        [...etcdArgs, 'http://a:1', '--etcd-prefix', 'weft', '--ca-kek-file', kek],
        '--etcd-prefix must start and end with /',
      ],
      [[...etcdArgs, 'http://a:1'], '--store etcd needs --ca-kek-file FILE'],
      [
        [...etcdArgs, 'http://a:1', '--ca-kek-file', open],
        `--ca-kek-file ${open}: group or others may access it (mode 644)`,
      ],
      [
        [...etcdArgs, 'http://a:1', '--ca-kek-file', short],
        `--ca-kek-file ${short}: holds 16 bytes, not 32`,
      ],
      [
        ['--store', 'etcd', '--etcd-endpoints', 'http://a:1'],
        'are controlplane options (--role controlplane)',
      ],
    ];
    for (const [args, message] of cases) {
      const r = await install(args);
      expect({ args, code: r.code, stderr: r.stderr }).toMatchObject({
        code: 2,
        stderr: expect.stringContaining(message),
      });
    }
  });
});
