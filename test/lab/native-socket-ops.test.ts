// nativeSocketOps against the real kernel, as root: SO_ORIGINAL_DST behind iptables REDIRECT
// in a lab namespace, transparent listeners behind TPROXY across a veth pair, and owner
// lookups of a connection held by another user in a cgroup of our own.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import net from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isWeftError } from '../../src/errors.js';
import { findCgroup2Mount } from '../../src/native/cgroup-paths.js';
import { nativeSocketOps } from '../../src/native/socket-ops.js';
import { run } from '../../src/sys/run.js';
import { requireRootAndTools } from '../helpers/prereqs.js';

const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const fixture = (name: string) => join(projectRoot, 'test/fixtures', name);

const tag = randomBytes(3).toString('hex');
const proxyNs = `weftnat-${tag}`; // REDIRECT and TPROXY rules, the fixtures' listeners
const clientNs = `weftnat-${tag}-c`; // a client across a veth pair, for TPROXY
const children = new Set<ChildProcess>();
const cgroupDirs: string[] = [];

async function ip(...args: string[]): Promise<void> {
  await run('ip', args);
}

async function inNs(ns: string, cmd: string, ...args: string[]): Promise<void> {
  await run('ip', ['netns', 'exec', ns, cmd, ...args]);
}

async function buildLab(): Promise<void> {
  await ip('netns', 'add', proxyNs);
  await ip('netns', 'add', clientNs);
  for (const ns of [proxyNs, clientNs]) await ip('-n', ns, 'link', 'set', 'lo', 'up');
  // This kernel has no dummy driver: a veth pair with both ends in the namespace holds the
  // addresses the REDIRECT test dials.
  await ip('-n', proxyNs, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
  await ip('-n', proxyNs, 'addr', 'add', '10.200.0.1/24', 'dev', 'v0');
  await ip('-n', proxyNs, 'addr', 'add', 'fd00:200::1/64', 'dev', 'v0', 'nodad');
  for (const dev of ['v0', 'v1']) await ip('-n', proxyNs, 'link', 'set', dev, 'up');
  for (const [port, toPort] of [
    ['80', '15001'],
    ['81', '15002'],
  ] as const) {
    const redirect = ['-p', 'tcp', '--dport', port, '-j', 'REDIRECT', '--to-ports', toPort];
    await inNs(
      proxyNs,
      'iptables',
      '-t',
      'nat',
      '-A',
      'OUTPUT',
      '-d',
      '10.200.0.0/24',
      ...redirect,
    );
    await inNs(
      proxyNs,
      'ip6tables',
      '-t',
      'nat',
      '-A',
      'OUTPUT',
      '-d',
      'fd00:200::/64',
      ...redirect,
    );
  }

  // TPROXY: the client namespace routes 10.202.0.0/24 and fd00:202::/64 to the proxy
  // namespace, which delivers them locally to the transparent listeners (Istio's recipe:
  // mark, policy rule, local default route in its own table).
  await ip(
    '-n',
    proxyNs,
    'link',
    'add',
    't0',
    'type',
    'veth',
    'peer',
    'name',
    't1',
    'netns',
    clientNs,
  );
  await ip('-n', proxyNs, 'addr', 'add', '10.201.0.1/24', 'dev', 't0');
  await ip('-n', proxyNs, 'addr', 'add', 'fd00:201::1/64', 'dev', 't0', 'nodad');
  await ip('-n', proxyNs, 'link', 'set', 't0', 'up');
  await ip('-n', clientNs, 'addr', 'add', '10.201.0.2/24', 'dev', 't1');
  await ip('-n', clientNs, 'addr', 'add', 'fd00:201::2/64', 'dev', 't1', 'nodad');
  await ip('-n', clientNs, 'link', 'set', 't1', 'up');
  await ip('-n', clientNs, 'route', 'add', '10.202.0.0/24', 'via', '10.201.0.1');
  await ip('-n', clientNs, '-6', 'route', 'add', 'fd00:202::/64', 'via', 'fd00:201::1');
  const tproxy = (port: string, onPort: string) => [
    ...['-t', 'mangle', '-A', 'PREROUTING', '-p', 'tcp', '--dport', port],
    ...['-j', 'TPROXY', '--on-port', onPort, '--tproxy-mark', '0x1/0x1'],
  ];
  await inNs(proxyNs, 'iptables', '-d', '10.202.0.0/24', ...tproxy('80', '15003'));
  await inNs(proxyNs, 'iptables', '-d', '10.202.0.0/24', ...tproxy('81', '15005'));
  await inNs(proxyNs, 'ip6tables', '-d', 'fd00:202::/64', ...tproxy('80', '15004'));
  for (const family of ['-4', '-6']) {
    await ip('-n', proxyNs, family, 'rule', 'add', 'fwmark', '1', 'lookup', '100');
    const all = family === '-4' ? '0.0.0.0/0' : '::/0';
    await ip('-n', proxyNs, family, 'route', 'add', 'local', all, 'dev', 'lo', 'table', '100');
  }
}

/** Starts a process and hands out its stdout lines, parsed as JSON, one at a time. */
function start(cmd: string, args: string[]) {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  async function next(): Promise<Record<string, unknown>> {
    const { value, done } = await lines.next();
    if (done) throw new Error(`${cmd} ${args.join(' ')} ended early: ${stderr.trim()}`);
    return JSON.parse(value) as Record<string, unknown>;
  }
  return { child, next };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** `nc` in the client namespace: what the server sent, or the exit code when it failed. */
async function ncFromClient(host: string, port: number, waitSeconds: number) {
  const args = ['netns', 'exec', clientNs, 'nc', '-w', String(waitSeconds), host, String(port)];
  const result = await run('ip', args, { allowFailure: true, input: '' });
  return { exitCode: result.exitCode, reply: result.stdout.trim() };
}

beforeAll(async () => {
  requireRootAndTools(['ip', 'iptables', 'ip6tables', 'setpriv', 'nc']);
  await buildLab();
});

afterAll(async () => {
  await Promise.all([...children].map(stop));
  for (const ns of [clientNs, proxyNs])
    await run('ip', ['netns', 'del', ns], { allowFailure: true });
  for (const dir of cgroupDirs.reverse()) {
    if (existsSync(dir)) rmdirSync(dir);
  }
});

describe('originalDestination behind iptables REDIRECT', () => {
  it('reports exactly where IPv4 and IPv6 clients connected, on every kind of listener', async () => {
    const result = await run('ip', [
      'netns',
      'exec',
      proxyNs,
      process.execPath,
      fixture('native-original-dst.mjs'),
    ]);
    const probes = JSON.parse(result.stdout) as Array<Record<string, unknown>>;
    const byTarget = new Map(probes.map((p) => [p.target, p]));
    const original = (target: string) => byTarget.get(target)?.original;

    expect(original('10.200.0.1:80')).toEqual({ address: '10.200.0.1', port: 80, family: 4 });
    expect(original('fd00:200::1:80')).toEqual({ address: 'fd00:200::1', port: 80, family: 6 });
    // A dual-stack listener sees the IPv4 client as ::ffff:127.0.0.1; the answer is plain IPv4.
    expect(byTarget.get('10.200.0.1:81')?.listener).toBe('::ffff:127.0.0.1');
    expect(original('10.200.0.1:81')).toEqual({ address: '10.200.0.1', port: 81, family: 4 });
    expect(original('fd00:200::1:81')).toEqual({ address: 'fd00:200::1', port: 81, family: 6 });
    // Conntrack is active in this namespace, so direct connections have an entry, without NAT.
    for (const target of ['127.0.0.1:15001', '::1:15002']) {
      expect(byTarget.get(target)?.error).toMatchObject({ code: 'WEFT_E_NOT_REDIRECTED' });
    }
  });
});

describe('transparentListener', () => {
  it('serves TPROXY connections for foreign addresses after server.listen({ fd })', async () => {
    const proxy = start('ip', [
      'netns',
      'exec',
      proxyNs,
      process.execPath,
      fixture('native-tproxy-listener.mjs'),
    ]);
    const ready = await proxy.next();
    expect(ready).toMatchObject({ event: 'ready', nonLocal: { ok: true } });
    // Without IP_TRANSPARENT the same bind fails: the option really is set.
    expect(ready.plainNonLocal).toEqual({ ok: false, code: 'EADDRNOTAVAIL' });

    const v4 = await ncFromClient('10.202.0.7', 80, 3);
    expect(JSON.parse(v4.reply)).toEqual({ name: 'v4', localAddress: '10.202.0.7', localPort: 80 });
    expect(await proxy.next()).toMatchObject({
      event: 'accepted',
      name: 'v4',
      remoteAddress: '10.201.0.2',
    });

    const v6 = await ncFromClient('fd00:202::7', 80, 3);
    expect(JSON.parse(v6.reply)).toEqual({
      name: 'v6',
      localAddress: 'fd00:202::7',
      localPort: 80,
    });
    expect(await proxy.next()).toMatchObject({
      event: 'accepted',
      name: 'v6',
      remoteAddress: 'fd00:201::2',
    });

    // Control: TPROXY drops what it would hand to a listener without IP_TRANSPARENT.
    const plain = await ncFromClient('10.202.0.7', 81, 1);
    expect(plain.exitCode).not.toBe(0);
    expect(plain.reply).toBe('');
    await stop(proxy.child);
  });

  it('gives Node a working listener, and EADDRINUSE for a second one on its port', async () => {
    const fd = nativeSocketOps.transparentListener({ host: '127.0.0.1', port: 0 });
    const server = net.createServer((socket) => socket.end('hello from fd'));
    await new Promise<void>((done) => server.listen({ fd }, done));
    try {
      const { port } = server.address() as net.AddressInfo;
      const reply = await new Promise<string>((done, fail) => {
        let data = '';
        net
          .connect(port, '127.0.0.1')
          .on('data', (chunk) => {
            data += chunk;
          })
          .on('end', () => done(data))
          .on('error', fail);
      });
      expect(reply).toBe('hello from fd');

      let err: unknown;
      try {
        nativeSocketOps.transparentListener({ host: '127.0.0.1', port });
      } catch (e) {
        err = e;
      }
      expect(isWeftError(err, 'WEFT_E_SOCKET')).toBe(true);
      expect((err as Error).message).toContain('EADDRINUSE');
      expect((err as Error).message).toContain('choose another port');
    } finally {
      await new Promise((done) => server.close(done));
    }
  });

  it('says CAP_NET_ADMIN is needed when an unprivileged user asks', async () => {
    const unprivileged = ['--reuid=65534', '--regid=65534', '--clear-groups'];
    const listenerFixture = fixture('native-transparent-listener.mjs');
    const result = await run('setpriv', [
      ...unprivileged,
      process.execPath,
      listenerFixture,
      '127.0.0.1',
      '0',
    ]);
    const outcome = JSON.parse(result.stdout) as { ok: boolean; code: string; message: string };
    expect(outcome).toMatchObject({ ok: false, code: 'WEFT_E_SOCKET' });
    expect(outcome.message).toContain('EPERM');
    expect(outcome.message).toContain('CAP_NET_ADMIN');
  });
});

describe('ownerOf', () => {
  it("names another user's process, its socket, cgroup and systemd unit", async () => {
    const mount = findCgroup2Mount(readFileSync('/proc/self/mountinfo', 'utf8'));
    if (mount === undefined) throw new Error('this test needs a cgroup2 hierarchy mounted');
    // A cgroup shaped like systemd's, so the unit is derived from a real path.
    const slice = `weftnat-${tag}.slice`;
    const unit = `demo-${tag}.service`;
    cgroupDirs.push(join(mount.mountPoint, slice), join(mount.mountPoint, slice, unit));
    mkdirSync(join(mount.mountPoint, slice, unit), { recursive: true });
    const expectedPath = `${mount.mountRoot.replace(/\/$/, '')}/${slice}/${unit}`;

    // Dual-stack listener: the IPv4 client shows up as ::ffff:127.0.0.1, as it would to the agent.
    const server = net.createServer();
    const acceptedP = new Promise<net.Socket>((done) => server.once('connection', done));
    await new Promise<void>((done) => server.listen(0, '::', done));
    const { port } = server.address() as net.AddressInfo;
    const procs = join(mount.mountPoint, slice, unit, 'cgroup.procs');
    const holder = start('sh', [
      '-c',
      `echo $$ > "${procs}" && exec setpriv --reuid=65534 --regid=65534 --clear-groups node "$0" 127.0.0.1 "$1"`,
      fixture('native-hold-connection.mjs'),
      String(port),
    ]);
    try {
      const held = (await holder.next()) as { uid: number; localPort: number; inode: number };
      const accepted = await acceptedP;
      expect(held.uid).toBe(65534);
      expect(accepted.remoteAddress).toBe('::ffff:127.0.0.1');

      const owner = nativeSocketOps.ownerOf({
        localAddress: accepted.remoteAddress!,
        localPort: accepted.remotePort!,
        remoteAddress: accepted.localAddress!,
        remotePort: accepted.localPort!,
      });
      expect(owner).toMatchObject({
        uid: 65534,
        inode: held.inode,
        cgroupPath: expectedPath,
        unit,
      });
      expect(readFileSync(`/proc/${holder.child.pid}/cgroup`, 'utf8')).toContain(
        `0::${expectedPath}\n`,
      );
      expect(owner?.cgroupId).toBe(
        statSync(join(mount.mountPoint, slice, unit), { bigint: true }).ino,
      );
      accepted.destroy();
    } finally {
      holder.child.stdin!.end();
      await stop(holder.child);
      await new Promise((done) => server.close(done));
    }
  });
});
