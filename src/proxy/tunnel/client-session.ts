// One pooled client session of the tunnel: a TLS 1.3 connection presenting a source identity,
// the server's SVID checked against the trust bundle and trust domain, HTTP/2 over it. It is
// ready once the server's SETTINGS arrive: that proves the server accepted our certificate
// (in TLS 1.3 the client finishes its handshake before the server has checked it) and tells
// how many streams it may carry.
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  constants,
  connect as h2connect,
  type OutgoingHttpHeaders,
} from 'node:http2';
import { type PeerCertificate, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { canonicalSerial } from '../../api/cert-serial.js';
import { type ErrorCode, WeftError } from '../../errors.js';
import type { Logger } from '../../sys/logger.js';
import { formatAuthority } from './authority.js';
import { CLIENT_ADDRESS_HEADER, formatClientAddress } from './client-address.js';
import { REASON_HEADER } from './connect-stream.js';
import { type FlowControl, localSettings } from './flow-control.js';
import { type KeepAlive, watchSession } from './keepalive.js';
import { peerSpiffeId } from './peer-identity.js';
import { resetStream } from './splice.js';
import { TUNNEL_ALPN, TUNNEL_TLS_VERSION } from './tls-context.js';
import type { TunnelIdentity, TunnelTarget } from './types.js';

/** A refused or failed CONNECT: the status the peer answered (0 if none) and its reason. */
export class TunnelStreamError extends WeftError {
  readonly status: number;
  readonly reason: string;
  /** True when nothing reached the peer's target, so opening again elsewhere is safe. */
  readonly retryable: boolean;

  constructor(code: ErrorCode, status: number, reason: string, message: string, retryable = false) {
    super(code, message);
    this.name = 'TunnelStreamError';
    this.status = status;
    this.reason = reason;
    this.retryable = retryable;
  }
}

export interface SessionParams {
  peer: { address: string; port: number };
  /** The SPIFFE ID the server must present; any identity of the trust domain when unset. */
  expectedSpiffeId?: string | undefined;
  identity: TunnelIdentity;
  trustBundle: string;
  trustDomain: string;
  flowControl: FlowControl;
  keepAlive: KeepAlive | false;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  log: Logger;
  /** The deny list: true for a revoked serial (canonical hex); such a server is refused. */
  isRevoked?: (serial: string) => boolean;
}

/** TLS alerts that mean the server rejected our certificate, or we rejected its. */
const CERT_FAILURE = /CERTIFICATE|UNKNOWN_CA|CERT_|SELF_SIGNED|UNABLE_TO_VERIFY|WEFT_E_DENIED/;

function codeOf(err: Error): string {
  return (err as NodeJS.ErrnoException).code ?? '';
}

export class ClientSession {
  readonly certPem: string;
  readonly peerName: string;
  /** The server's SPIFFE ID, from its verified certificate. */
  serverSpiffeId = '';
  /** The server certificate's serial (canonical hex). */
  serverSerial = '';
  private maxStreams = 0;
  private active = 0;
  private state: 'connecting' | 'ready' | 'draining' | 'closed' = 'connecting';
  private idleTimer: NodeJS.Timeout | undefined;
  /** Our side of the TLS handshake completed (the server may still refuse us). */
  private tlsDone = false;
  private readonly session: ClientHttp2Session;
  private readonly socket: TLSSocket;
  private readonly closeHandlers: Array<() => void> = [];
  readonly ready: Promise<void>;

  constructor(private readonly p: SessionParams) {
    this.certPem = p.identity.cert;
    this.peerName = formatAuthority(p.peer);
    this.socket = tlsConnect({
      host: p.peer.address,
      port: p.peer.port,
      key: p.identity.key,
      cert: p.identity.cert,
      ca: p.trustBundle,
      minVersion: TUNNEL_TLS_VERSION,
      ALPNProtocols: TUNNEL_ALPN,
      checkServerIdentity: (_host, cert) => this.checkServer(cert),
    });
    this.socket.setNoDelay(true);
    this.socket.once('secureConnect', () => {
      this.tlsDone = true;
    });
    this.session = h2connect(`https://${this.peerName}`, {
      createConnection: () => this.socket,
      settings: localSettings(p.flowControl),
      maxSessionMemory: p.flowControl.maxSessionMemoryMb,
    });
    this.ready = this.waitReady();
    // Settled by waitReady's own listeners; this keeps an early failure from being unhandled.
    this.ready.catch(() => {});
    this.session.on('error', (err) =>
      p.log.debug({ peer: this.peerName, err: err.message }, 'tunnel session error'),
    );
    this.session.once('goaway', () => this.drain());
    // When the connection just closes (peer crashed, FIN or RST), Node cancels open streams
    // without an error, so a reader waiting for 'end' would wait forever. Running before
    // Node's own handler, this turns the loss into an error every open stream emits.
    this.socket.prependListener('close', () => {
      if (this.state === 'connecting' || this.session.destroyed) return;
      this.session.destroy(
        new WeftError('WEFT_E_UNAVAILABLE', `tunnel connection to ${this.peerName} was lost`),
      );
    });
    this.session.once('close', () => this.onClose());
  }

  private checkServer(cert: PeerCertificate): Error | undefined {
    // A tunnel server is always an agent: its identity is a node's, never a service's.
    const id = peerSpiffeId(cert, this.p.trustDomain, ['node']);
    if (!id.ok) {
      return Object.assign(new Error(`tunnel peer ${this.peerName}: ${id.reason}`), {
        code: 'WEFT_E_DENIED',
      });
    }
    // Checked in the handshake, so a session to the wrong host is never pooled.
    const expected = this.p.expectedSpiffeId;
    if (expected !== undefined && id.spiffeId !== expected) {
      return Object.assign(
        new Error(`tunnel peer ${this.peerName} presented ${id.spiffeId}, expected ${expected}`),
        { code: 'WEFT_E_DENIED' },
      );
    }
    const serial = canonicalSerial(cert.serialNumber);
    if (this.p.isRevoked?.(serial)) {
      return Object.assign(
        new Error(
          `tunnel peer ${this.peerName} (${id.spiffeId}): its certificate is revoked (serial ${serial})`,
        ),
        { code: 'WEFT_E_DENIED' },
      );
    }
    this.serverSpiffeId = id.spiffeId;
    this.serverSerial = serial;
    return undefined;
  }

  private waitReady(): Promise<void> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.session.off('error', fail);
        this.session.off('close', onEarlyClose);
        const cert = CERT_FAILURE.test(codeOf(err)) || CERT_FAILURE.test(err.message);
        const code: ErrorCode = cert ? 'WEFT_E_DENIED' : 'WEFT_E_UNAVAILABLE';
        reject(
          new WeftError(code, `tunnel to ${this.peerName}: handshake failed: ${err.message}`, {
            cause: err,
          }),
        );
        this.session.destroy();
      };
      const timer = setTimeout(
        () => fail(new Error(`no answer within ${this.p.handshakeTimeoutMs} ms`)),
        this.p.handshakeTimeoutMs,
      );
      // A TLS 1.3 server checks our certificate after our side of the handshake is done, and
      // Node's server closes without an alert when the chain does not verify: a close after
      // 'secureConnect' and before the server's SETTINGS is a refusal of our certificate.
      const onEarlyClose = (): void => {
        const refused = this.tlsDone;
        fail(
          Object.assign(
            new Error(
              refused
                ? 'the peer closed the connection after the TLS handshake: it refused our certificate or identity'
                : 'the connection closed during the TLS handshake',
            ),
            refused ? { code: 'WEFT_E_DENIED' } : {},
          ),
        );
      };
      this.session.once('error', fail);
      this.session.once('close', onEarlyClose);
      this.session.once('remoteSettings', (settings) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.session.off('error', fail);
        this.session.off('close', onEarlyClose);
        // Unlimited unless the server says otherwise (RFC 9113 section 6.5.2).
        this.maxStreams = settings.maxConcurrentStreams ?? 2 ** 32 - 1;
        if (this.maxStreams < 1) {
          this.session.destroy();
          return reject(
            new WeftError(
              'WEFT_E_UNAVAILABLE',
              `tunnel to ${this.peerName}: the server allows no streams`,
            ),
          );
        }
        this.session.setLocalWindowSize(this.p.flowControl.connectionWindowBytes);
        watchSession(this.session, this.socket, this.p.keepAlive, () => {
          this.p.log.warn({ peer: this.peerName }, 'tunnel peer stopped answering PINGs');
          return new WeftError(
            'WEFT_E_UNAVAILABLE',
            'tunnel peer did not answer a keep-alive PING',
          );
        });
        if (this.state === 'connecting') this.state = 'ready';
        this.startIdle();
        resolve();
      });
    });
  }

  /** Ready and not draining: takes new streams while it has room. */
  get accepting(): boolean {
    return this.state === 'ready';
  }

  get isOpen(): boolean {
    return this.state !== 'closed';
  }

  get streamsActive(): number {
    return this.active;
  }

  /** Takes one stream slot if the session is ready and not full; the caller must open. */
  reserve(): boolean {
    if (this.state !== 'ready' || this.active >= this.maxStreams) return false;
    this.active += 1;
    clearTimeout(this.idleTimer);
    return true;
  }

  release(): void {
    this.active -= 1;
    if (this.active === 0) this.startIdle();
  }

  /** No new streams; open ones finish, then the session closes (GOAWAY). */
  drain(): void {
    if (this.state === 'closed' || this.state === 'draining') return;
    this.state = 'draining';
    clearTimeout(this.idleTimer);
    if (!this.session.closed && !this.session.destroyed) this.session.close();
  }

  destroy(): void {
    this.session.destroy();
  }

  onClosed(handler: () => void): void {
    this.closeHandlers.push(handler);
  }

  private onClose(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.idleTimer);
    for (const handler of this.closeHandlers) handler();
  }

  private startIdle(): void {
    if (this.state !== 'ready') return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.drain(), this.p.idleTimeoutMs);
    this.idleTimer.unref();
  }

  /**
   * Opens an HTTP request stream (HTTP riding the tunnel, beside the CONNECT streams) on a
   * reserved slot, which is released when the stream closes. Throws a retryable
   * TunnelStreamError when the session can no longer open streams: nothing was sent.
   */
  openRequest(headers: OutgoingHttpHeaders, endStream: boolean): ClientHttp2Stream {
    try {
      const stream = this.session.request(headers, { endStream });
      stream.once('close', () => this.release());
      return stream;
    } catch (err) {
      this.release();
      throw new TunnelStreamError(
        'WEFT_E_UNAVAILABLE',
        0,
        'session closed',
        `tunnel to ${this.peerName}: cannot open a stream: ${(err as Error).message}`,
        true,
      );
    }
  }

  /**
   * Opens a CONNECT stream to `target` on a reserved slot, naming the original `client` when
   * known; resolves with the stream once the peer answers 200, rejects with a
   * TunnelStreamError otherwise.
   */
  connect(
    target: TunnelTarget,
    timeoutMs: number,
    client?: TunnelTarget,
  ): Promise<ClientHttp2Stream> {
    const authority = formatAuthority(target);
    let stream: ClientHttp2Stream;
    try {
      stream = this.session.request(
        {
          ':method': 'CONNECT',
          ':authority': authority,
          ...(client ? { [CLIENT_ADDRESS_HEADER]: formatClientAddress(client) } : {}),
        },
        { endStream: false },
      );
    } catch (err) {
      this.release();
      return Promise.reject(
        new TunnelStreamError(
          'WEFT_E_UNAVAILABLE',
          0,
          'session closed',
          `tunnel to ${this.peerName}: cannot open a stream: ${(err as Error).message}`,
          true,
        ),
      );
    }
    stream.once('close', () => this.release());
    return new Promise((resolve, reject) => {
      const settle = (err?: TunnelStreamError): void => {
        clearTimeout(timer);
        stream.off('response', onResponse);
        stream.off('error', onError);
        stream.off('close', onClose);
        // An error between here and the caller attaching its listeners (the session dying in
        // the same tick) must not crash the agent: the caller sees it through 'close' too.
        stream.on('error', () => {});
        if (err === undefined) {
          resolve(stream);
          return;
        }
        resetStream(stream, constants.NGHTTP2_CANCEL);
        reject(err);
      };
      const fail = (status: number, reason: string, retryable: boolean): void => {
        const code: ErrorCode =
          status === 403
            ? 'WEFT_E_DENIED'
            : status === 400 || status === 405
              ? 'WEFT_E_INTERNAL'
              : 'WEFT_E_UNAVAILABLE';
        const what = status === 0 ? 'no answer' : `status ${status}`;
        settle(
          new TunnelStreamError(
            code,
            status,
            reason,
            `tunnel to ${this.peerName} for ${authority}: ${what}: ${reason}`,
            retryable,
          ),
        );
      };
      const onResponse = (headers: Record<string, unknown>): void => {
        const status = Number(headers[':status']);
        if (status === 200) settle();
        else fail(status, String(headers[REASON_HEADER] ?? 'no reason given'), false);
      };
      // REFUSED_STREAM and a session lost before any answer: nothing reached the target.
      const onError = (err: Error): void => {
        const refused = stream.rstCode === constants.NGHTTP2_REFUSED_STREAM;
        const lost = this.session.closed || this.session.destroyed;
        fail(0, refused ? 'stream refused' : err.message, refused || lost);
      };
      const onClose = (): void => fail(0, `stream closed (code ${stream.rstCode})`, true);
      const timer = setTimeout(() => fail(0, `no answer within ${timeoutMs} ms`, false), timeoutMs);
      stream.once('response', onResponse);
      stream.once('error', onError);
      stream.once('close', onClose);
    });
  }
}
