// The receiving end of the tunnel between agents (port 15008): each TCP connection admitted
// within the listener's limits (else refused at once), then TLS 1.3 with client certificates
// verified against the mesh trust bundle, one canonical SPIFFE ID per peer, then HTTP/2 where
// each CONNECT stream is authorized and spliced to a local endpoint, and any other request is
// handed to onRequest (HTTP riding the tunnel). A session that carries no stream for
// idleTimeoutMs is closed.

import {
  constants,
  createServer as createH2Server,
  type Http2Server,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import {
  type AddressInfo,
  createServer as createNetServer,
  type Server,
  type Socket,
} from 'node:net';
import {
  createServer as createTlsServer,
  type TLSSocket,
  type Server as TlsServer,
} from 'node:tls';
import { pino } from 'pino';
import { canonicalSerial } from '../../api/cert-serial.js';
import { describeError, WeftError } from '../../errors.js';
import type { Logger } from '../../sys/logger.js';
import type { ConnectionGate } from '../limits/connection-gate.js';
import { type RefusalReason as AnyRefusalReason, Refusals } from '../refusals.js';
import { parseAuthority } from './authority.js';
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
import type {
  AuthorizeHook,
  StreamCloseReason,
  TlsIdentity,
  TunnelAccessRecord,
  TunnelPeer,
  TunnelTarget,
} from './types.js';

/** How a request stream ended, for the server's stream counters (status 0: none answered). */
export interface TunnelRequestOutcome {
  status: number;
  reason: StreamCloseReason;
}

/**
 * Handles a non-CONNECT request (HTTP riding the tunnel): it must answer the stream, and
 * resolves (never rejects) once the stream is done, with how it ended.
 */
export type TunnelRequestHandler = (
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  peer: TunnelPeer,
) => Promise<TunnelRequestOutcome>;

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
  /** One record per CONNECT stream, at its end; default (with no onStream) one info log line. */
  onAccess?: (record: TunnelAccessRecord) => void;
  /**
   * Told when a stream arrives (before authorization); the function it returns gets that
   * stream's record at its end. One record per stream from start to end: what a gauge of open
   * connections needs.
   */
  onStream?: TunnelStreamObserver;
  /** Open connections in total and per source address; beyond, refused right after accept. */
  gate?: ConnectionGate;
  /** Where refusals are counted and logged (rate-limited); default: this server's own. */
  refusals?: Refusals;
  /** A session with no stream for this long is closed with GOAWAY; default 10 min. */
  idleTimeoutMs?: number;
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

/** Why a connection to 15008 was refused (refusals.ts's vocabulary, the tunnel's part). */
export type RefusalReason = Extract<
  AnyRefusalReason,
  | 'total_limit'
  | 'per_source_limit'
  | 'fd_exhausted'
  | 'handshake_timeout'
  | 'no_certificate'
  | 'untrusted'
  | 'bad_identity'
  | 'revoked'
  | 'handshake'
>;

/** The start of a stream, for TunnelServerOptions.onStream. */
export interface TunnelStreamStart {
  peer: TunnelPeer;
  /** The :authority as received, and the target it names when it is one. */
  authority: string;
  target?: TunnelTarget;
}

export type TunnelStreamObserver = (
  start: TunnelStreamStart,
) => ((record: TunnelAccessRecord) => void) | undefined;

export interface TunnelServerStats {
  sessionsActive: number;
  sessionsTotal: number;
  /** Connections closed at accept or at the TLS layer, by reason. */
  refused: Record<RefusalReason, number>;
  streamsActive: number;
  streamsTotal: number;
  /** CONNECT streams by the status answered (0: the stream died before an answer). */
  streamsByStatus: Record<string, number>;
  /** Streams by status and close reason. */
  streamOutcomes: Array<{ status: number; reason: StreamCloseReason; count: number }>;
  /** Sessions closed because they carried no stream for idleTimeoutMs. */
  sessionsIdleClosed: number;
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
  for (const field of ['idleTimeoutMs', 'handshakeTimeoutMs', 'connectTimeoutMs'] as const) {
    const v = opts[field];
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) {
      bad(field, `must be a positive integer of ms, got ${v}`);
    }
  }
}

/** What the server keeps per session: its verified peer and its streams, for the idle timer. */
interface SessionState {
  peer: TunnelPeer;
  streams: number;
  idle: NodeJS.Timeout | undefined;
}

/** The verdict on a peer whose TLS handshake completed: served, or refused and why. */
export type PeerVerdict =
  | { accept: true; peer: TunnelPeer }
  | { accept: false; reason: RefusalReason; detail: string };

/**
 * Why OpenSSL failed a handshake. A chain that does not verify shows up as a verify error, or,
 * when a foreign CA has the same subject name as ours (every weft CA is "weft CA <td>"), as a
 * signature check failure deep in OpenSSL (ERR_SSL_EVP_LIB).
 */
function classifyTlsError(err: Error): RefusalReason {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'handshake_timeout';
  const text = `${code} ${err.message}`;
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

const NO_REFUSALS: Record<RefusalReason, number> = {
  total_limit: 0,
  per_source_limit: 0,
  fd_exhausted: 0,
  handshake_timeout: 0,
  no_certificate: 0,
  untrusted: 0,
  bad_identity: 0,
  revoked: 0,
  handshake: 0,
};

class TunnelServerImpl implements TunnelServer {
  /** Accepts TCP; an admitted socket is handed to the TLS server, which does not listen. */
  private readonly tcp: Server;
  private readonly tls: TlsServer;
  private readonly h2: Http2Server;
  private readonly log: Logger;
  private readonly refusals: Refusals;
  private readonly keepAlive: KeepAlive | false;
  private readonly fc: FlowControl;
  private readonly idleTimeoutMs: number;
  private identity: TlsIdentity;
  private trustBundle: string;
  private readonly sockets = new Set<Socket>();
  private readonly sessions = new Set<ServerHttp2Session>();
  private readonly states = new WeakMap<ServerHttp2Session, SessionState>();
  /** The peer of the socket being handed to the HTTP/2 server right now (see handOver). */
  private handing: { peer: TunnelPeer; socket: TLSSocket } | undefined;
  private readonly deps: Omit<ConnectStreamDeps, 'record'>;
  private readonly counters = {
    sessionsTotal: 0,
    sessionsIdleClosed: 0,
    streamsActive: 0,
    streamsTotal: 0,
    refused: { ...NO_REFUSALS },
    byStatus: {} as Record<string, number>,
    byOutcome: new Map<string, { status: number; reason: StreamCloseReason; count: number }>(),
  };

  constructor(private readonly opts: TunnelServerOptions) {
    checkOptions(opts);
    this.log = opts.log ?? pino({ level: 'silent' });
    this.refusals = opts.refusals ?? new Refusals({ log: this.log });
    this.keepAlive = keepAliveOf(opts.keepAlive, WHERE);
    this.fc = flowControlOf(opts.flowControl, WHERE);
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 600_000;
    this.identity = opts.identity;
    this.trustBundle = opts.trustBundle;
    buildContext(opts.identity, opts.trustBundle, `${WHERE}.identity`);
    this.deps = {
      authorize: opts.authorize,
      connect: opts.connect ?? connectLocal,
      isLocalAddress: opts.isLocalAddress ?? hostAddressCheck(),
      reservedPorts: new Set(opts.reservedPorts ?? AGENT_PORTS),
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
    };

    this.tcp = createNetServer({ noDelay: true }, (socket) => this.onTcp(socket));
    // accept(2) failing (EMFILE: out of descriptors) is an 'error' on the server; libuv has
    // closed the pending connection already. Counted; it must not crash the agent.
    this.tcp.on('error', (err: NodeJS.ErrnoException) => {
      if (err.syscall === 'accept') this.refuse('fd_exhausted', err.code ?? err.message, '');
    });
    this.tls = createTlsServer({
      ...contextOptions(opts.identity, opts.trustBundle),
      // The chain is verified against the bundle either way; rejecting here would make Node
      // drop the socket silently, with no way to count or log why. onSecureConnection refuses
      // every socket that is not authorized before a single HTTP/2 byte is read.
      requestCert: true,
      rejectUnauthorized: false,
      ALPNProtocols: TUNNEL_ALPN,
      handshakeTimeout: opts.handshakeTimeoutMs ?? 10_000,
    });
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
      const onError = (err: NodeJS.ErrnoException) =>
        reject(
          new WeftError(
            'WEFT_E_SOCKET',
            `${WHERE}: cannot listen on ${host ?? '*'}:${port}: ${err.code ?? err.message}`,
            { cause: err },
          ),
        );
      this.tcp.once('error', onError);
      const fd = this.opts.fd;
      this.tcp.listen(fd === undefined ? { host, port } : { fd }, () => {
        this.tcp.off('error', onError);
        resolve();
      });
    });
  }

  get address(): AddressInfo {
    return this.tcp.address() as AddressInfo;
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
      streamOutcomes: [...c.byOutcome.values()].map((o) => ({ ...o })),
      sessionsIdleClosed: c.sessionsIdleClosed,
    };
  }

  async close(graceMs = 10_000): Promise<void> {
    const closed = new Promise<void>((resolve) => this.tcp.close(() => resolve()));
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
    this.tcp.close();
    for (const session of this.sessions) session.destroy();
    for (const socket of this.sockets) socket.destroy();
  }

  closeRevoked(): number {
    const isRevoked = this.opts.isRevoked;
    if (isRevoked === undefined) return 0;
    let closed = 0;
    for (const session of this.sessions) {
      const peer = this.states.get(session)?.peer;
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

  /** Admission, before any TLS work: a refused socket costs its accept and nothing else. */
  private onTcp(socket: Socket): void {
    socket.on('error', () => {}); // the TLS socket wrapping it reports; a refused one is gone
    const address = unmapV4(socket.remoteAddress ?? '');
    const admission = this.opts.gate?.admit(address);
    if (admission !== undefined && !admission.admitted) {
      socket.resetAndDestroy();
      this.refuse(admission.reason, '', address);
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      admission?.release();
    });
    this.tls.emit('connection', socket);
  }

  private refuse(reason: RefusalReason, detail: string, remote: string): void {
    this.counters.refused[reason] += 1;
    this.refusals.refuse('tunnel', reason, remote || undefined, detail || undefined);
  }

  private onTlsError(err: Error, socket: TLSSocket): void {
    this.refuse(classifyTlsError(err), describeError(err).trim(), remoteOf(socket));
    socket.destroy();
  }

  private onSecureConnection(socket: TLSSocket): void {
    const verdict = this.verifyPeer(socket);
    if (!verdict.accept) {
      this.refuse(verdict.reason, verdict.detail, remoteOf(socket));
      return void socket.destroy();
    }
    this.handOver(socket, verdict.peer);
  }

  /**
   * The one place where a peer whose handshake completed is accepted or refused: its chain
   * verified against the bundle, h2 negotiated, and one canonical caller identity of the
   * trust domain. Checks on the peer's certificate (a revocation list) belong here.
   */
  private verifyPeer(socket: TLSSocket): PeerVerdict {
    if (!socket.authorized) {
      const presented = Object.keys(socket.getPeerCertificate() ?? {}).length > 0;
      const reason = presented ? 'untrusted' : 'no_certificate';
      return { accept: false, reason, detail: String(socket.authorizationError) };
    }
    if (socket.alpnProtocol !== 'h2') {
      return {
        accept: false,
        reason: 'handshake',
        detail: `ALPN ${socket.alpnProtocol || 'none'}, h2 required`,
      };
    }
    const cert = socket.getPeerCertificate();
    const id = peerSpiffeId(cert, this.opts.trustDomain);
    if (!id.ok) return { accept: false, reason: 'bad_identity', detail: id.reason };
    if (this.opts.isRevoked?.(canonicalSerial(cert.serialNumber))) {
      const detail = `${id.spiffeId}: certificate ${cert.serialNumber} is revoked`;
      return { accept: false, reason: 'revoked', detail };
    }
    return {
      accept: true,
      peer: {
        spiffeId: id.spiffeId,
        certSerial: cert.serialNumber,
        address: unmapV4(socket.remoteAddress ?? ''),
        port: socket.remotePort ?? 0,
      },
    };
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
    const state: SessionState = { peer: handing.peer, streams: 0, idle: undefined };
    this.states.set(session, state);
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
    session.once('close', () => {
      clearTimeout(state.idle);
      this.sessions.delete(session);
    });
    this.startIdle(session, state);
  }

  /** A session with no stream is closed after idleTimeoutMs (GOAWAY: nothing is cut). */
  private startIdle(session: ServerHttp2Session, state: SessionState): void {
    clearTimeout(state.idle);
    state.idle = setTimeout(() => {
      if (state.streams > 0 || session.closed || session.destroyed) return;
      this.counters.sessionsIdleClosed += 1;
      this.log.debug(
        { peer: state.peer.spiffeId, idle_ms: this.idleTimeoutMs },
        'tunnel session idle: closing it',
      );
      session.close();
    }, this.idleTimeoutMs);
    state.idle.unref();
  }

  private onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    const session = stream.session as ServerHttp2Session;
    const state = this.states.get(session);
    if (state === undefined) return void stream.close();
    state.streams += 1;
    clearTimeout(state.idle);
    stream.once('close', () => {
      state.streams -= 1;
      if (state.streams === 0 && !session.closed && !session.destroyed) {
        this.startIdle(session, state);
      }
    });
    const peer = state.peer;
    if (headers[':method'] !== 'CONNECT' && this.opts.onRequest) {
      this.onRequest(this.opts.onRequest, stream, headers, peer);
      return;
    }
    const authority = String(headers[':authority'] ?? '');
    const target = parseAuthority(authority);
    const finish = this.opts.onStream?.({ peer, authority, ...(target ? { target } : {}) });
    if (headers[':method'] !== 'CONNECT') {
      this.notAllowed(stream, peer, authority, finish);
      return;
    }
    this.counters.streamsActive += 1;
    this.counters.streamsTotal += 1;
    void handleConnect(stream, headers, peer, {
      ...this.deps,
      record: (entry) => {
        this.counters.streamsActive -= 1;
        this.record(entry, finish);
      },
    });
  }

  /**
   * A request stream is counted with the CONNECT streams (active, total, by outcome); its
   * per-request record is the request handler's (RequestTelemetry), not a connection's.
   */
  private onRequest(
    handler: TunnelRequestHandler,
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    peer: TunnelPeer,
  ): void {
    const c = this.counters;
    c.streamsActive += 1;
    c.streamsTotal += 1;
    const count = (outcome: TunnelRequestOutcome): void => {
      c.streamsActive -= 1;
      this.count(outcome.status, outcome.reason);
    };
    handler(stream, headers, peer).then(count, (err: unknown) => {
      this.log.error({ err: describeError(err) }, 'tunnel request handler failed');
      if (!stream.destroyed) stream.close(constants.NGHTTP2_INTERNAL_ERROR);
      count({ status: 0, reason: 'internal' });
    });
  }

  private notAllowed(
    stream: ServerHttp2Stream,
    peer: TunnelPeer,
    authority: string,
    finish: ((record: TunnelAccessRecord) => void) | undefined,
  ): void {
    methodNotAllowed(stream);
    this.record(
      {
        peer,
        authority,
        status: 405,
        reason: 'unsupported',
        bytesToTarget: 0,
        bytesFromTarget: 0,
        durationMs: 0,
      },
      finish,
    );
  }

  private count(status: number, reason: StreamCloseReason): void {
    const c = this.counters;
    const key = String(status);
    c.byStatus[key] = (c.byStatus[key] ?? 0) + 1;
    const outcome = `${status} ${reason}`;
    const known = c.byOutcome.get(outcome);
    if (known) known.count += 1;
    else c.byOutcome.set(outcome, { status, reason, count: 1 });
  }

  private record(
    entry: TunnelAccessRecord,
    finish: ((record: TunnelAccessRecord) => void) | undefined,
  ): void {
    this.count(entry.status, entry.reason);
    try {
      finish?.(entry);
      if (this.opts.onAccess) this.opts.onAccess(entry);
      else if (!finish) this.log.info({ ...entry, peer: entry.peer.spiffeId }, 'tunnel stream');
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
