// The one interface for socket-level work (original destination, transparent listeners and
// connects, socket owners, listening sockets), so everything above it can run over plain
// sockets with another implementation; nativeSocketOps is the real one, over the native addon.
import { closeSync } from 'node:fs';
import net from 'node:net';
import { WeftError } from '../errors.js';
import { addon, type NativeAddon, type RawSocketOwner } from './addon.js';
import { CgroupPaths } from './cgroup-paths.js';
import { listenerAccepts } from './listener-match.js';
import {
  listenerError,
  listenersLookupError,
  notNattedError,
  originalDestinationError,
  ownerLookupError,
  transparentConnectError,
} from './native-error.js';
import { socketFd } from './socket-fd.js';
import { unitOfCgroupPath } from './systemd-unit.js';

export interface SocketAddress {
  address: string;
  port: number;
  family: 4 | 6;
}

export interface SocketOwner {
  uid: number;
  inode: number;
  /** The socket's cgroup v2 id; absent on kernels older than 5.7. */
  cgroupId?: bigint;
  /** The cgroup's path in the v2 hierarchy, e.g. "/system.slice/redis-server.service". */
  cgroupPath?: string;
  /** The systemd unit the path names, e.g. "redis-server.service". */
  unit?: string;
}

/** A TCP 4-tuple as seen from the owning socket: local = the app's end, remote = its peer. */
export interface SocketTuple {
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
}

export interface TransparentListenerOptions {
  host: string;
  port: number;
  /** listen() backlog; default 511, as Node's. */
  backlog?: number;
  /** false: a plain listening socket (the master's, held for its workers); default true. */
  transparent?: boolean;
  /** SO_REUSEPORT: one socket of a group on the same port (one per worker); default false. */
  reusePort?: boolean;
}

export interface TransparentConnectOptions {
  /** The address the connection comes from: a caller's, not one of this host's. */
  source: string;
  /**
   * A source port the kernel must not pick: the caller's own, when its connection reached this
   * host at the same address and port (plaintext capture), which that port would duplicate.
   */
  avoidPort?: number;
  target: { address: string; port: number };
  /** The socket's SO_MARK: the fwmark whose policy routing brings the replies back to it. */
  mark: number;
  timeoutMs: number;
  /** Aborting stops the connect and closes the socket. */
  signal?: AbortSignal;
}

export interface SocketOps {
  /**
   * Where the client meant to connect before iptables REDIRECT sent it to us. An IPv4 client
   * of a dual-stack listener gets a plain IPv4 answer (family 4).
   * Throws WEFT_E_NOT_REDIRECTED when the connection was not redirected, WEFT_E_SOCKET when
   * the socket has no fd or the kernel fails otherwise.
   */
  originalDestination(socket: net.Socket): SocketAddress;
  /**
   * The local socket with exactly this tuple, or undefined when there is none (also for
   * TIME_WAIT and orphaned sockets, which have no owner). v4-mapped addresses
   * ("::ffff:10.0.0.1") match the IPv4 connection. Throws WEFT_E_SOCKET on kernel errors.
   */
  ownerOf(tuple: SocketTuple): SocketOwner | undefined;
  /**
   * A listening socket with IP_TRANSPARENT set before bind; returns its fd for
   * server.listen({ fd }), which then owns it. Throws WEFT_E_CONFIG for bad options and
   * WEFT_E_SOCKET when the kernel refuses (EADDRINUSE, EPERM without CAP_NET_ADMIN).
   */
  transparentListener(opts: TransparentListenerOptions): number;
  /**
   * Whether a TCP connection from this host to address:port would find a listening socket,
   * asked of the kernel (sock_diag) without connecting: wildcard listeners (0.0.0.0, and ::
   * unless IPV6_V6ONLY for IPv4) count, and ::ffff:a.b.c.d is a.b.c.d. Throws WEFT_E_SOCKET
   * when the kernel refuses the query.
   */
  listening(address: string, port: number): boolean;
  /**
   * A TCP connection to `target` from `source`, a foreign address (IP_TRANSPARENT and SO_MARK
   * set before bind), resolved once connected, as a socket allowing half-open. Rejects with
   * WEFT_E_SOCKET when the kernel refuses the socket (EPERM without CAP_NET_ADMIN; the errno
   * is the error's cause), WEFT_E_UNAVAILABLE when the connect fails, times out (ETIMEDOUT) or
   * is aborted, WEFT_E_INTERNAL for bad options.
   */
  transparentConnect(opts: TransparentConnectOptions): Promise<net.Socket>;
}

export interface NativeSocketOpsOptions {
  addon?: NativeAddon;
  cgroups?: CgroupPaths;
}

const defaultBacklog = 511;

// Bad listener options are configuration errors; a bad tuple is a caller's bug.
type CheckCode = 'WEFT_E_CONFIG' | 'WEFT_E_INTERNAL';

function checkAddress(value: unknown, field: string, context: string, code: CheckCode): void {
  if (typeof value !== 'string' || net.isIP(value) === 0) {
    throw new WeftError(
      code,
      `${context}: ${field} must be an IP address literal, got ${JSON.stringify(value)}`,
    );
  }
}

function checkInteger(
  value: unknown,
  field: string,
  context: string,
  code: CheckCode,
  [min, max]: [number, number],
): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new WeftError(
      code,
      `${context}: ${field} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`,
    );
  }
}

function hostPort(address: string | undefined, port: number | undefined): string {
  return address !== undefined && net.isIPv6(address)
    ? `[${address}]:${port}`
    : `${address}:${port}`;
}

function ownerFrom(raw: RawSocketOwner, cgroups: CgroupPaths): SocketOwner {
  const owner: SocketOwner = { uid: raw.uid, inode: raw.inode };
  if (raw.cgroupId === undefined) return owner;
  owner.cgroupId = raw.cgroupId;
  const path = cgroups.pathOf(raw.cgroupId);
  if (path === undefined) return owner;
  owner.cgroupPath = path;
  const unit = unitOfCgroupPath(path);
  if (unit !== undefined) owner.unit = unit;
  return owner;
}

export function createNativeSocketOps(options: NativeSocketOpsOptions = {}): SocketOps {
  const native = options.addon ?? addon;
  const cgroups = options.cgroups ?? new CgroupPaths();
  return {
    originalDestination(socket) {
      const fd = socketFd(socket);
      const connection = () =>
        `${hostPort(socket.remoteAddress, socket.remotePort)} -> ${hostPort(socket.localAddress, socket.localPort)}`;
      let raw: ReturnType<NativeAddon['originalDestination']>;
      try {
        raw = native.originalDestination(fd);
      } catch (err) {
        throw originalDestinationError(connection(), err);
      }
      if (!raw.redirected) throw notNattedError(connection());
      return { address: raw.address, port: raw.port, family: raw.family };
    },

    ownerOf(tuple) {
      const bug = 'WEFT_E_INTERNAL';
      checkAddress(tuple.localAddress, 'localAddress', 'ownerOf', bug);
      checkAddress(tuple.remoteAddress, 'remoteAddress', 'ownerOf', bug);
      checkInteger(tuple.localPort, 'localPort', 'ownerOf', bug, [0, 65535]);
      checkInteger(tuple.remotePort, 'remotePort', 'ownerOf', bug, [0, 65535]);
      const { localAddress, localPort, remoteAddress, remotePort } = tuple;
      let raw: RawSocketOwner | undefined;
      try {
        raw = native.socketOwner(localAddress, localPort, remoteAddress, remotePort);
      } catch (err) {
        const where = `${hostPort(localAddress, localPort)} -> ${hostPort(remoteAddress, remotePort)}`;
        throw ownerLookupError(where, err);
      }
      return raw === undefined ? undefined : ownerFrom(raw, cgroups);
    },

    transparentListener(opts) {
      const context = 'transparentListener';
      checkAddress(opts.host, 'host', context, 'WEFT_E_CONFIG');
      checkInteger(opts.port, 'port', context, 'WEFT_E_CONFIG', [0, 65535]);
      const backlog = opts.backlog ?? defaultBacklog;
      checkInteger(backlog, 'backlog', context, 'WEFT_E_CONFIG', [1, 65535]);
      try {
        return native.transparentListener(
          opts.host,
          opts.port,
          backlog,
          opts.transparent ?? true,
          opts.reusePort ?? false,
        );
      } catch (err) {
        throw listenerError(hostPort(opts.host, opts.port), err);
      }
    },

    listening(address, port) {
      checkAddress(address, 'address', 'listening', 'WEFT_E_INTERNAL');
      checkInteger(port, 'port', 'listening', 'WEFT_E_INTERNAL', [1, 65535]);
      let listeners: ReturnType<NativeAddon['tcpListeners']>;
      try {
        listeners = native.tcpListeners(port);
      } catch (err) {
        throw listenersLookupError(port, err);
      }
      return listenerAccepts(listeners, address);
    },

    transparentConnect(opts) {
      try {
        return transparentConnect(native, opts);
      } catch (err) {
        return Promise.reject(err);
      }
    },
  };
}

function checkConnectOptions(opts: TransparentConnectOptions): void {
  const bug = 'WEFT_E_INTERNAL';
  const context = 'transparentConnect';
  checkAddress(opts.source, 'source', context, bug);
  checkAddress(opts.target?.address, 'target.address', context, bug);
  checkInteger(opts.target.port, 'target.port', context, bug, [1, 65535]);
  checkInteger(opts.avoidPort ?? 0, 'avoidPort', context, bug, [0, 65535]);
  checkInteger(opts.mark, 'mark', context, bug, [0, 0xffffffff]);
  checkInteger(opts.timeoutMs, 'timeoutMs', context, bug, [1, 2 ** 31 - 1]);
}

/** Errors with an errno name as their code, so that callers can tell the failures apart. */
function codedError(message: string, code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

function transparentConnect(
  native: NativeAddon,
  opts: TransparentConnectOptions,
): Promise<net.Socket> {
  checkConnectOptions(opts);
  const { source, target, signal } = opts;
  const where = `${source} -> ${hostPort(target.address, target.port)}`;
  const unavailable = (why: string, cause: unknown) =>
    new WeftError('WEFT_E_UNAVAILABLE', `cannot connect ${where}: ${why}`, { cause });
  if (signal?.aborted) {
    return Promise.reject(unavailable('aborted', codedError('aborted', 'ABORT_ERR')));
  }
  return new Promise((resolve, reject) => {
    let fd = -1;
    let timer: NodeJS.Timeout | undefined;
    const settle = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const stop = (why: string, cause: Error) => {
      native.cancelConnect(fd);
      settle();
      reject(unavailable(why, cause));
    };
    const onAbort = () => stop('aborted', codedError('aborted', 'ABORT_ERR'));
    const done = (err: Error | null) => {
      settle();
      if (err !== null) return reject(unavailable(describeNative(err), err));
      let socket: net.Socket;
      try {
        socket = new net.Socket({ fd, allowHalfOpen: true, readable: true, writable: true });
      } catch (cause) {
        closeSync(fd);
        return reject(unavailable(`Node did not take the socket: ${describeNative(cause)}`, cause));
      }
      socket.setNoDelay(true);
      resolve(socket);
    };
    try {
      fd = native.transparentConnect(
        source,
        target.address,
        target.port,
        opts.mark,
        opts.avoidPort ?? 0,
        done,
      );
    } catch (err) {
      return reject(transparentConnectError(where, err));
    }
    timer = setTimeout(
      () => stop(`no answer within ${opts.timeoutMs} ms`, codedError('timed out', 'ETIMEDOUT')),
      opts.timeoutMs,
    );
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function describeNative(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The real SocketOps, over the native addon, with one shared cgroup path cache. */
export const nativeSocketOps: SocketOps = createNativeSocketOps();
