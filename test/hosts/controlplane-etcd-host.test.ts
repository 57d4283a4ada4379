// A control plane installed with `scripts/install.sh --role controlplane --store etcd` on a host
// that boots systemd (the cached Debian rootfs under systemd-nspawn, as systemd-hosts.test.ts):
// it starts under systemd on a real etcd, an agent on another host joins it, and `systemctl
// restart weft-controlplane` keeps the CA (same pin, the key still only sealed in etcd) and
// the nodes. etcd is the host's own binary (Debian's etcd-server) bound into the guest: the
// shared guest image stays as it is, so other host tests keep their cache.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../../src/lab/index.js';
import { requireRootAndTools } from '../helpers/prereqs.js';
import { Guest, sleep } from './guest.js';
import { ensureRootfs } from './rootfs.js';

const CHECKOUT = fileURLToPath(new URL('../..', import.meta.url));
const SRC = '/src/weft';
/** Where the host's etcd binary is bound (read-only) in the control plane's guest. */
const ETCD = '/usr/local/bin/etcd';
const ETCD_URL = 'http://127.0.0.1:2379';
const KEK = '/root/ca-kek';

let lab: Lab;
const guests = new Map<string, Guest>();
const g = (name: string) => guests.get(name)!;

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(300);
  }
  throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
}

/** Runs scripts/install.sh in the guest; on failure the message carries the journal. */
async function install(host: string, args: string[], input?: string): Promise<void> {
  const r = await g(host).exec([`${SRC}/scripts/install.sh`, ...args], {
    allowFailure: true,
    timeoutMs: 180_000,
    input,
  });
  if (r.exitCode === 0) return;
  const journal = await g(host).exec(
    ['journalctl', '--no-pager', '-n', '60', '-u', 'weft-agent', '-u', 'weft-controlplane'],
    { allowFailure: true },
  );
  throw new Error(
    `install.sh ${args.join(' ')} on ${host} failed (${r.exitCode}):\n${r.stdout}\n${r.stderr}\n--- journal ---\n${journal.stdout}`,
  );
}

/** A token for `node`, and the CA pin the control plane prints with it. */
async function createToken(node: string): Promise<{ token: string; pin: string }> {
  const out = (await g('cp').exec(['weft', 'token', 'create', '--node', node, '--ttl', '1h']))
    .stdout;
  return { token: /^token:\s+(\S+)/m.exec(out)![1]!, pin: /^CA pin:\s+(\S+)/m.exec(out)![1]! };
}

const SERVICE = `apiVersion: weft/v1
kind: Service
metadata: { name: after-restart }
spec: { ports: [{ port: 7000, protocol: tcp }] }
`;

/** The snapshot version node1's agent serves (weft status). */
const agentVersion = async () =>
  (
    JSON.parse((await g('node1').exec(['weft', 'status', '-o', 'json'])).stdout) as {
      version: number;
    }
  ).version;

const nodeLine = async (node: string) =>
  new RegExp(`^${node}\\b.*$`, 'm').exec(
    (await g('cp').exec(['weft', 'get', 'nodes'])).stdout,
  )?.[0] ?? '';

beforeAll(async () => {
  requireRootAndTools(['debootstrap', 'systemd-nspawn', 'nsenter', 'ip', 'iptables', 'etcd']);
  const rootfs = await ensureRootfs();
  const tag = randomBytes(2).toString('hex');
  lab = await Lab.up({ name: `we${tag}`, hosts: [{ name: 'cp' }, { name: 'node1' }] });
  const logs = mkdtempSync(join(tmpdir(), 'weft-hosts-etcd-'));
  await Promise.all(
    ['cp', 'node1'].map(async (name) => {
      const binds: Record<string, string> = { [CHECKOUT]: SRC };
      if (name === 'cp') binds['/usr/bin/etcd'] = ETCD;
      guests.set(
        name,
        await Guest.boot({
          machine: `we${tag}-${name}`,
          rootfs: rootfs.dir,
          netns: lab.host(name).netns,
          binds,
          logFile: join(logs, `${name}.log`),
        }),
      );
    }),
  );
  // etcd as a unit of the guest's systemd, on the guest's loopback (its own namespace).
  await g('cp').exec([
    'systemd-run',
    '--unit=etcd',
    ETCD,
    '--name=cp',
    '--data-dir=/var/lib/etcd-weft',
    `--listen-client-urls=${ETCD_URL}`,
    `--advertise-client-urls=${ETCD_URL}`,
    '--listen-peer-urls=http://127.0.0.1:2380',
  ]);
  await until('etcd answers in the guest', async () => {
    const r = await g('cp').exec(['bash', '-c', `exec 3<>/dev/tcp/127.0.0.1/2379`], {
      allowFailure: true,
    });
    return r.exitCode === 0;
  });
}, 900_000);

afterAll(async () => {
  await Promise.all([...guests.values()].map((guest) => guest.stop().catch(() => undefined)));
  await lab?.down();
}, 120_000);

describe('a control plane installed with --store etcd on a systemd host', () => {
  let pin: string;

  it('starts under systemd on etcd with its KEK; the CA key is only sealed in etcd', async () => {
    await g('cp').sh(`umask 077; head -c 32 /dev/urandom > ${KEK}`);
    await install('cp', [
      '--role',
      'controlplane',
      '--store',
      'etcd',
      '--etcd-endpoints',
      ETCD_URL,
      '--ca-kek-file',
      KEK,
    ]);
    expect((await g('cp').exec(['systemctl', 'is-active', 'weft-controlplane'])).stdout).toBe(
      'active\n',
    );
    // As installed: the KEK copied for the unit's user alone.
    expect((await g('cp').exec(['stat', '-c', '%a %U', '/etc/weft/ca-kek'])).stdout.trim()).toBe(
      '600 weft-cp',
    );
    const config = (await g('cp').exec(['cat', '/etc/weft/controlplane.yaml'])).stdout;
    expect(config).toContain('type: etcd');
    expect(config).toContain(ETCD_URL);
    // The CA key is in etcd, sealed; none on disk.
    const onDisk = await g('cp').sh('ls /var/lib/weft-cp/ca.key 2>&1; true');
    expect(onDisk.stdout).toContain('No such file');
    pin = (await createToken('unused')).pin;
    expect(pin).toMatch(/^[0-9a-f]{64}$/);
  }, 240_000);

  it('an agent on another host joins it', async () => {
    const { token } = await createToken('node1');
    await install(
      'node1',
      [
        '--control-plane',
        `${lab.host('cp').address}:15012`,
        '--token-file',
        '-',
        '--ca-pin',
        pin,
        '--hostname',
        'node1',
      ],
      `${token}\n`,
    );
    await until('node1 is connected', async () => /\bconnected\b/.test(await nodeLine('node1')));
  }, 240_000);

  it('systemctl restart weft-controlplane keeps the CA (same pin) and the nodes', async () => {
    const before = (
      await g('cp').exec(['systemctl', 'show', 'weft-controlplane', '--property=MainPID'])
    ).stdout;
    await g('cp').exec(['systemctl', 'restart', 'weft-controlplane']);
    expect(
      (await g('cp').exec(['systemctl', 'show', 'weft-controlplane', '--property=MainPID'])).stdout,
    ).not.toBe(before);
    expect((await createToken('after-restart')).pin).toBe(pin);
    // The node is still known, and its agent (same certificate, same CA) reconnects.
    expect(await nodeLine('node1')).not.toBe('');
    await until('node1 is connected again', async () =>
      /\bconnected\b/.test(await nodeLine('node1')),
    );
    // ... and follows the restarted replica: a change applied now reaches it.
    const served = await agentVersion();
    await g('cp').exec(['weft', 'apply', '-f', '-'], { input: SERVICE });
    await until('node1 has the change made after the restart', async () => {
      return (await agentVersion()) > served;
    });
  }, 240_000);
});
