// The sending end of the tunnel: a pool of HTTP/2-over-mTLS sessions per (source identity,
// peer address, peer identity), each captured connection riding one CONNECT stream and each
// HTTP request one request stream (client-request.ts). Steady
// traffic makes no new handshakes; opens that arrive while a session is being set up share its
// handshake; a full, draining, rotated or dead session is replaced without the caller noticing.
// The peer's identity is in the key and checked in the handshake, so a session to a host that
// no longer holds an address (a rebuilt host) is never taken for the address's new owner.
import { X509Certificate } from 'node:crypto';
import type { ClientHttp2Stream, OutgoingHttpHeaders } from 'node:http2';
import { pino } from 'pino';
import { isWeftError, WeftError } from '../../errors.js';
import type { Logger } from '../../sys/logger.js';
import type { L7Response } from '../http/types.js';
import { checkTarget, formatAuthority } from './authority.js';
import { sendRequest, type TunnelRequestBody } from './client-request.js';
import { ClientSession, TunnelStreamError } from './client-session.js';
import { type FlowControl, flowControlOf } from './flow-control.js';
import { type KeepAlive, keepAliveOf } from './keepalive.js';
import { checkBundle } from './tls-context.js';
import type { TunnelIdentity, TunnelTarget } from './types.js';

export interface TunnelPoolOptions {
  /** The mesh's trust domain: servers from any other are refused. */
  trustDomain: string;
  /** PEM CA certificates that servers' chains must lead to. */
  trustBundle: string;
  /** A session with no streams for this long is closed; default 5 minutes. */
  idleTimeoutMs?: number;
  /** TLS + HTTP/2 setup of a new session; default 10 s. */
  handshakeTimeoutMs?: number;
  /** Waiting for the peer's answer to a CONNECT (it connects to its local target); default 15 s. */
  openTimeoutMs?: number;
  keepAlive?: KeepAlive | false;
  flowControl?: Partial<FlowControl>;
  log?: Logger;
  /** The deny list: true for a revoked serial (canonical hex); such servers are refused. */
  isRevoked?: (serial: string) => boolean;
}

export interface TunnelOpenRequest {
  /** Who opens it: the local workload's identity (or the node's). */
  source: TunnelIdentity;
  /** The peer agent's tunnel port, and the SPIFFE ID it must present, if known. */
  peer: { address: string; port: number; expectedSpiffeId?: string };
  /** The endpoint behind the peer agent. */
  target: TunnelTarget;
  /** The connection's original client on this host, sent along (weft-client-addr). */
  client?: TunnelTarget;
}

/** What picks a pooled session: who opens it, and which peer agent (and its identity). */
type SessionKey = Pick<TunnelOpenRequest, 'source' | 'peer'>;

/** An HTTP request riding the tunnel (see client-request.ts). */
export interface TunnelHttpRequest extends TunnelRequestBody {
  source: TunnelIdentity;
  peer: TunnelOpenRequest['peer'];
  /** The wire headers: pseudo-headers, end-to-end fields and weft's own (weft-target, ...). */
  headers: OutgoingHttpHeaders;
  /**
   * Told when the request goes out on a session, after any handshake: latency measured from
   * here is the peer's, not the cost of reaching it (a balancer must not hold a first
   * request's handshake against an endpoint).
   */
  onSent?: () => void;
}

/**
 * A CONNECT stream: a Duplex (write/end toward the target, read until the target's FIN), and
 * an HTTP/2 stream, so that splice() can map resets both ways.
 */
export type TunnelStream = ClientHttp2Stream;

export interface TunnelPoolStats {
  /** Open sessions, draining ones included. */
  sessions: number;
  handshakesTotal: number;
  handshakeFailuresTotal: number;
  streamsActive: number;
  streamsTotal: number;
}

/** One (source identity, peer address, peer identity): its sessions and any handshake. */
interface Slot {
  sessions: ClientSession[];
  /** The identity new sessions use: the latest certificate seen for this source. */
  identity: TunnelIdentity;
  /** Certificates it replaced (bounded), so a late open with one does not rotate back. */
  replaced: string[];
  dialing: Promise<ClientSession> | undefined;
}

const WHERE = 'tunnel pool';
const MAX_REPLACED = 8;

/** A slot's key. The expected peer identity belongs in it: two hosts may hold one address in turn. */
function slotKey(req: SessionKey): string {
  return `${req.source.spiffeId} ${formatAuthority(req.peer)} ${req.peer.expectedSpiffeId ?? '*'}`;
}

function positive(value: number | undefined, fallback: number, field: string): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v <= 0) {
    throw new WeftError('WEFT_E_CONFIG', `${WHERE}: ${field} must be a positive number, got ${v}`);
  }
  return v;
}

export class TunnelPool {
  private readonly slots = new Map<string, Slot>();
  private trustBundle: string;
  private readonly trustDomain: string;
  private readonly fc: FlowControl;
  private readonly keepAlive: KeepAlive | false;
  private readonly idleTimeoutMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly openTimeoutMs: number;
  private readonly log: Logger;
  private readonly isRevoked: ((serial: string) => boolean) | undefined;
  private closed = false;
  private readonly counters = {
    handshakesTotal: 0,
    handshakeFailuresTotal: 0,
    streamsTotal: 0,
  };

  constructor(opts: TunnelPoolOptions) {
    if (typeof opts?.trustDomain !== 'string' || !/^[a-z0-9._-]+$/.test(opts.trustDomain)) {
      throw new WeftError(
        'WEFT_E_CONFIG',
        `${WHERE}: trustDomain must be a SPIFFE trust domain, got "${opts?.trustDomain}"`,
      );
    }
    checkBundle(opts.trustBundle, `${WHERE}: trustBundle`);
    this.trustDomain = opts.trustDomain;
    this.trustBundle = opts.trustBundle;
    this.fc = flowControlOf(opts.flowControl, WHERE);
    this.keepAlive = keepAliveOf(opts.keepAlive, WHERE);
    this.idleTimeoutMs = positive(opts.idleTimeoutMs, 300_000, 'idleTimeoutMs');
    this.handshakeTimeoutMs = positive(opts.handshakeTimeoutMs, 10_000, 'handshakeTimeoutMs');
    this.openTimeoutMs = positive(opts.openTimeoutMs, 15_000, 'openTimeoutMs');
    this.log = opts.log ?? pino({ level: 'silent' });
    this.isRevoked = opts.isRevoked;
  }

  /**
   * A duplex whose bytes ride a CONNECT stream to `target` behind `peer`. end() sends
   * END_STREAM (the target sees FIN); the target's FIN ends the readable side; a reset or a
   * lost session errors it (WEFT_E_UNAVAILABLE) and closes it. splice() it onto a socket for
   * coalesced writes and resets mapped both ways. Rejects with a TunnelStreamError
   * (WEFT_E_DENIED for 403, WEFT_E_UNAVAILABLE when the target or the peer cannot be reached)
   * or a WeftError from the handshake (WEFT_E_DENIED for a peer that is not
   * `expectedSpiffeId`, or that refused our certificate).
   */
  async open(req: TunnelOpenRequest): Promise<TunnelStream> {
    if (this.closed) throw new WeftError('WEFT_E_UNAVAILABLE', `${WHERE}: closed`);
    checkRequest(req);
    // One retry, only for failures where nothing reached the target (refused stream, a
    // session that went away before answering): the caller never sees a pooled session die.
    for (let attempt = 0; ; attempt++) {
      // A pooled session with room (the usual case) without an await of its own.
      const session = this.reserveOpen(req) ?? (await this.acquire(req));
      this.counters.streamsTotal += 1;
      try {
        return await session.connect(req.target, this.openTimeoutMs, req.client);
      } catch (err) {
        if (attempt === 0 && err instanceof TunnelStreamError && err.retryable) {
          // The session may be the broken part: let the next attempt pick or dial another.
          session.drain();
          continue;
        }
        throw err;
      }
    }
  }

  /**
   * Sends one HTTP request as an HTTP/2 stream on a pooled session to `peer`; resolves with
   * the response (its body the stream, trailers kept). Rejects with a TunnelStreamError whose
   * `retryable` says that nothing reached the peer's app (no session could be made, or the
   * stream was refused before a body byte was taken): the caller may try another endpoint.
   * A refused stream is retried here once, on another session, as open() does.
   */
  async request(req: TunnelHttpRequest): Promise<L7Response> {
    if (this.closed) throw new WeftError('WEFT_E_UNAVAILABLE', `${WHERE}: closed`);
    checkSessionKey(req, 'request');
    for (let attempt = 0; ; attempt++) {
      let session: ClientSession;
      try {
        // A pooled session with room (the usual case) without an await of its own.
        session = this.reserveOpen(req) ?? (await this.acquire(req));
      } catch (err) {
        // No session: nothing was sent anywhere. The code is the new error's: its message is
        // the cause's own (describeError would name the code twice).
        const code = isWeftError(err) ? err.code : 'WEFT_E_UNAVAILABLE';
        const message = err instanceof Error ? err.message : String(err);
        throw new TunnelStreamError(code, 0, 'no session', message, true);
      }
      this.counters.streamsTotal += 1;
      req.onSent?.();
      try {
        return await sendRequest(session, req.headers, req);
      } catch (err) {
        if (attempt === 0 && err instanceof TunnelStreamError && err.retryable) {
          session.drain();
          continue;
        }
        throw err;
      }
    }
  }

  /** New sessions verify servers against `pem`; open sessions keep going. */
  setTrustBundle(pem: string): void {
    checkBundle(pem, `${WHERE}: setTrustBundle`);
    this.trustBundle = pem;
  }

  stats(): TunnelPoolStats {
    let sessions = 0;
    let streamsActive = 0;
    for (const slot of this.slots.values()) {
      for (const s of slot.sessions) {
        sessions += 1;
        streamsActive += s.streamsActive;
      }
    }
    return { sessions, streamsActive, ...this.counters };
  }

  /** Refuses new opens, drains every session, and cuts what is left after graceMs. */
  async close(graceMs = 10_000): Promise<void> {
    this.closed = true;
    const all = [...this.slots.values()].flatMap((slot) => slot.sessions);
    const timer = setTimeout(() => this.destroy(), graceMs);
    timer.unref();
    await Promise.all(
      all.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.onClosed(resolve);
            s.drain();
            if (!s.isOpen) resolve();
          }),
      ),
    );
    clearTimeout(timer);
  }

  /** Cuts the sessions to servers whose certificate isRevoked() now; returns how many. */
  closeRevoked(): number {
    const isRevoked = this.isRevoked;
    if (isRevoked === undefined) return 0;
    let closed = 0;
    for (const slot of this.slots.values()) {
      for (const s of slot.sessions) {
        if (s.serverSerial === '' || !isRevoked(s.serverSerial)) continue;
        this.log.warn(
          { peer: s.peerName, server: s.serverSpiffeId },
          'tunnel session closed: the server certificate was revoked',
        );
        s.destroy();
        closed += 1;
      }
    }
    return closed;
  }

  /** Cuts every session at once. */
  destroy(): void {
    this.closed = true;
    for (const slot of this.slots.values()) for (const s of slot.sessions) s.destroy();
  }

  /** A session with a reserved stream slot for this request, dialing one if needed. */
  /**
   * An open session of this key's slot with room, reserved; undefined when acquire() must run
   * (no slot yet, a new certificate for the source, every session full or draining).
   */
  private reserveOpen(req: SessionKey): ClientSession | undefined {
    const slot = this.slots.get(slotKey(req));
    if (slot === undefined || slot.identity.cert !== req.source.cert) return undefined;
    const cert = slot.identity.cert;
    for (const s of slot.sessions) {
      if (s.certPem === cert && s.reserve()) return s;
    }
    return undefined;
  }

  private async acquire(req: SessionKey): Promise<ClientSession> {
    const key = slotKey(req);
    let slot = this.slots.get(key);
    if (slot === undefined) {
      slot = { sessions: [], identity: req.source, replaced: [], dialing: undefined };
      this.slots.set(key, slot);
    } else if (slot.identity.cert !== req.source.cert) {
      this.noteIdentity(slot, req.source);
    }
    // A full new session sends the waiter round again (legitimately, under a burst); a
    // session that stopped taking streams right after its handshake does so a few times only.
    let stillborn = 0;
    for (;;) {
      // Reserve synchronously after finding: waiters woken together must not overfill it.
      const cert = slot.identity.cert;
      for (const s of slot.sessions) {
        if (s.certPem === cert && s.reserve()) return s;
      }
      slot.dialing ??= this.dial(key, slot, req);
      const dialed = await slot.dialing;
      if (dialed.certPem === slot.identity.cert && dialed.reserve()) return dialed;
      if (!dialed.accepting && ++stillborn >= 3) {
        throw new WeftError(
          'WEFT_E_UNAVAILABLE',
          `tunnel to ${dialed.peerName}: the peer closes new sessions right away (shutting down?)`,
        );
      }
    }
  }

  /**
   * A certificate not seen before for this source replaces the slot's identity unless it is
   * older (notBefore earlier): new sessions use it, old ones finish their streams. Opens
   * that still carry a replaced certificate ride the current sessions.
   */
  private noteIdentity(slot: Slot, identity: TunnelIdentity): void {
    if (slot.replaced.includes(identity.cert)) return;
    const notBefore = (pem: string): number => Date.parse(new X509Certificate(pem).validFrom);
    if (notBefore(identity.cert) < notBefore(slot.identity.cert)) {
      slot.replaced.push(identity.cert);
    } else {
      slot.replaced.push(slot.identity.cert);
      slot.identity = identity;
      for (const s of slot.sessions) s.drain();
    }
    if (slot.replaced.length > MAX_REPLACED) slot.replaced.shift();
  }

  /** Drops an empty slot, unless a newer slot has taken its key meanwhile. */
  private forgetIfEmpty(key: string, slot: Slot): void {
    if (slot.sessions.length > 0 || slot.dialing !== undefined) return;
    if (this.slots.get(key) === slot) this.slots.delete(key);
  }

  private dial(key: string, slot: Slot, req: SessionKey): Promise<ClientSession> {
    const session = new ClientSession({
      peer: { address: req.peer.address, port: req.peer.port },
      expectedSpiffeId: req.peer.expectedSpiffeId,
      identity: slot.identity,
      trustBundle: this.trustBundle,
      trustDomain: this.trustDomain,
      flowControl: this.fc,
      keepAlive: this.keepAlive,
      handshakeTimeoutMs: this.handshakeTimeoutMs,
      idleTimeoutMs: this.idleTimeoutMs,
      log: this.log,
      isRevoked: this.isRevoked,
    });
    session.onClosed(() => {
      const i = slot.sessions.indexOf(session);
      if (i >= 0) slot.sessions.splice(i, 1);
      this.forgetIfEmpty(key, slot);
      this.log.debug(
        { peer: session.peerName, source: req.source.spiffeId },
        'tunnel session closed',
      );
    });
    return session.ready.then(
      () => {
        slot.dialing = undefined;
        this.counters.handshakesTotal += 1;
        // A source rotated during the handshake: this session is born stale.
        if (session.certPem !== slot.identity.cert) session.drain();
        else if (this.closed) session.drain();
        if (session.isOpen) slot.sessions.push(session);
        this.log.debug(
          { peer: session.peerName, source: req.source.spiffeId },
          'tunnel session open',
        );
        return session;
      },
      (err: unknown) => {
        slot.dialing = undefined;
        this.counters.handshakeFailuresTotal += 1;
        this.forgetIfEmpty(key, slot);
        this.log.warn(
          { peer: session.peerName, source: req.source.spiffeId, err: (err as Error).message },
          'tunnel handshake failed',
        );
        throw err;
      },
    );
  }
}

function checkRequest(req: TunnelOpenRequest): void {
  checkSessionKey(req, 'open');
  try {
    checkTarget(req.target, 'target');
    if (req.client !== undefined) checkTarget(req.client, 'client');
  } catch (err) {
    throw new WeftError('WEFT_E_USAGE', `${WHERE}.open: ${(err as Error).message}`);
  }
}

function checkSessionKey(req: SessionKey, method: string): void {
  const s = req?.source;
  const bad = (msg: string): never => {
    throw new WeftError('WEFT_E_USAGE', `${WHERE}.${method}: ${msg}`);
  };
  if (typeof s?.spiffeId !== 'string' || !s.spiffeId.startsWith('spiffe://')) {
    bad('source.spiffeId must be a spiffe:// URI');
  }
  if (typeof s.key !== 'string' || typeof s.cert !== 'string') {
    bad('source.key and source.cert must be PEM text');
  }
  try {
    checkTarget(req.peer, 'peer');
  } catch (err) {
    bad((err as Error).message);
  }
}
