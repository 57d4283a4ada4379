// nativeSocketOps on plain loopback connections, without root: a connection that was not
// redirected has no original destination, and owner lookups find this process's sockets.
import { fstatSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isWeftError } from '../../src/errors.js';
import { errnoCode } from '../../src/native/native-error.js';
import { socketFd } from '../../src/native/socket-fd.js';
import { nativeSocketOps } from '../../src/native/socket-ops.js';
import { unitOfCgroupPath } from '../../src/native/systemd-unit.js';

interface Pair {
  server: net.Server;
  client: net.Socket;
  accepted: net.Socket;
}

const opened: Pair[] = [];

afterEach(async () => {
  for (const { server, client, accepted } of opened.splice(0)) {
    client.destroy();
    accepted.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** A connected loopback pair: the server listens on `listenHost`, the client dials `dialHost`. */
async function connectPair(listenHost: string, dialHost: string): Promise<Pair> {
  const server = net.createServer();
  const acceptedP = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  await new Promise<void>((resolve) => server.listen(0, listenHost, resolve));
  const { port } = server.address() as net.AddressInfo;
  const client = net.connect(port, dialHost);
  await new Promise<void>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  const pair = { server, client, accepted: await acceptedP };
  opened.push(pair);
  return pair;
}

function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to throw');
}

/** The socket's tuple from the client's side, as the agent would build it from `accepted`. */
function clientTuple(accepted: net.Socket) {
  return {
    localAddress: accepted.remoteAddress!,
    localPort: accepted.remotePort!,
    remoteAddress: accepted.localAddress!,
    remotePort: accepted.localPort!,
  };
}

function ownCgroupPath(): string | undefined {
  const line = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('0::'));
  return line?.slice(3);
}

describe('originalDestination', () => {
  it('throws WEFT_E_NOT_REDIRECTED for the accepted side of a direct connection', async () => {
    const { client, accepted } = await connectPair('127.0.0.1', '127.0.0.1');
    const err = thrownBy(() => nativeSocketOps.originalDestination(accepted));
    expect(isWeftError(err, 'WEFT_E_NOT_REDIRECTED')).toBe(true);
    expect((err as Error).message).toContain(`127.0.0.1:${client.localPort}`);
    // The process and the connection carry on: bytes still flow both ways.
    const echoed = new Promise<string>((resolve) => client.once('data', (d) => resolve(String(d))));
    accepted.once('data', (d) => accepted.write(d));
    client.write('still alive');
    expect(await echoed).toBe('still alive');
  });

  it('throws WEFT_E_NOT_REDIRECTED for the connecting side and for IPv6', async () => {
    const v4 = await connectPair('127.0.0.1', '127.0.0.1');
    expect(
      isWeftError(
        thrownBy(() => nativeSocketOps.originalDestination(v4.client)),
        'WEFT_E_NOT_REDIRECTED',
      ),
    ).toBe(true);
    const v6 = await connectPair('::1', '::1');
    expect(
      isWeftError(
        thrownBy(() => nativeSocketOps.originalDestination(v6.accepted)),
        'WEFT_E_NOT_REDIRECTED',
      ),
    ).toBe(true);
  });

  it('throws WEFT_E_SOCKET for a socket that has no fd any more', async () => {
    const { accepted } = await connectPair('127.0.0.1', '127.0.0.1');
    accepted.destroy();
    const err = thrownBy(() => nativeSocketOps.originalDestination(accepted));
    expect(isWeftError(err, 'WEFT_E_SOCKET')).toBe(true);
    expect((err as Error).message).toContain('no file descriptor');
  });
});

describe('ownerOf', () => {
  it('finds this process as the owner of its IPv4 loopback connection', async () => {
    const { client, accepted } = await connectPair('127.0.0.1', '127.0.0.1');
    const owner = nativeSocketOps.ownerOf(clientTuple(accepted));
    expect(owner).toBeDefined();
    expect(owner!.uid).toBe(process.getuid!());
    expect(owner!.inode).toBe(fstatSync(socketFd(client)).ino);
    // The accepted end is a socket of ours too, with its own inode.
    const serverSide = nativeSocketOps.ownerOf({
      localAddress: accepted.localAddress!,
      localPort: accepted.localPort!,
      remoteAddress: accepted.remoteAddress!,
      remotePort: accepted.remotePort!,
    });
    expect(serverSide?.inode).toBe(fstatSync(socketFd(accepted)).ino);
  });

  it('reports the cgroup path and systemd unit of this process when cgroup v2 is mounted', async () => {
    const { accepted } = await connectPair('127.0.0.1', '127.0.0.1');
    const owner = nativeSocketOps.ownerOf(clientTuple(accepted))!;
    const path = ownCgroupPath();
    const cgroup2 = readFileSync('/proc/self/mountinfo', 'utf8').includes(' - cgroup2 ');
    if (owner.cgroupId !== undefined && path !== undefined && cgroup2) {
      expect(owner.cgroupPath).toBe(path);
      expect(owner.unit).toBe(unitOfCgroupPath(path));
    } else {
      // Kernels before 5.7 send no cgroup id; then there is nothing to map.
      expect(owner.cgroupPath).toBeUndefined();
    }
  });

  it('matches v4-mapped addresses as Node reports them on dual-stack sockets', async () => {
    const { client, accepted } = await connectPair('::', '127.0.0.1');
    expect(accepted.remoteAddress).toBe('::ffff:127.0.0.1');
    const owner = nativeSocketOps.ownerOf(clientTuple(accepted));
    expect(owner?.inode).toBe(fstatSync(socketFd(client)).ino);
  });

  it('finds the owner of an IPv6 connection', async () => {
    const { client, accepted } = await connectPair('::1', '::1');
    const owner = nativeSocketOps.ownerOf(clientTuple(accepted));
    expect(owner?.uid).toBe(process.getuid!());
    expect(owner?.inode).toBe(fstatSync(socketFd(client)).ino);
  });

  it('returns undefined for a tuple no socket has, even when a listener holds the local port', async () => {
    const { server, accepted } = await connectPair('127.0.0.1', '127.0.0.1');
    const tuple = clientTuple(accepted);
    expect(
      nativeSocketOps.ownerOf({ ...tuple, remotePort: tuple.remotePort === 1 ? 2 : 1 }),
    ).toBeUndefined();
    // The kernel's exact lookup falls back to a listener on the local address; that is no match.
    const { port } = server.address() as net.AddressInfo;
    expect(
      nativeSocketOps.ownerOf({
        localAddress: '127.0.0.1',
        localPort: port,
        remoteAddress: '127.0.0.1',
        remotePort: 9,
      }),
    ).toBeUndefined();
    expect(
      nativeSocketOps.ownerOf({
        localAddress: '::1',
        localPort: 1,
        remoteAddress: '::1',
        remotePort: 2,
      }),
    ).toBeUndefined();
  });

  it('names the field when a tuple holds something that is not an address', () => {
    const err = thrownBy(() =>
      nativeSocketOps.ownerOf({
        localAddress: 'localhost',
        localPort: 1,
        remoteAddress: '::1',
        remotePort: 2,
      }),
    );
    expect(isWeftError(err, 'WEFT_E_INTERNAL')).toBe(true);
    expect((err as Error).message).toContain('localAddress');
  });
});

describe('transparentListener options', () => {
  it('names the field when an option is invalid', () => {
    const host = thrownBy(() =>
      nativeSocketOps.transparentListener({ host: 'example.com', port: 1 }),
    );
    expect(isWeftError(host, 'WEFT_E_CONFIG')).toBe(true);
    expect((host as Error).message).toContain('host');
    const port = thrownBy(() =>
      nativeSocketOps.transparentListener({ host: '0.0.0.0', port: 70000 }),
    );
    expect(isWeftError(port, 'WEFT_E_CONFIG')).toBe(true);
    expect((port as Error).message).toContain('port');
    const backlog = thrownBy(() =>
      nativeSocketOps.transparentListener({ host: '::', port: 0, backlog: 0 }),
    );
    expect((backlog as Error).message).toContain('backlog');
  });
});

describe('listening', () => {
  async function listen(options: net.ListenOptions): Promise<{ server: net.Server; port: number }> {
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((resolve) => server.listen({ port: 0, ...options }, resolve));
    return { server, port: (server.address() as net.AddressInfo).port };
  }
  const close = (server: net.Server) => new Promise((resolve) => server.close(resolve));

  it('sees a listener on its address, and not on another', async () => {
    const { server, port } = await listen({ host: '127.0.0.1' });
    try {
      expect(nativeSocketOps.listening('127.0.0.1', port)).toBe(true);
      expect(nativeSocketOps.listening('::ffff:127.0.0.1', port)).toBe(true);
      expect(nativeSocketOps.listening('127.0.0.2', port)).toBe(false);
      expect(nativeSocketOps.listening('::1', port)).toBe(false);
    } finally {
      await close(server);
    }
    expect(nativeSocketOps.listening('127.0.0.1', port)).toBe(false);
  });

  it('counts a dual-stack :: listener for IPv4 and IPv6, a v6-only one for IPv6 only', async () => {
    const dual = await listen({ host: '::' });
    const v6only = await listen({ host: '::', ipv6Only: true });
    try {
      expect(nativeSocketOps.listening('127.0.0.1', dual.port)).toBe(true);
      expect(nativeSocketOps.listening('::1', dual.port)).toBe(true);
      expect(nativeSocketOps.listening('127.0.0.1', v6only.port)).toBe(false);
      expect(nativeSocketOps.listening('::1', v6only.port)).toBe(true);
    } finally {
      await close(dual.server);
      await close(v6only.server);
    }
  });

  it('asks the kernel without connecting to the listener', async () => {
    const { server, port } = await listen({ host: '0.0.0.0' });
    let accepted = 0;
    server.on('connection', () => accepted++);
    try {
      for (let i = 0; i < 20; i++) expect(nativeSocketOps.listening('127.0.0.1', port)).toBe(true);
      // Sentinel: a connection of our own is counted, so the count above was live.
      const sentinel = net.connect(port, '127.0.0.1');
      await new Promise((resolve) => server.once('connection', resolve));
      sentinel.destroy();
      expect(accepted).toBe(1);
    } finally {
      await close(server);
    }
  });

  it('refuses a bad address or port as a caller bug, naming it', () => {
    const err = thrownBy(() => nativeSocketOps.listening('db.example', 3306));
    expect(isWeftError(err, 'WEFT_E_INTERNAL')).toBe(true);
    expect((err as Error).message).toContain('address');
    expect((thrownBy(() => nativeSocketOps.listening('127.0.0.1', 0)) as Error).message).toContain(
      'port',
    );
  });
});

describe('transparentConnect options', () => {
  const good = {
    source: '10.77.0.2',
    target: { address: '127.0.0.1', port: 8080 },
    mark: 15006,
    timeoutMs: 1_000,
  };

  it.each([
    [{ source: 'node1' }, 'source'],
    [{ target: { address: 'localhost', port: 80 } }, 'target.address'],
    [{ target: { address: '127.0.0.1', port: 0 } }, 'target.port'],
    [{ avoidPort: 70_000 }, 'avoidPort'],
    [{ mark: -1 }, 'mark'],
    [{ timeoutMs: 0 }, 'timeoutMs'],
  ])('refuses %o, naming %s, before any socket is made', async (change, field) => {
    const err = await nativeSocketOps
      .transparentConnect({ ...good, ...change })
      .catch((e: unknown) => e);
    expect(isWeftError(err, 'WEFT_E_INTERNAL')).toBe(true);
    expect((err as Error).message).toContain(field);
  });

  it('an already aborted signal stops it before any socket is made', async () => {
    const err = await nativeSocketOps
      .transparentConnect({ ...good, signal: AbortSignal.abort() })
      .catch((e: unknown) => e);
    expect(isWeftError(err, 'WEFT_E_UNAVAILABLE')).toBe(true);
    expect(errnoCode(err)).toBe(undefined);
    expect((err as Error).message).toMatch(/aborted/);
  });
});

describe('errnoCode', () => {
  it('finds the errno name on an error or down its causes', () => {
    const errno = Object.assign(new Error('connect: EPERM'), { code: 'EPERM', syscall: 'x' });
    expect(errnoCode(errno)).toBe('EPERM');
    expect(errnoCode(new Error('wrapped', { cause: new Error('w', { cause: errno }) }))).toBe(
      'EPERM',
    );
    expect(errnoCode(Object.assign(new Error('w'), { code: 'WEFT_E_SOCKET' }))).toBeUndefined();
    expect(errnoCode('EPERM')).toBeUndefined();
  });
});
