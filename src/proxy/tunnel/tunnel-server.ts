// The receiving end of the tunnel between agents (port 15008): TLS 1.3 with client
// certificates verified against the mesh trust bundle, one SPIFFE ID per peer, then HTTP/2
// where each CONNECT stream is authorized and spliced to a local endpoint.

import {
  createServer as createH2Server,
  type Http2Server,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import {
  createServer as createTlsServer,
  type TLSSocket,
  type Server as TlsServer,
} from 'node:tls';
import { pino } from 'pino';
import { canonicalSerial } from '../../api/cert-serial.js';
import { describeError, WeftError } from '../../errors.js';
import type { Logger } from '../../sys/logger.js';
import {
  type ConnectStreamDeps,
  type ConnectTarget,
  connectLocal,
  handleConnect,
  methodNotAllowed,
} from './connect-stream.js';
import { type FlowControl, flowControlOf, localSettings } from './flow-control.js';
import { type KeepAlive, keepAliveOf, watchSession } from './keepalive.js';
import { hostAddressCheck, type LocalAddressCheck, unmapV4 } from './local-addresses.js';
import { peerSpiffeId } from './peer-identity.js';
import { buildContext, checkBundle, contextOptions, TUNNEL_ALPN } from './tls-context.js';
import type { AuthorizeHook, TlsIdentity, TunnelAccessRecord, TunnelPeer } from './types.js';

/** Handles a non-CONNECT request (HTTP riding the tunnel); it must answer the stream. */
export type TunnelRequestHandler = (
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  peer: TunnelPeer,
) => void;

export interface TunnelServerOptions {
  /** Address to listen on: the host IP (DESIGN: 15008 is bound to it). Default: all. */
  host?: string;
  port?: number;
  /** A listening socket to adopt instead of binding host:port (systemd socket activation). */
  fd?: number;
  /** The mesh's trust domain: peers from any other are refused. */
  trustDomain: string;
  /** The node's key and certificate chain, presented to peers. */
  identity: TlsIdentity;
  /** PEM CA certificates that peers' chains must lead to. */
  trustBundle: string;
  authorize: AuthorizeHook;
  /** How to reach a local target; default net.connect with half-open allowed. */
  connect?: ConnectTarget;
  /** Which addresses are this host's; default: loopback and the interfaces' addresses. */
  isLocalAddress?: LocalAddressCheck;
  /** Target ports refused because they are the agent's own; default DESIGN's agent ports. */
  reservedPorts?: Iterable<number>;
  /** Non-CONNECT requests; default 405. */
  onRequest?: TunnelRequestHandler;
  /** One record per CONNECT stream; default one info log line. */
  onAccess?: (record: TunnelAccessRecord) => void;
  log?: Logger;
  keepAlive?: KeepAlive | false;
  flowControl?: Partial<FlowControl>;
  /** SETTINGS_MAX_CONCURRENT_STREAMS per session; clients open another session beyond it. */
  maxConcurrentStreams?: number;
  connectTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  /**
   * The control plane's deny list: true for a serial (canonical hex, see canonicalSerial) it
   * revoked. Peers presenting one are refused at the handshake; closeRevoked() cuts open ones.
   */
  isRevoked?: (serial: string) => boolean;
}

export type RefusalReason =
  | 'no_certificate'
  | 'untrusted'
  | 'bad_identity'
  | 'revoked'
  | 'handshake';

export interface TunnelServerStats {
  sessionsActive: number;
  sessionsTotal: number;
  /** Connections closed at the TLS layer, by reason. */
  refused: Record<RefusalReason, number>;
  streamsActive: number;
  streamsTotal: number;
  /** CONNECT streams by the status answered (0: the stream died before an answer). */
  streamsByStatus: Record<string, number>;
}

export interface TunnelServer {
  readonly port: number;
  readonly address: AddressInfo;
  /** New key and chain for new sessions; open sessions keep theirs. */
  setIdentity(identity: TlsIdentity): void;
  /** New trust bundle for new sessions; open sessions are not re-checked. */
  setTrustBundle(pem: string): void;
  stats(): TunnelServerStats;
  /** Stops accepting, sends GOAWAY, lets streams finish for up to graceMs, then cuts them. */
  close(graceMs?: number): Promise<void>;
  /** Cuts every connection at once, as a crash would. */
  destroy(): void;
  /** Cuts the sessions of peers whose certificate isRevoked() now; returns how many. */
  closeRevoked(): number;
}

export const TUNNEL_PORT = 15008;
/** DESIGN's agent ports: a stream to one of them would reach the agent, not an app. */
export const AGENT_PORTS = [15000, 15001, 15006, 15008, 15020, 15053];

const WHERE = 'tunnel server';

function checkOptions(opts: TunnelServerOptions): void {
  const bad = (field: string, msg: string): never => {
    throw new WeftError('WEFT_E_CONFIG', `${WHERE}: ${field} ${msg}`);
  };
  if (typeof opts.trustDomain !== 'string' || !/^[a-z0-9._-]+$/.test(opts.trustDomain)) {
    bad('trustDomain', `must be a SPIFFE trust domain, got "${opts.trustDomain}"`);
  }
  if (typeof opts.authorize !== 'function') bad('authorize', 'must be a function');
  const port = opts.port ?? TUNNEL_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    bad('port', `must be 0-65535, got ${port}`);
  const mcs = opts.maxConcurrentStreams ?? 1;
  if (!Number.isInteger(mcs) || mcs < 1) bad('maxConcurrentStreams', 'must be a positive integer');
}

/**
 * Why OpenSSL failed a handshake. A chain that does not verify shows up as a verify error, or,
 * when a foreign CA has the same subject name as ours (every weft CA is "weft CA <td>"), as a
 * signature check failure deep in OpenSSL (ERR_SSL_EVP_LIB).
 */
function classifyTlsError(err: Error): RefusalReason {
  const text = `${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}`;
  if (/DID_NOT_RETURN_A_CERTIFICATE|CERTIFICATE_REQUIRED|NO_CERTIFICATE/i.test(text)) {
    return 'no_certificate';
  }
  if (/CERT|VERIFY|UNKNOWN_CA|EVP_LIB|SIGNATURE|ISSUER|SELF.SIGNED|EXPIRED/i.test(text)) {
    return 'untrusted';
  }
  return 'handshake';
}

/** Where a TLS socket came from; after a failed handshake only the TCP socket still knows. */
function remoteOf(socket: TLSSocket): string {
  const tcp = (socket as TLSSocket & { _parent?: Socket })._parent;
  const address = socket.remoteAddress ?? tcp?.remoteAddress ?? '';
  const port = socket.remotePort ?? tcp?.remotePort ?? 0;
  return `${unmapV4(address)}:${port}`;
}

class TunnelServerImpl implements TunnelServer {
  private readonly tls: TlsServer;
  private readonly h2: Http2Server;
  private readonly log: Logger;
  private readonly keepAlive: KeepAlive | false;
  private readonly fc: FlowControl;
  private identity: TlsIdentity;
  private trustBundle: string;
  private readonly sockets = new Set<Socket>();
  private readonly sessions = new Set<ServerHttp2Session>();
  private readonly peers = new WeakMap<ServerHttp2Session, TunnelPeer>();
  /** The peer of the socket being handed to the HTTP/2 server right now (see handOver). */
  private handing: { peer: TunnelPeer; socket: TLSSocket } | undefined;
  private readonly deps: ConnectStreamDeps;
  private readonly counters = {
    sessionsTotal: 0,
    streamsActive: 0,
    streamsTotal: 0,
    refused: { no_certificate: 0, untrusted: 0, bad_identity: 0, revoked: 0, handshake: 0 },
    byStatus: {} as Record<string, number>,
  };

  constructor(private readonly opts: TunnelServerOptions) {
    checkOptions(opts);
    this.log = opts.log ?? pino({ level: 'silent' });
    this.keepAlive = keepAliveOf(opts.keepAlive, WHERE);
    this.fc = flowControlOf(opts.flowControl, WHERE);
    this.identity = opts.identity;
    this.trustBundle = opts.trustBundle;
    buildContext(opts.identity, opts.trustBundle, `${WHERE}.identity`);
    this.deps = {
      authorize: opts.authorize,
      connect: opts.connect ?? connectLocal,
      isLocalAddress: opts.isLocalAddress ?? hostAddressCheck(),
      reservedPorts: new Set(opts.reservedPorts ?? AGENT_PORTS),
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
      record: (entry) => {
        this.counters.streamsActive -= 1;
        this.record(entry);
      },
    };

    this.tls = createTlsServer({
      ...contextOptions(opts.identity, opts.trustBundle),
      // The chain is verified against the bundle either way; rejecting here would make Node
      // drop the socket silently, with no way to count or log why. onSecureConnection refuses
      // every socket that is not authorized before a single HTTP/2 byte is read.
      requestCert: true,
      rejectUnauthorized: false,
      ALPNProtocols: TUNNEL_ALPN,
      handshakeTimeout: opts.handshakeTimeoutMs ?? 10_000,
      noDelay: true,
    });
    this.tls.on('connection', (socket: Socket) => this.track(socket));
    this.tls.on('secureConnection', (socket) => this.onSecureConnection(socket));
    this.tls.on('tlsClientError', (err, socket) => this.onTlsError(err, socket));

    this.h2 = createH2Server({
      settings: localSettings(this.fc, { maxConcurrentStreams: opts.maxConcurrentStreams ?? 1000 }),
      maxSessionMemory: this.fc.maxSessionMemoryMb,
    });
    this.h2.on('session', (session) => this.onSession(session));
    this.h2.on('stream', (stream, headers) => this.onStream(stream, headers));
    this.h2.on('sessionError', (err) =>
      this.log.debug({ err: describeError(err) }, 'tunnel session error'),
    );
  }

  listen(): Promise<void> {
    const host = this.opts.host;
    const port = this.opts.port ?? TUNNEL_PORT;
    return new Promise((resolve, reject) => {
      this.tls.once('error', (err) =>
        reject(
          new WeftError(
            'WEFT_E_SOCKET',
            `${WHERE}: cannot listen on ${host ?? '*'}:${port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`,
            { cause: err },
          ),
        ),
      );
      const fd = this.opts.fd;
      this.tls.listen(fd === undefined ? { host, port } : { fd }, () => resolve());
    });
  }

  get address(): AddressInfo {
    return this.tls.address() as AddressInfo;
  }

  get port(): number {
    return this.address.port;
  }

  setIdentity(identity: TlsIdentity): void {
    buildContext(identity, this.trustBundle, `${WHERE}.setIdentity`);
    this.identity = identity;
    this.tls.setSecureContext(contextOptions(this.identity, this.trustBundle));
  }

  setTrustBundle(pem: string): void {
    checkBundle(pem, `${WHERE}.setTrustBundle`);
    buildContext(this.identity, pem, `${WHERE}.setTrustBundle`);
    this.trustBundle = pem;
    this.tls.setSecureContext(contextOptions(this.identity, this.trustBundle));
  }

  stats(): TunnelServerStats {
    const c = this.counters;
    return {
      sessionsActive: this.sessions.size,
      sessionsTotal: c.sessionsTotal,
      refused: { ...c.refused },
      streamsActive: c.streamsActive,
      streamsTotal: c.streamsTotal,
      streamsByStatus: { ...c.byStatus },
    };
  }

  async close(graceMs = 10_000): Promise<void> {
    const closed = new Promise<void>((resolve) => this.tls.close(() => resolve()));
    const drained = [...this.sessions].map(
      (session) => new Promise<void>((resolve) => session.close(() => resolve())),
    );
    const timer = setTimeout(() => this.destroy(), graceMs);
    timer.unref();
    await Promise.all(drained);
    clearTimeout(timer);
    for (const socket of this.sockets) socket.destroy(); // mid-handshake ones
    await closed;
  }

  destroy(): void {
    this.tls.close();
    for (const session of this.sessions) session.destroy();
    for (const socket of this.sockets) socket.destroy();
  }

  closeRevoked(): number {
    const isRevoked = this.opts.isRevoked;
    if (isRevoked === undefined) return 0;
    let closed = 0;
    for (const session of this.sessions) {
      const peer = this.peers.get(session);
      if (peer === undefined || !isRevoked(canonicalSerial(peer.certSerial))) continue;
      this.log.warn(
        { peer: peer.spiffeId, remote: `${peer.address}:${peer.port}`, serial: peer.certSerial },
        'tunnel session closed: the peer certificate was revoked',
      );
      session.destroy();
      closed += 1;
    }
    return closed;
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private refuse(reason: RefusalReason, detail: string, remote: string): void {
    this.counters.refused[reason] += 1;
    this.log.warn({ reason, remote, detail }, 'tunnel connection refused');
  }

  private onTlsError(err: Error, socket: TLSSocket): void {
    this.refuse(classifyTlsError(err), describeError(err).trim(), remoteOf(socket));
    socket.destroy();
  }

  private onSecureConnection(socket: TLSSocket): void {
    const address = unmapV4(socket.remoteAddress ?? '');
    const remote = `${address}:${socket.remotePort ?? 0}`;
    if (!socket.authorized) {
      const presented = Object.keys(socket.getPeerCertificate() ?? {}).length > 0;
      const reason = presented ? 'untrusted' : 'no_certificate';
      this.refuse(reason, String(socket.authorizationError), remote);
      return void socket.destroy();
    }
    if (socket.alpnProtocol !== 'h2') {
      this.refuse('handshake', `ALPN ${socket.alpnProtocol || 'none'}, h2 required`, remote);
      return void socket.destroy();
    }
    const cert = socket.getPeerCertificate();
    const id = peerSpiffeId(cert, this.opts.trustDomain);
    if (!id.ok) {
      this.refuse('bad_identity', id.reason, remote);
      return void socket.destroy();
    }
    if (this.opts.isRevoked?.(canonicalSerial(cert.serialNumber))) {
      this.refuse('revoked', `${id.spiffeId}: certificate ${cert.serialNumber} is revoked`, remote);
      return void socket.destroy();
    }
    this.handOver(socket, {
      spiffeId: id.spiffeId,
      certSerial: cert.serialNumber,
      address,
      port: socket.remotePort ?? 0,
    });
  }

  /**
   * Node's HTTP/2 server creates the session, and emits 'session', synchronously inside
   * 'connection': the peer is passed across that call. A session that arrives without one
   * (Node changed) is refused rather than served unauthenticated.
   */
  private handOver(socket: TLSSocket, peer: TunnelPeer): void {
    this.handing = { peer, socket };
    try {
      this.h2.emit('connection', socket);
    } finally {
      this.handing = undefined;
    }
  }

  private onSession(session: ServerHttp2Session): void {
    const handing = this.handing;
    if (handing === undefined) {
      this.log.error({ code: 'WEFT_E_INTERNAL' }, 'tunnel session without a verified peer');
      return void session.destroy();
    }
    this.peers.set(session, handing.peer);
    this.sessions.add(session);
    this.counters.sessionsTotal += 1;
    session.setLocalWindowSize(this.fc.connectionWindowBytes);
    watchSession(session, handing.socket, this.keepAlive, () => {
      this.log.warn({ peer: handing.peer.spiffeId }, 'tunnel peer stopped answering PINGs');
      return new WeftError('WEFT_E_UNAVAILABLE', 'tunnel peer did not answer a keep-alive PING');
    });
    session.on('error', (err) =>
      this.log.debug(
        { peer: handing.peer.spiffeId, err: describeError(err) },
        'tunnel session error',
      ),
    );
    session.once('close', () => this.sessions.delete(session));
  }

  private onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    const peer = this.peers.get(stream.session as ServerHttp2Session);
    if (peer === undefined) return void stream.close();
    if (headers[':method'] !== 'CONNECT') {
      if (this.opts.onRequest) this.opts.onRequest(stream, headers, peer);
      else this.notAllowed(stream, headers, peer);
      return;
    }
    this.counters.streamsActive += 1;
    this.counters.streamsTotal += 1;
    void handleConnect(stream, headers, peer, this.deps);
  }

  private notAllowed(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    peer: TunnelPeer,
  ): void {
    methodNotAllowed(stream);
    this.record({
      peer,
      authority: String(headers[':authority'] ?? ''),
      status: 405,
      reason: 'not_connect',
      bytesToTarget: 0,
      bytesFromTarget: 0,
      durationMs: 0,
    });
  }

  private record(entry: TunnelAccessRecord): void {
    const key = String(entry.status);
    this.counters.byStatus[key] = (this.counters.byStatus[key] ?? 0) + 1;
    try {
      if (this.opts.onAccess) this.opts.onAccess(entry);
      else this.log.info({ ...entry, peer: entry.peer.spiffeId }, 'tunnel stream');
    } catch (err) {
      this.log.error({ err: describeError(err) }, 'tunnel access hook threw');
    }
  }
}

/** Builds the tunnel server and listens; resolves once it accepts connections. */
export async function startTunnelServer(opts: TunnelServerOptions): Promise<TunnelServer> {
  const server = new TunnelServerImpl(opts);
  await server.listen();
  return server;
}
