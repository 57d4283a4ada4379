// The receiving side of one CONNECT stream, in the order it happens: parse the target and the
// original client, check the target is this host's, authorize the peer, connect to the local
// target (from the client's address where the connector can), answer 200 and splice.
// Every outcome answers a status (with a `weft-reason` header when refused) and produces one
// access record.
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { describeError } from '../../errors.js';
import { spliceCloseReason } from '../close-reason.js';
import { connectDirect } from '../endpoint/connect-direct.js';
import { headerSafe, REASON_HEADER } from '../http/wire-headers.js';
import { formatAuthority, parseAuthority } from './authority.js';
import { CLIENT_ADDRESS_HEADER, parseClientAddress, vouchedClient } from './client-address.js';
import type { LocalAddressCheck } from './local-addresses.js';
import { splice } from './splice.js';
import type {
  AuthorizeHook,
  StreamCloseReason,
  TunnelAccessRecord,
  TunnelPeer,
  TunnelTarget,
} from './types.js';

export { REASON_HEADER };

export interface ConnectTargetOptions {
  /** The connection's original client, as the peer sent it (weft-client-addr). */
  client: TunnelTarget | undefined;
  timeoutMs: number;
  /** Aborted when the stream closes first: the connect must stop and release its socket. */
  signal: AbortSignal;
}

export interface ConnectedTarget {
  socket: Socket;
  /** The target sees the original client's address as its peer (not the agent's). */
  preserved: boolean;
}

/** Connects to a local target; resolves once connected, rejects when it cannot. */
export type ConnectTarget = (
  target: TunnelTarget,
  opts: ConnectTargetOptions,
) => Promise<ConnectedTarget>;

export interface ConnectStreamDeps {
  authorize: AuthorizeHook;
  connect: ConnectTarget;
  isLocalAddress: LocalAddressCheck;
  /** Ports of the agent itself: never a target (a stream to 15008 would loop). */
  reservedPorts: ReadonlySet<number>;
  connectTimeoutMs: number;
  record: (entry: TunnelAccessRecord) => void;
}

/** The default local connect, from the agent's own address; half-open allowed. */
export async function connectLocal(
  target: TunnelTarget,
  opts: ConnectTargetOptions,
): Promise<ConnectedTarget> {
  const socket = await connectDirect(target.address, target.port, opts.timeoutMs, opts.signal);
  return { socket, preserved: false };
}

export async function handleConnect(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  peer: TunnelPeer,
  deps: ConnectStreamDeps,
): Promise<void> {
  const started = performance.now();
  const authority = String(headers[':authority'] ?? '');
  let target: TunnelTarget | undefined;
  let client: TunnelTarget | undefined;
  let unverified: TunnelTarget | undefined;
  let preserved = false;
  const done = (
    status: number,
    reason: StreamCloseReason,
    bytes: { to: number; from: number } = { to: 0, from: 0 },
    detail?: string,
  ): void => {
    deps.record({
      peer,
      authority,
      ...(target ? { target } : {}),
      ...(client ? { client, clientPreserved: preserved } : {}),
      ...(unverified ? { clientUnverified: unverified } : {}),
      status,
      reason,
      ...(detail !== undefined ? { detail } : {}),
      bytesToTarget: bytes.to,
      bytesFromTarget: bytes.from,
      durationMs: performance.now() - started,
    });
  };
  const refuse = (
    status: number,
    reason: StreamCloseReason,
    detail: string,
    extra?: Record<string, string>,
  ): void => {
    if (!stream.destroyed && !stream.headersSent) {
      stream.respond(
        { ':status': status, [REASON_HEADER]: headerSafe(detail), ...extra },
        { endStream: true },
      );
    }
    done(status, reason, undefined, detail);
  };
  stream.on('error', () => {}); // reported through 'close' and the record

  target = parseAuthority(authority);
  if (target === undefined) {
    return refuse(400, 'bad_request', `:authority "${authority}" is not ip:port`);
  }
  // Only logged and used as the source of the local connect: never in authorization below.
  const claimed = parseClientAddress(headers[CLIENT_ADDRESS_HEADER]);
  if (!claimed.ok) return refuse(400, 'bad_request', claimed.reason);
  ({ client, unverified } = vouchedClient(claimed.client, peer.address));
  if (!deps.isLocalAddress(target.address)) {
    return refuse(403, 'denied', `target ${authority} is not an address of this host`);
  }
  if (deps.reservedPorts.has(target.port)) {
    return refuse(403, 'denied', `target port ${target.port} belongs to the agent itself`);
  }
  let decision: Awaited<ReturnType<AuthorizeHook>>;
  try {
    decision = await deps.authorize({ peer, target });
  } catch (err) {
    // A failing policy must fail closed.
    decision = { allow: false, reason: `authorization failed: ${describeError(err)}` };
  }
  if (!decision.allow && decision.rateLimited) {
    const retryAfter = String(decision.rateLimited.retryAfter);
    return refuse(429, 'rate_limited', decision.reason, { 'retry-after': retryAfter });
  }
  if (!decision.allow) return refuse(403, 'denied', decision.reason);
  if (stream.destroyed)
    return done(0, 'client_reset', undefined, 'stream closed during authorization');

  await connectAndSplice(stream, target, client, deps, (from, ...rest) => {
    preserved = from;
    done(...rest);
  });
}

type Done = (
  status: number,
  reason: StreamCloseReason,
  bytes?: { to: number; from: number },
  detail?: string,
) => void;

/** `done` with whether the target saw the client's address first. */
type ConnectDone = (preserved: boolean, ...args: Parameters<Done>) => void;

async function connectAndSplice(
  stream: ServerHttp2Stream,
  target: TunnelTarget,
  client: TunnelTarget | undefined,
  deps: ConnectStreamDeps,
  done: ConnectDone,
): Promise<void> {
  const closedWhileConnecting = () =>
    done(false, 0, 'client_reset', undefined, 'stream closed while connecting');
  // The peer may give up (reset, session gone) before the target answers: stop connecting.
  const abort = new AbortController();
  const onStreamClose = (): void => abort.abort();
  stream.once('close', onStreamClose);
  let connected: ConnectedTarget;
  try {
    connected = await deps.connect(target, {
      client,
      timeoutMs: deps.connectTimeoutMs,
      signal: abort.signal,
    });
  } catch (err) {
    if (stream.destroyed) return closedWhileConnecting();
    const detail = `connect to ${formatAuthority(target)} failed: ${describeError(err)}`;
    stream.respond({ ':status': 502, [REASON_HEADER]: headerSafe(detail) }, { endStream: true });
    return done(false, 502, 'connect_failed', undefined, detail);
  } finally {
    stream.off('close', onStreamClose);
  }
  const { socket, preserved } = connected;
  if (stream.destroyed) {
    socket.destroy();
    return closedWhileConnecting();
  }
  stream.respond({ ':status': 200 });
  splice(stream, socket, (result) => {
    const bytes = { to: socket.bytesWritten, from: socket.bytesRead };
    done(preserved, 200, spliceCloseReason(result.reason, 'client'), bytes, result.detail);
  });
}

/** The answer to anything but CONNECT until HTTP requests ride the tunnel too. */
export function methodNotAllowed(stream: ServerHttp2Stream): void {
  stream.on('error', () => {});
  if (!stream.destroyed) {
    stream.respond(
      { ':status': 405, allow: 'CONNECT', [REASON_HEADER]: 'only CONNECT is served here' },
      { endStream: true },
    );
  }
}
