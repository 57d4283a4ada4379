// weft installed as a user would on hosts that boot systemd: a Debian 12 rootfs (debootstrap,
// cached) booted with systemd-nspawn as cp, node1 and node2, each in its own lab network
// namespace; scripts/install.sh runs in each; then meshing, zero-failure restarts, crash
// recovery, a bad config, and an uninstall that leaves nothing behind.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../../src/lab/index.js';
import { run } from '../../src/sys/run.js';
import { requireRootAndTools } from '../helpers/prereqs.js';
import { Guest, sleep } from './guest.js';
import { ensureRootfs } from './rootfs.js';

const CHECKOUT = fileURLToPath(new URL('../..', import.meta.url));
const SRC = '/src/weft'; // where the checkout is bound (read-only) in every guest
const LOAD = `${SRC}/test/hosts/load-client.mjs`;
const ECHO = `${SRC}/test/fixtures/tcp-echo.mjs`;
const SERVICES = `apiVersion: weft/v1
kind: Service
metadata: { name: echo }
spec: { ports: [{ port: 7000, protocol: tcp }] }
`;

let lab: Lab;
const guests = new Map<string, Guest>();
const g = (name: string) => guests.get(name)!;
const timings: Record<string, number> = {};

async function timed<T>(what: string, f: () => Promise<T>): Promise<T> {
  const started = Date.now();
  try {
    return await f();
  } finally {
    timings[what] = (Date.now() - started) / 1000;
  }
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(300);
  }
  throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
}

interface LoadResult {
  ok: number;
  failed: number;
  maxMs: number;
  errors: string[];
}

/**
 * Load from node2 to echo.mesh:7000 for `seconds` while `during` runs: 4 loops of short
 * connections, and 2 loops of connections held open 3 s each (shorter than drainMs, 10 s), so
 * that some are open when the agent stops and must finish, not be cut.
 */
async function underLoad(seconds: number, during: () => Promise<void>) {
  const start = (concurrency: number, holdMs: number) => {
    const child = g('node2').spawn([
      'runuser',
      '-u',
      'weftapp',
      '--',
      'node',
      LOAD,
      'echo.mesh',
      '7000',
      String(seconds),
      String(concurrency),
      String(holdMs),
    ]);
    let out = '';
    child.stdout?.on('data', (d) => (out += d));
    child.stderr?.on('data', (d) => (out += d));
    return new Promise<LoadResult>((resolve, reject) =>
      child.once('exit', () => {
        try {
          resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as LoadResult);
        } catch {
          reject(new Error(`load client printed: ${out}`));
        }
      }),
    );
  };
  const short = start(4, 0);
  const held = start(2, 3_000);
  await sleep(2_000);
  await during();
  const [a, b] = await Promise.all([short, held]);
  return { short: a, held: b };
}

async function install(host: string, args: string[]) {
  const r = await g(host).exec(['bash', `${SRC}/scripts/install.sh`, ...args], {
    allowFailure: true,
    timeoutMs: 180_000,
  });
  if (r.exitCode !== 0 && args.length > 2) {
    // What systemd saw, in the failure message: the journal holds the agent's own error.
    const journal = await g(host).exec(
      ['journalctl', '--no-pager', '-n', '40', '-u', 'weft-agent', '-u', 'weft-controlplane'],
      { allowFailure: true },
    );
    r.stderr += `\n--- journal ---\n${journal.stdout}`;
  }
  return r;
}
const unit = async (host: string, name: string, props: string) =>
  (await g(host).exec(['systemctl', 'show', name, `--property=${props}`])).stdout;

beforeAll(async () => {
  requireRootAndTools(['debootstrap', 'systemd-nspawn', 'nsenter', 'ip', 'iptables']);
  const rootfs = await timed('rootfs', ensureRootfs);
  if (rootfs.builtSeconds) timings.debootstrap = rootfs.builtSeconds;
  const tag = randomBytes(2).toString('hex');
  lab = await Lab.up({
    name: `wh${tag}`,
    hosts: [{ name: 'cp' }, { name: 'node1' }, { name: 'node2' }],
  });
  const logs = mkdtempSync(join(tmpdir(), 'weft-hosts-'));
  await timed('boot', () =>
    Promise.all(
      ['cp', 'node1', 'node2'].map(async (name) => {
        const guest = await Guest.boot({
          machine: `wh${tag}-${name}`,
          rootfs: rootfs.dir,
          netns: lab.host(name).netns,
          // The guest runs the host's Node (nodesource, not a Debian package): bound, not fetched.
          binds: { [CHECKOUT]: SRC, [process.execPath]: '/usr/bin/node' },
          logFile: join(logs, `${name}.log`),
        });
        guests.set(name, guest);
      }),
    ),
  );
}, 900_000);

afterAll(async () => {
  console.log(`host test timings (s): ${JSON.stringify(timings)}`);
  await Promise.all([...guests.values()].map((guest) => guest.stop().catch(() => undefined)));
  await lab?.down();
}, 120_000);

describe('weft on hosts that boot systemd', () => {
  it('install.sh refuses a missing or wrong flag and changes nothing', async () => {
    const missing = await install('node1', ['--control-plane', '10.0.0.1:15012']);
    expect(missing.exitCode).not.toBe(0);
    expect(missing.stderr).toContain('missing --token');
    const wrong = await install('node1', ['--role', 'router']);
    expect(wrong.stderr).toContain('--role must be agent or controlplane');
    const pin = await install('node1', [
      '--control-plane',
      'cp:15012',
      '--token',
      't',
      '--ca-pin',
      'xyz',
    ]);
    expect(pin.stderr).toContain('--ca-pin must be 64 lowercase hex digits');
    const left = await g('node1').sh(
      'ls -d /opt/weft /etc/weft /usr/local/bin/weft 2>/dev/null; getent passwd weft; true',
    );
    expect(left.stdout.trim()).toBe('');
  });

  it('installs a control plane and two agents; echo on node1 is reached by name from node2', async () => {
    await timed('install cp', async () => {
      const r = await install('cp', ['--role', 'controlplane']);
      expect(r.exitCode, r.stderr + r.stdout).toBe(0);
    });
    await until(
      'the control plane answers',
      async () =>
        (await g('cp').exec(['weft', 'get', 'services'], { allowFailure: true })).exitCode === 0,
    );
    await g('cp')
      .exec(['weft', 'apply', '-f', '-'], { input: SERVICES })
      .catch(async () => {
        await g('cp').sh(
          `cat > /root/services.yaml <<'Y'\n${SERVICES}Y\nweft apply -f /root/services.yaml`,
        );
      });
    const cp = `${lab.host('cp').address}:15012`;
    for (const [node, extra] of [
      ['node1', ['--workload', 'echo:7000:weftapp']],
      ['node2', []],
    ] as const) {
      const services = node === 'node1' ? ['--services', 'echo'] : [];
      const token = (
        await g('cp').exec(['weft', 'token', 'create', '--node', node, ...services, '--ttl', '1h'])
      ).stdout;
      const t = /^token:\s+(\S+)/m.exec(token)![1]!;
      const pin = /^CA pin:\s+(\S+)/m.exec(token)![1]!;
      await g(node).exec(['useradd', '--system', 'weftapp']);
      await timed(`install ${node}`, async () => {
        const r = await install(node, [
          '--control-plane',
          cp,
          '--token',
          t,
          '--ca-pin',
          pin,
          '--hostname',
          node,
          '--dns',
          ...extra,
        ]);
        expect(r.exitCode, r.stderr + r.stdout).toBe(0);
      });
      expect((await g(node).exec(['systemctl', 'is-active', 'weft-agent'])).stdout.trim()).toBe(
        'active',
      );
    }
    await g('node1').exec([
      'systemd-run',
      '--unit=demo-echo',
      '--uid=weftapp',
      'node',
      ECHO,
      '7000',
    ]);
    const data = await g('node1').exec(['stat', '-c', '%a %U', '/var/lib/weft']);
    expect(data.stdout.trim()).toBe('700 weft');
    await until('echo.mesh answers on node2', async () => {
      const r = await g('node2').exec(
        ['runuser', '-u', 'weftapp', '--', 'node', LOAD, 'echo.mesh', '7000', '1', '1'],
        { allowFailure: true },
      );
      return /"failed":0/.test(r.stdout) && !/"ok":0,/.test(r.stdout);
    });
    // Type=notify: READY=1 came with a snapshot; STATUS= follows the sync state.
    expect(await unit('node2', 'weft-agent', 'StatusText')).toMatch(
      /StatusText=sync connected, snapshot v\d+, control plane /,
    );
  }, 600_000);

  it('systemctl restart weft-agent under load fails no connection (client and server side)', async () => {
    for (const host of ['node2', 'node1']) {
      const before = await unit(host, 'weft-agent', 'MainPID');
      const load = await underLoad(12, async () => {
        await g(host).exec(['systemctl', 'restart', 'weft-agent']);
      });
      console.log(`restart of ${host}'s agent under load: ${JSON.stringify(load)}`);
      expect(await unit(host, 'weft-agent', 'MainPID')).not.toBe(before);
      expect(load.short.errors).toEqual([]);
      expect(load.held.errors).toEqual([]);
      expect(load.short.ok).toBeGreaterThan(50);
      expect(load.held.ok).toBeGreaterThan(3);
    }
  }, 120_000);

  it('an upgrade in place (install.sh again) under load fails no connection', async () => {
    const load = await underLoad(30, async () => {
      const r = await install('node2', []);
      expect(r.exitCode, r.stderr + r.stdout).toBe(0);
      expect(r.stdout).toContain('upgrading');
    });
    console.log(`upgrade of node2 under load: ${JSON.stringify(load)}`);
    expect(load.short.errors).toEqual([]);
    expect(load.held.errors).toEqual([]);
  }, 180_000);

  it('systemctl kill -s KILL weft-agent: systemd restarts it and traffic recovers', async () => {
    const restarts = async () =>
      Number(/NRestarts=(\d+)/.exec(await unit('node2', 'weft-agent', 'NRestarts'))![1]);
    const before = await restarts();
    // --kill-who=main: in nspawn on a cgroup v1 host, signalling the whole cgroup fails (EIO);
    // the agent is the unit's only process, so this is the same crash.
    await g('node2').exec(['systemctl', 'kill', '--kill-who=main', '-s', 'KILL', 'weft-agent']);
    await until('systemd restarted the agent', async () => (await restarts()) > before, 30_000);
    await until(
      'the agent is active',
      async () =>
        (
          await g('node2').exec(['systemctl', 'is-active', 'weft-agent'], { allowFailure: true })
        ).stdout.trim() === 'active',
    );
    const load = await underLoad(4, async () => {});
    expect(load.short.failed + load.held.failed).toBe(0);
    expect(load.short.ok).toBeGreaterThan(10);
  }, 120_000);

  it('an invalid config: the error is in the journal and there is no restart loop', async () => {
    await g('node2').sh(
      'cp /etc/weft/agent.yaml /root/agent.yaml.good && sed -i "s/^drainMs: .*/drainMs: soon/" /etc/weft/agent.yaml',
    );
    await g('node2').exec(['systemctl', 'restart', 'weft-agent'], { allowFailure: true });
    await sleep(6_000);
    const state = await unit('node2', 'weft-agent', 'ActiveState,NRestarts,ExecMainStatus');
    expect(state).toContain('ActiveState=failed');
    expect(state).toContain('ExecMainStatus=78');
    expect(state).toContain('NRestarts=0');
    const journal = await g('node2').sh(
      'journalctl -u weft-agent -o cat --no-pager | grep WEFT_E_CONFIG',
    );
    expect(journal.stdout).toMatch(/WEFT_E_CONFIG: \/etc\/weft\/agent.yaml: drainMs/);
    await g('node2').sh(
      'cp /root/agent.yaml.good /etc/weft/agent.yaml && systemctl reset-failed weft-agent && systemctl start weft-agent',
    );
    expect((await g('node2').exec(['systemctl', 'is-active', 'weft-agent'])).stdout.trim()).toBe(
      'active',
    );
  }, 60_000);

  it('uninstall.sh leaves no rule, unit, user or file behind', async () => {
    for (const host of ['node2', 'cp']) {
      const r = await g(host).exec(['bash', `${SRC}/scripts/uninstall.sh`]);
      expect(r.exitCode).toBe(0);
      const left = await g(host).sh(
        'iptables-save | grep -i weft; ip6tables-save | grep -i weft; ls /etc/systemd/system | grep weft; ' +
          'ls -d /opt/weft* /etc/weft /var/lib/weft /usr/local/bin/weft 2>/dev/null; getent passwd weft; getent group weft; ' +
          'systemctl list-unit-files --no-legend "weft*"; ' +
          'systemctl list-units --all --no-legend --state=active,activating,deactivating,failed "weft*"; true',
      );
      expect(left.stdout.trim(), host).toBe('');
    }
  }, 120_000);
});

describe('the Vagrantfile', () => {
  it('passes `vagrant validate` when vagrant is installed, and provisions with install.sh', async () => {
    const vagrantfile = readFileSync(join(CHECKOUT, 'Vagrantfile'), 'utf8');
    for (const vm of ['controlplane', 'node1', 'node2']) expect(vagrantfile).toContain(vm);
    expect(vagrantfile).toContain('debian/bookworm64');
    expect(vagrantfile).toContain('/vagrant/scripts/install.sh --role controlplane');
    const vagrant = await run('sh', ['-c', 'command -v vagrant'], { allowFailure: true });
    if (vagrant.exitCode !== 0) {
      // Not installed here (and not installed by the tests): only the checks above apply.
      console.log('vagrant is not installed: `vagrant validate` not run');
      return;
    }
    const r = await run('vagrant', ['validate'], {
      allowFailure: true,
      env: { VAGRANT_CWD: CHECKOUT },
    });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
  });
});
