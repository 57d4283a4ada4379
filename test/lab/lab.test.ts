// The lab itself, as root: hosts reach each other over IPv4 and IPv6 and nothing else,
// processes run as their users, and down (or an up after a crash) leaves nothing behind.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isWeftError } from '../../src/errors.js';
import { DEFAULT_STATE_DIR, ensureUser, Lab, type LabSpecInput } from '../../src/lab/index.js';
import { readStartTime } from '../../src/lab/processes.js';
import { requireRootAndTools } from '../helpers/prereqs.js';

const ROOT = join(import.meta.dirname, '..', '..');
const used = new Set<string>();
/** `lt` + 4 random characters: never the name of another helper's lab. */
function labName(): string {
  const name = `lt${randomBytes(2).toString('hex')}`;
  used.add(name);
  return name;
}

// A TCP server answering "hello from <host>" on [::]:PORT (dual stack), and a client that
// prints the answer, retrying while the server is still starting (ECONNREFUSED) for up to
// retryMs (argv[3], default 8000).
const serverJs = (port: number) =>
  `require('node:net').createServer((s) => s.end('hello from ' + process.env.WEFT_LAB_HOST + '\\n')).listen(${port}, '::')`;
const clientJs = `
const net = require('node:net');
const [host, port, retryMs = '8000'] = process.argv.slice(1);
const deadline = Date.now() + Number(retryMs);
function attempt() {
  const s = net.connect({ host, port: Number(port), timeout: 2000 });
  let data = '';
  s.on('data', (d) => { data += d; });
  s.on('end', () => { process.stdout.write(data); process.exit(0); });
  s.on('timeout', () => { console.error('ETIMEDOUT'); process.exit(2); });
  s.on('error', (e) => {
    if (e.code === 'ECONNREFUSED' && Date.now() < deadline) return setTimeout(attempt, 100);
    console.error(e.code); process.exit(1);
  });
}
attempt();
`;

function netnsList(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter(Boolean);
}

function rootLinks(): Set<string> {
  const out = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' });
  return new Set(
    out
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(':').slice(0, 2).join(':')),
  );
}

function alive(p: { pid: number; startTime: string }): boolean {
  return readStartTime(p.pid) === p.startTime;
}

/** Nothing of lab `name` remains on the machine. */
function expectGone(name: string): void {
  expect(netnsList().filter((n) => n.startsWith(`${name}-`))).toEqual([]);
  expect(existsSync(`/etc/netns/${name}-a`)).toBe(false);
  expect(existsSync(join(DEFAULT_STATE_DIR, name))).toBe(false);
}

function uidOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(status.match(/^Uid:\s+(\d+)/m)![1]);
}

const threeHosts = (name: string): LabSpecInput => ({
  name,
  hosts: [
    { name: 'a' },
    {
      name: 'b',
      processes: [
        { name: 'web', command: [process.execPath, '-e', serverJs(8080)], user: 'weftapp' },
      ],
    },
    { name: 'c' },
  ],
});

beforeAll(async () => {
  requireRootAndTools(['ip', 'setpriv', 'useradd', 'getent']);
  await ensureUser('weftapp');
});

afterAll(async () => {
  for (const name of used) await Lab.teardown(name);
});

describe('a three-host lab', () => {
  let lab: Lab;
  let name: string;
  let linksBefore: Set<string>;
  let monitor: ChildProcess;
  let monitorLog = '';
  let outside: Server;
  let outsideConnections = 0;
  let spawned: ChildProcess;

  beforeAll(async () => {
    name = labName();
    linksBefore = rootLinks();
    // Watches the root namespace for any link the lab might create there, even briefly.
    monitor = spawn('ip', ['-o', 'monitor', 'link'], { stdio: ['ignore', 'pipe', 'ignore'] });
    monitor.stdout!.on('data', (d) => {
      monitorLog += d;
    });
    outside = createServer((s) => {
      outsideConnections++;
      s.end('leaked\n');
    });
    await new Promise<void>((resolve) => outside.listen(0, '0.0.0.0', resolve));
    lab = await Lab.up(threeHosts(name));
  });

  afterAll(async () => {
    await lab?.down();
    monitor?.kill();
    outside?.close();
  });

  const connect = (from: string, host: string, port: number, retryMs = 8000) =>
    lab.exec(from, [process.execPath, '-e', clientJs, host, String(port), String(retryMs)], {
      allowFailure: true,
    });

  it('gives each host its addresses and a gateway on the switch', () => {
    expect(lab.hosts().map((h) => [h.name, h.netns, h.address, h.address6, h.iface])).toEqual([
      ['a', `${name}-a`, '10.77.0.1', 'fd00:77::1', 'eth0'],
      ['b', `${name}-b`, '10.77.0.2', 'fd00:77::2', 'eth0'],
      ['c', `${name}-c`, '10.77.0.3', 'fd00:77::3', 'eth0'],
    ]);
    expect(lab.gateway).toBe('10.77.0.254');
  });

  it('lets hosts reach each other over IPv4 and IPv6', async () => {
    const b = lab.host('b');
    for (const address of [b.address, b.address6]) {
      for (const from of ['a', 'c']) {
        const r = await connect(from, address, 8080);
        expect(r.stderr).toBe('');
        expect(r.stdout).toBe('hello from b\n');
      }
    }
  });

  it('runs spawned processes inside a host, reachable from the others', async () => {
    spawned = lab.spawn('c', [process.execPath, '-e', serverJs(9000)]);
    const r = await connect('a', lab.host('c').address6, 9000);
    expect(r.stdout).toBe('hello from c\n');
  });

  it('runs spec processes as their user', async () => {
    const [web] = (await lab.status()).processes;
    expect(web).toMatchObject({ host: 'b', name: 'web', user: 'weftapp', running: true });
    const weftapp = Number(execFileSync('id', ['-u', 'weftapp'], { encoding: 'utf8' }));
    expect(uidOf(web!.pid)).toBe(weftapp);
  });

  it('runs exec as root or as a user, and reports failures', async () => {
    expect((await lab.exec('a', ['id', '-un'])).stdout).toBe('root\n');
    expect((await lab.exec('a', ['id', '-un'], { user: 'weftapp' })).stdout).toBe('weftapp\n');
    expect((await lab.exec('a', ['cat'], { input: 'piped' })).stdout).toBe('piped');
    const failed = await lab.exec('a', ['sh', '-c', 'exit 3'], { allowFailure: true });
    expect(failed.exitCode).toBe(3);
    await expect(lab.exec('a', ['false'])).rejects.toSatisfy((e) => isWeftError(e, 'WEFT_E_LAB'));
    await expect(lab.exec('nohost', ['true'])).rejects.toSatisfy((e) =>
      isWeftError(e, 'WEFT_E_NOT_FOUND'),
    );
  });

  it('gives each host its own resolv.conf and hosts file', async () => {
    const resolv = (await lab.exec('a', ['cat', '/etc/resolv.conf'])).stdout;
    expect(resolv).toContain(`# weft lab ${name}, host a`);
    expect(resolv).toContain('nameserver 127.0.0.1');
    expect((await lab.exec('a', ['getent', 'hosts', 'c'])).stdout).toMatch(/^10\.77\.0\.3\s+c$/m);
  });

  it('lists only lab routes in a host', async () => {
    const routes = async (family: string) =>
      (await lab.exec('a', ['ip', family, 'route', 'show', 'table', 'all'])).stdout
        .trim()
        .split('\n')
        .filter((l) => !/^(local|multicast|broadcast) /.test(l)); // the host's own addresses
    const v4 = await routes('-4');
    expect(v4.map((l) => l.split(' ')[0]).sort()).toEqual(['10.77.0.0/24', 'default']);
    expect(v4.find((l) => l.startsWith('default'))).toContain('via 10.77.0.254 dev eth0');
    const v6 = await routes('-6');
    expect(v6.map((l) => l.split(' ')[0]).sort()).toEqual(['default', 'fd00:77::/64', 'fe80::/64']);
    expect(v6.find((l) => l.startsWith('default'))).toContain('via fd00:77::fe dev eth0');
  });

  it('reaches nothing outside the lab', async () => {
    // The switch namespace neither forwards nor has anywhere to forward to.
    const sw = lab.switchNetns;
    const forwarding = execFileSync(
      'ip',
      ['netns', 'exec', sw, 'cat', '/proc/sys/net/ipv4/ip_forward'],
      { encoding: 'utf8' },
    );
    expect(forwarding.trim()).toBe('0');
    const swRoutes = execFileSync('ip', ['-n', sw, 'route'], { encoding: 'utf8' });
    expect(swRoutes).not.toContain('default');
    // A server of ours in the root namespace, on this machine's own address: unreachable.
    const own = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && i.family === 'IPv4' && !i.internal);
    expect(own, 'this machine has a non-loopback IPv4 address').toBeDefined();
    const port = (outside.address() as { port: number }).port;
    const r = await connect('a', own!.address, port, 0);
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(outsideConnections).toBe(0);
    const lo = await connect('a', '127.0.0.1', port, 0);
    expect(lo.exitCode).not.toBe(0);
  });

  it('reports its status after attach from another process', async () => {
    const attached = await Lab.attach(name);
    const status = await attached.status();
    expect(status.up).toBe(true);
    expect(status.hosts.map((h) => h.present)).toEqual([true, true, true]);
    expect(status.processes.map((p) => [p.name, p.running])).toEqual([['web', true]]);
  });

  it('down stops every process and removes everything, and says so only once', async () => {
    const [web] = lab.processes();
    const spawnedExit = new Promise((resolve) => spawned.once('exit', resolve));
    const spawnedRef = { pid: spawned.pid!, startTime: readStartTime(spawned.pid!)! };
    expect(alive(web!)).toBe(true);

    const report = await lab.down();
    expect(report.wasUp).toBe(true);
    expect(report.namespaces.sort()).toEqual([
      `${name}-a`,
      `${name}-b`,
      `${name}-c`,
      `${name}-switch`,
    ]);
    await spawnedExit;
    expect(alive(web!)).toBe(false);
    expect(alive(spawnedRef)).toBe(false);
    expectGone(name);
    expect(existsSync(`/etc/netns/${name}-b`)).toBe(false);

    // No link of the lab ever appeared in the root namespace.
    const added = [...rootLinks()].filter((l) => !linksBefore.has(l));
    expect(added.filter((l) => l.includes(`${name}-`) || l.includes(' br0'))).toEqual([]);
    const ours = monitorLog
      .split('\n')
      .filter((l) => l.includes(`${name}-`) || /^(Deleted )?\d+: br0[:@]/.test(l));
    expect(ours).toEqual([]);

    const again = await lab.down();
    expect(again.wasUp).toBe(false);
  });
});

describe('up and down', () => {
  it('twice in a row leaves nothing behind', async () => {
    const name = labName();
    const linksBefore = rootLinks();
    for (let round = 0; round < 2; round++) {
      const started = Date.now();
      const lab = await Lab.up({
        name,
        hosts: [{ name: 'a' }, { name: 'b' }, { name: 'c' }, { name: 'd' }],
      });
      console.log(`4-host lab up in ${Date.now() - started} ms`);
      expect((await lab.status()).up).toBe(true);
      await lab.down();
      expectGone(name);
    }
    const added = [...rootLinks()].filter((l) => !linksBefore.has(l));
    expect(added.filter((l) => l.includes(`${name}-`))).toEqual([]);
  });

  it('fails cleanly when building fails half way', async () => {
    const name = labName();
    const spec: LabSpecInput = {
      name,
      hosts: [
        { name: 'a', processes: [{ name: 'p', command: 'sleep 100', cwd: '/does/not/exist' }] },
      ],
    };
    await expect(Lab.up(spec)).rejects.toSatisfy(
      (e) =>
        isWeftError(e, 'WEFT_E_LAB') && /starting process a\/p failed/.test((e as Error).message),
    );
    expectGone(name);
  });
});

describe('up over the leftovers of a crash', () => {
  const spec = (name: string): LabSpecInput => ({
    name,
    hosts: [
      { name: 'a', processes: [{ name: 'sleeper', command: ['sleep', '1000'] }] },
      { name: 'b' },
    ],
  });

  for (const keepState of [false, true]) {
    it(`cleans them and comes up (state file ${keepState ? 'kept' : 'deleted'})`, async () => {
      const name = labName();
      const crashed = await Lab.up(spec(name));
      const [sleeper] = crashed.processes();
      // A process the state never knew about, as a crashed test would leave.
      const stray = spawn('ip', ['netns', 'exec', `${name}-b`, 'sleep', '1000'], {
        detached: true,
        stdio: 'ignore',
      });
      stray.unref();
      await new Promise((resolve) => stray.once('spawn', resolve));
      const strayRef = { pid: stray.pid!, startTime: readStartTime(stray.pid!)! };
      if (!keepState) rmSync(join(DEFAULT_STATE_DIR, name), { recursive: true });
      // The crash: `crashed` is simply never taken down.

      const lab = await Lab.up(spec(name));
      expect(alive(sleeper!)).toBe(false);
      expect(alive(strayRef)).toBe(false);
      expect(
        netnsList()
          .filter((n) => n.startsWith(`${name}-`))
          .sort(),
      ).toEqual([`${name}-a`, `${name}-b`, `${name}-switch`]);
      const [fresh] = lab.processes();
      expect(alive(fresh!)).toBe(true);
      const b = lab.host('b').address;
      const r = await lab.exec('a', [process.execPath, '-e', clientJs, b, '1', '0'], {
        allowFailure: true,
      });
      expect(r.stderr.trim()).toBe('ECONNREFUSED'); // b answers (with a reset): the link is there
      await lab.down();
      expectGone(name);
    });
  }
});

describe('weft lab (CLI)', () => {
  let dir: string;
  let specFile: string;
  let name: string;
  const weft = (...args: string[]) =>
    execa(process.execPath, [join(ROOT, 'bin', 'weft'), 'lab', ...args], {
      reject: false,
      timeout: 30_000,
    });

  beforeAll(async () => {
    name = labName();
    dir = mkdtempSync(join(tmpdir(), 'weft-lab-test-'));
    specFile = join(dir, 'spec.yaml');
    writeFileSync(
      specFile,
      [
        `name: ${name}`,
        'hosts:',
        '  - name: a',
        '  - name: b',
        '    processes:',
        '      - name: web',
        `        command: ${JSON.stringify([process.execPath, '-e', serverJs(8080)])}`,
        '        user: weftapp',
        '',
      ].join('\n'),
    );
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('brings a lab up, shows it, runs commands in it and takes it down', async () => {
    const up = await weft('up', '-f', specFile);
    expect(up.stderr).toBe('');
    expect(up.exitCode).toBe(0);
    expect(up.stdout).toMatch(new RegExp(`^a\\s+${name}-a\\s+10\\.77\\.0\\.1\\s+fd00:77::1$`, 'm'));
    expect(up.stdout).toContain(`weft lab exec --lab ${name} a -- sh`);

    const status = await weft('status', name);
    expect(status.exitCode).toBe(0);
    expect(status.stdout).toMatch(/^b\s+web\s+\d+\s+weftapp\s+running/m);
    const json = JSON.parse((await weft('status', name, '--json')).stdout);
    expect(json.hosts.map((h: { address: string }) => h.address)).toEqual([
      '10.77.0.1',
      '10.77.0.2',
    ]);

    const resolv = await weft('exec', '--lab', name, 'a', '--', 'cat', '/etc/resolv.conf');
    expect(resolv.exitCode).toBe(0);
    expect(resolv.stdout).toContain('nameserver 127.0.0.1');
    const asUser = await weft('exec', '--lab', name, '--user', 'weftapp', 'a', '--', 'id', '-un');
    expect(asUser.stdout.trim()).toBe('weftapp');
    const reach = await weft(
      'exec',
      '--lab',
      name,
      'a',
      '--',
      process.execPath,
      '-e',
      clientJs,
      '10.77.0.2',
      '8080',
    );
    expect(reach.stdout.trim()).toBe('hello from b');
    expect((await weft('exec', '--lab', name, 'a', '--', 'sh', '-c', 'exit 7')).exitCode).toBe(7);
    const noHost = await weft('exec', '--lab', name, 'z', '--', 'true');
    expect(noHost.exitCode).toBe(1);
    expect(noHost.stderr).toContain('WEFT_E_NOT_FOUND');

    const down = await weft('down', '-f', specFile);
    expect(down.exitCode).toBe(0);
    expect(down.stdout).toContain(`lab ${name} is down`);
    expectGone(name);
    const again = await weft('down', name);
    expect(again.exitCode).toBe(0);
    expect(again.stdout).toContain('is not up');
    const gone = await weft('status', name);
    expect(gone.exitCode).toBe(1);
    expect(gone.stderr).toContain(`lab ${name} is not up`);
  });

  it('reports a bad spec with its file and field', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, `name: ${name}\nhosts:\n  - name: a\n    address: 10.1.2.3\n`);
    const r = await weft('up', '-f', bad);
    expect(r.exitCode).toBe(1);
    expect(r.stderr.trim()).toBe(
      `weft: WEFT_E_CONFIG: ${bad}: hosts[0].address: 10.1.2.3 is outside the subnet 10.77.0.0/24`,
    );
  });
});
