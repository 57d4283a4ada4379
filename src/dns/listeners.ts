// The sockets the DNS server answers on: per address one UDP socket and one TCP server on
// the same port (resolvers retry a truncated UDP answer over TCP, RFC 7766). Port 0 picks
// a free UDP port and then asks for the same TCP port, retrying when TCP has it taken.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { createServer, isIP, type Server, type Socket } from 'node:net';
import { WeftError } from '../errors.js';
import type { Logger } from '../sys/logger.js';
import type { QueryHandler } from './query-handler.js';
import { frame, frameReader } from './tcp-framing.js';
import { formatHostPort } from './upstream-address.js';

/** An idle TCP client is dropped after this long (RFC 7766 6.2.3: a few seconds). */
const TCP_IDLE_MS = 10_000;
/** TCP is the fallback path: a bounded number of clients keeps it from eating descriptors. */
const MAX_TCP_CONNECTIONS = 256;
const PORT_ZERO_ATTEMPTS = 5;

export interface Listeners {
  port: number;
  close(): Promise<void>;
}

interface Pair {
  udp?: UdpSocket;
  tcp?: Server;
  /** The TCP server's open connections: closing the server does not end them. */
  clients: Set<Socket>;
}

export async function listenAll(
  hosts: readonly string[],
  port: number,
  handle: QueryHandler,
  log: Logger,
  udpFds: Readonly<Record<string, number>> = {},
): Promise<Listeners> {
  for (let attempt = 1; ; attempt++) {
    const pairs: Pair[] = [];
    let chosen = port;
    try {
      for (const host of hosts) {
        const pair: Pair = { clients: new Set() };
        pairs.push(pair);
        pair.udp = await bindUdp(host, chosen, handle, log, udpFds[host]);
        chosen = pair.udp.address().port;
        pair.tcp = await listenTcp(host, chosen, handle, log, pair.clients);
      }
      return { port: chosen, close: () => closePairs(pairs) };
    } catch (err) {
      await closePairs(pairs);
      const code = (err as NodeJS.ErrnoException).code;
      if (port === 0 && code === 'EADDRINUSE' && attempt < PORT_ZERO_ATTEMPTS) continue;
      throw err;
    }
  }
}

function bindError(host: string, port: number, err: NodeJS.ErrnoException, proto: string) {
  const hint =
    err.code === 'EADDRINUSE'
      ? ': is another agent (or DNS server) running on it?'
      : err.code === 'EADDRNOTAVAIL'
        ? ': the address is not configured on this host'
        : '';
  const wrapped = new WeftError(
    'WEFT_E_SOCKET',
    `dns server cannot listen on ${proto} ${formatHostPort(host, port)} (${err.code ?? err.message})${hint}`,
    { cause: err },
  );
  return Object.assign(wrapped, { code: err.code });
}

async function bindUdp(
  host: string,
  port: number,
  handle: QueryHandler,
  log: Logger,
  fd: number | undefined,
) {
  const socket = createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', (err) => reject(bindError(host, port, err, 'udp')));
    if (fd === undefined) socket.bind(port, host, () => resolve());
    else socket.bind({ fd }, () => resolve());
  });
  socket.removeAllListeners('error');
  socket.on('error', (err) => log.warn({ err }, 'dns udp socket error'));
  socket.on('message', (message, peer) => {
    void handle(message, 'udp', peer).then((reply) => {
      if (!reply) return;
      try {
        socket.send(reply, peer.port, peer.address, (err) => {
          if (err) log.debug({ err, peer: peer.address }, 'dns reply not sent');
        });
      } catch {
        // A forwarded query finished after close(): there is no socket to answer on.
      }
    });
  });
  return socket;
}

async function listenTcp(
  host: string,
  port: number,
  handle: QueryHandler,
  log: Logger,
  open: Set<Socket>,
) {
  // allowHalfOpen: a client may send its queries and shut down its side before the replies.
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    serveTcp(socket, handle);
  });
  server.maxConnections = MAX_TCP_CONNECTIONS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(bindError(host, port, err, 'tcp')));
    server.listen({ host, port }, () => resolve());
  });
  server.removeAllListeners('error');
  server.on('error', (err) => log.warn({ err }, 'dns tcp server error'));
  return server;
}

/** Answers each framed query on the connection; replies may go out of order (RFC 7766 7). */
function serveTcp(socket: Socket, handle: QueryHandler): void {
  let pending = 0;
  let ended = false;
  const peer = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
  socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
  socket.on('error', () => {}); // a client resetting the connection is not our problem
  socket.on('end', () => {
    ended = true;
    if (pending === 0) socket.end();
  });
  socket.on(
    'data',
    frameReader((message) => {
      pending++;
      void handle(message, 'tcp', peer).then((reply) => {
        pending--;
        if (reply && !socket.destroyed) socket.write(frame(reply));
        if (ended && pending === 0) socket.end();
      });
    }),
  );
}

async function closePairs(pairs: Pair[]): Promise<void> {
  await Promise.all(
    pairs.flatMap((p) => [
      p.udp ? closeUdp(p.udp) : undefined,
      p.tcp ? closeTcp(p.tcp, p.clients) : undefined,
    ]),
  );
}

async function closeUdp(socket: UdpSocket): Promise<void> {
  try {
    socket.close();
    await once(socket, 'close');
  } catch {
    // never bound, or already closed
  }
}

async function closeTcp(server: Server, clients: Set<Socket>): Promise<void> {
  if (!server.listening) return;
  const closed = once(server, 'close');
  server.close();
  for (const socket of clients) socket.destroy();
  await closed;
}
