// Shared pieces of the tunnel tests: a mesh PKI, a local echo target, and a tunnel server and
// pool wired to them on loopback.
import { createHash } from 'node:crypto';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  type AuthorizeHook,
  startTunnelServer,
  TunnelPool,
  type TunnelPoolOptions,
  type TunnelServer,
  type TunnelServerOptions,
} from '../../src/proxy/tunnel/index.js';
import { createTestCa, issueLeaf, type TestCa, type TestLeaf } from '../helpers/test-pki.js';

export const TD = 'weft.local';
export const NODE_B = `spiffe://${TD}/node/node-b`;
export const SVC_FRONT = `spiffe://${TD}/svc/frontend`;

export interface MeshPki {
  ca: TestCa;
  /** The receiving agent's node certificate. */
  server: TestLeaf;
  /** A workload identity on the sending agent. */
  client: TestLeaf;
}

export async function meshPki(): Promise<MeshPki> {
  const ca = await createTestCa(TD);
  return {
    ca,
    server: await issueLeaf(ca, NODE_B),
    client: await issueLeaf(ca, SVC_FRONT),
  };
}

export const allowAll: AuthorizeHook = () => ({ allow: true });

export function serverOptions(
  pki: MeshPki,
  overrides: Partial<TunnelServerOptions> = {},
): TunnelServerOptions {
  return {
    host: '127.0.0.1',
    port: 0,
    trustDomain: TD,
    identity: { key: pki.server.keyPem, cert: pki.server.certPem },
    trustBundle: pki.ca.certPem,
    authorize: allowAll,
    ...overrides,
  };
}

export function startServer(
  pki: MeshPki,
  overrides: Partial<TunnelServerOptions> = {},
): Promise<TunnelServer> {
  return startTunnelServer(serverOptions(pki, overrides));
}

export function newPool(pki: MeshPki, overrides: Partial<TunnelPoolOptions> = {}): TunnelPool {
  return new TunnelPool({ trustDomain: TD, trustBundle: pki.ca.certPem, ...overrides });
}

export function source(leaf: TestLeaf) {
  return { spiffeId: leaf.spiffeId, key: leaf.keyPem, cert: leaf.certPem };
}

export interface Target {
  port: number;
  server: Server;
  close(): Promise<void>;
}

/** Listens on 127.0.0.1:0; closing also cuts connections still open. */
export async function listenTarget(onSocket: (socket: Socket) => void): Promise<Target> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    server,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Echoes what it reads; when the client half-closes it writes `farewell` and then closes its
 * side, so a test sees bytes that arrive after its own FIN.
 */
export function echoTarget(farewell = ''): Promise<Target> {
  return listenTarget((socket) => {
    socket.on('error', () => {});
    socket.on('data', (chunk) => socket.write(chunk));
    socket.on('end', () => socket.end(farewell));
  });
}

/** Reads a duplex to its end; resolves with everything it sent. */
export function readAll(stream: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
}

/** Hashes what a readable yields until it ends; resolves with the hex digest and length. */
export function hashAll(stream: Duplex | Socket): Promise<{ sha256: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    let bytes = 0;
    stream.on('data', (c: Buffer) => {
      h.update(c);
      bytes += c.length;
    });
    stream.once('end', () => resolve({ sha256: h.digest('hex'), bytes }));
    stream.once('error', reject);
  });
}

export interface MovableAddress {
  /** The port peers dial (on 127.0.0.1). */
  port: number;
  /** New connections go to this backend from now on; established ones stay where they are. */
  moveTo(backendPort: number): void;
  close(): Promise<void>;
}

/**
 * One address whose owner changes, as when a host is rebuilt under the same IP: each new
 * connection is relayed to the current backend (a tunnel server on loopback), while
 * connections made before a move keep reaching the old one.
 */
export async function movableAddress(backendPort: number): Promise<MovableAddress> {
  let current = backendPort;
  const sockets = new Set<Socket>();
  const keep = (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const server = createServer((client) => {
    const backend = netConnect({ host: '127.0.0.1', port: current });
    keep(client);
    keep(backend);
    client.pipe(backend).pipe(client);
    client.once('close', () => backend.destroy());
    backend.once('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    moveTo(port) {
      current = port;
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
