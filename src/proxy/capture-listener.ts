// Stage "accept" for captured connections (outbound 15001, inbound 15006): admits each
// connection within the listener's limits (else refuses it at once), finds where it was really
// going and who opened it, then hands it to the next stage. Nothing is read from the client
// until that stage resumes it.
import { createServer, type Server, type Socket } from 'node:net';
import { describeError } from '../errors.js';
import type { SocketAddress, SocketOps, SocketOwner, SocketTuple } from '../native/socket-ops.js';
import type { Logger } from '../sys/logger.js';
import { formatAddress, unmapV4 } from './address.js';
import type { ConnectionGate } from './limits/connection-gate.js';
import { originalSourcePort } from './nat-source.js';
import type { Refusals } from './refusals.js';

export type Direction = 'outbound' | 'inbound';

/** A connection the kernel handed to the agent, with what the accept stage learned. */
export interface CapturedConnection {
  direction: Direction;
  client: Socket;
  /** "addr:port" of the client, for logs. */
  source: string;
  /** Where the client was going. */
  target: SocketAddress;
  /** The local process that opened it (outbound only; undefined when unknown). */
  owner: SocketOwner | undefined;
  /** process.hrtime.bigint() at accept. */
  started: bigint;
  /** What the relay enforces (observed-relay.ts): the listener's timeouts. */
  timeouts: RelayTimeouts;
}

export interface RelayTimeouts {
  /** No byte either way for this long closes the connection. */
  idleMs: number;
  /** No byte at all since accept for this long closes it (inbound: callers outside the mesh). */
  silentMs?: number;
}

export type CapturedHandler = (conn: CapturedConnection) => void;

export interface CaptureListenerOptions {
  direction: Direction;
  /** How the kernel delivered the connection: REDIRECT (read SO_ORIGINAL_DST) or TPROXY. */
  mode: 'redirect' | 'tproxy';
  /** Ports of the agent itself: a connection whose destination is one of them would loop. */
  ownPorts: ReadonlySet<number>;
  socketOps: SocketOps;
  log: Logger;
  /** Open connections in total and per source address; beyond, refused at accept. */
  gate: ConnectionGate;
  /** Where refusals at accept are counted and logged (rate-limited). */
  refusals: Refusals;
  timeouts: RelayTimeouts;
  /** The next stage; it resumes the client socket when it has somewhere to send its bytes. */
  handle: CapturedHandler;
}

/** Builds the server; the caller listens (on a port, or an fd from systemd or TPROXY). */
export function createCaptureServer(opts: CaptureListenerOptions): Server {
  // allowHalfOpen: a client's FIN must travel to the upstream, not close our write side.
  const server = createServer(
    { noDelay: true, pauseOnConnect: true, allowHalfOpen: true },
    (socket) => accept(socket, opts),
  );
  // accept(2) failing (EMFILE, ENFILE: out of descriptors) is an 'error' on the server, and
  // libuv has already closed the pending connection: count it, never let it crash the agent.
  server.on('error', (err: NodeJS.ErrnoException) => {
    if (err.syscall !== 'accept') return; // listen errors: the caller's listen() reports them
    opts.refusals.refuse(opts.direction, 'fd_exhausted', undefined, err.code ?? err.message);
  });
  return server;
}

function accept(client: Socket, opts: CaptureListenerOptions): void {
  const started = process.hrtime.bigint();
  // The next stages may await (a connect, a tunnel stream) before they attach their own
  // handlers: a reset from the client meanwhile must not be an unhandled 'error' event.
  client.on('error', () => {});
  const address = unmapV4(client.remoteAddress ?? '');
  // Admit first: a refusal costs the accept and nothing else (no lookup, no log line).
  const admission = opts.gate.admit(address);
  if (!admission.admitted) {
    client.resetAndDestroy();
    opts.refusals.refuse(opts.direction, admission.reason, address);
    return;
  }
  client.once('close', admission.release);
  const source = formatAddress({
    address,
    port: client.remotePort ?? 0,
    family: client.remoteFamily === 'IPv6' && !client.remoteAddress?.startsWith('::ffff:') ? 6 : 4,
  });
  let target: SocketAddress;
  try {
    target = destinationOf(client, opts);
  } catch (err) {
    // Not captured (someone connected to the capture port directly): nothing to relay to.
    opts.refusals.refuse(opts.direction, 'not_captured', source, describeError(err));
    client.destroy();
    return;
  }
  if (opts.ownPorts.has(target.port) && isLocalTarget(client, target)) {
    opts.refusals.refuse(opts.direction, 'loop', source, `to ${formatAddress(target)}`);
    client.destroy();
    return;
  }
  const timeouts = opts.timeouts;
  if (opts.direction === 'inbound') {
    opts.handle({
      direction: opts.direction,
      client,
      source,
      target,
      owner: undefined,
      started,
      timeouts,
    });
    return;
  }
  const tuple = {
    localAddress: unmapV4(client.remoteAddress ?? ''),
    localPort: client.remotePort ?? 0,
    remoteAddress: target.address,
    remotePort: target.port,
  };
  const owner = ownerOf(tuple, opts);
  const conn = { direction: opts.direction, client, source, target, started, timeouts };
  if (owner !== undefined || opts.mode !== 'redirect') {
    opts.handle({ ...conn, owner });
    return;
  }
  // A miss after REDIRECT: NAT may have changed the source port (see nat-source.ts).
  const seen = {
    remoteAddress: tuple.localAddress,
    remotePort: tuple.localPort,
    localAddress: unmapV4(client.localAddress ?? ''),
    localPort: client.localPort ?? 0,
  };
  originalSourcePort(seen).then(
    (port) => {
      const found =
        port === undefined || port === tuple.localPort
          ? undefined
          : ownerOf({ ...tuple, localPort: port }, opts);
      opts.handle({ ...conn, owner: found });
    },
    () => opts.handle({ ...conn, owner: undefined }),
  );
}

function destinationOf(client: Socket, opts: CaptureListenerOptions): SocketAddress {
  if (opts.mode === 'tproxy') {
    // TPROXY keeps the packet's destination: the accepted socket's local address is it.
    const address = client.localAddress;
    const port = client.localPort;
    if (!address || !port) throw new Error('accepted socket has no local address');
    const plain = unmapV4(address);
    return { address: plain, port, family: plain.includes(':') ? 6 : 4 };
  }
  return opts.socketOps.originalDestination(client);
}

function ownerOf(tuple: SocketTuple, opts: CaptureListenerOptions): SocketOwner | undefined {
  try {
    return opts.socketOps.ownerOf(tuple);
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
