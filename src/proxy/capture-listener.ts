// A listener for captured connections (outbound 15001, inbound 15006): finds where each
// connection was really going and relays it there. This is the plain-TCP relay of the
// capture stage; the mesh path (service lookup, balancing, tunnels) replaces the "connect to
// the original destination" step later.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { describeError, isWeftError } from '../errors.js';
import type { SocketAddress, SocketOps } from '../native/socket-ops.js';
import type { Logger } from '../sys/logger.js';
import { relay } from './tcp-relay.js';

export type Direction = 'outbound' | 'inbound';

export interface CaptureListenerOptions {
  direction: Direction;
  /** How the kernel delivered the connection: REDIRECT (read SO_ORIGINAL_DST) or TPROXY. */
  mode: 'redirect' | 'tproxy';
  /** Ports of the agent itself: a connection whose destination is one of them would loop. */
  ownPorts: ReadonlySet<number>;
  socketOps: SocketOps;
  log: Logger;
  connectTimeoutMs?: number;
}

/** Builds the server; the caller listens (on a port, or an fd from systemd or TPROXY). */
export function createCaptureServer(opts: CaptureListenerOptions): Server {
  const server = createServer(
    { noDelay: true, pauseOnConnect: true, allowHalfOpen: true },
    (socket) => {
      handleConnection(socket, opts);
    },
  );
  return server;
}

function handleConnection(client: Socket, opts: CaptureListenerOptions): void {
  const started = process.hrtime.bigint();
  const source = formatAddress({
    address: unmapV4(client.remoteAddress ?? ''),
    port: client.remotePort ?? 0,
    family: client.remoteFamily === 'IPv6' && !client.remoteAddress?.startsWith('::ffff:') ? 6 : 4,
  });

  let target: SocketAddress;
  try {
    target = destinationOf(client, opts);
  } catch (err) {
    // Not captured (someone connected to the capture port directly): nothing to relay to.
    opts.log.warn(
      { direction: opts.direction, src: source, code: codeOf(err), err: describeError(err) },
      'connection refused',
    );
    client.destroy();
    return;
  }
  const dst = formatAddress(target);
  if (opts.ownPorts.has(target.port) && isLocalTarget(client, target)) {
    opts.log.warn(
      { direction: opts.direction, src: source, dst, code: 'WEFT_E_LOOP' },
      'connection to the agent itself refused',
    );
    client.destroy();
    return;
  }

  const owner = opts.direction === 'outbound' ? ownerOf(client, target, opts) : undefined;
  const upstream = connect({
    host: target.address,
    port: target.port,
    noDelay: true,
    allowHalfOpen: true,
    timeout: opts.connectTimeoutMs ?? 10_000,
  });
  let connected = false;
  upstream.once('connect', () => {
    connected = true;
    upstream.setTimeout(0);
    client.resume();
  });
  upstream.once('timeout', () =>
    upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })),
  );

  relay(client, upstream, (summary) => {
    const reason =
      !connected && summary.reason === 'upstream_reset' ? 'connect_failed' : summary.reason;
    opts.log.info(
      {
        direction: opts.direction,
        src: source,
        dst,
        ...(owner ? { src_uid: owner.uid, ...(owner.unit ? { src_unit: owner.unit } : {}) } : {}),
        bytes_sent: summary.bytesFromClient,
        bytes_received: summary.bytesToClient,
        duration_ms: Number(process.hrtime.bigint() - started) / 1e6,
        close_reason: reason,
        ...(summary.error ? { error: summary.error } : {}),
      },
      'connection',
    );
  });
}

function destinationOf(client: Socket, opts: CaptureListenerOptions): SocketAddress {
  if (opts.mode === 'tproxy') {
    // TPROXY keeps the packet's destination: the accepted socket's local address is it.
    const address = client.localAddress;
    const port = client.localPort;
    if (!address || !port) throw new Error('accepted socket has no local address');
    return {
      address: unmapV4(address),
      port,
      family: address.includes(':') && !address.startsWith('::ffff:') ? 6 : 4,
    };
  }
  return opts.socketOps.originalDestination(client);
}

function ownerOf(client: Socket, target: SocketAddress, opts: CaptureListenerOptions) {
  try {
    return opts.socketOps.ownerOf({
      localAddress: unmapV4(client.remoteAddress ?? ''),
      localPort: client.remotePort ?? 0,
      remoteAddress: target.address,
      remotePort: target.port,
    });
  } catch (err) {
    opts.log.debug({ err: describeError(err) }, 'owner lookup failed');
    return undefined;
  }
}

/** The loop guard only matters when the destination is this host's own socket. */
function isLocalTarget(client: Socket, target: SocketAddress): boolean {
  const local = unmapV4(client.localAddress ?? '');
  return target.address === local || target.address.startsWith('127.') || target.address === '::1';
}

function unmapV4(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

export function formatAddress(a: SocketAddress): string {
  return a.family === 6 ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

function codeOf(err: unknown): string {
  return isWeftError(err) ? err.code : 'WEFT_E_INTERNAL';
}
