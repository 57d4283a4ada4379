// The receiving side of one CONNECT stream, in the order it happens: parse the target, check it
// is this host's, authorize the peer, connect to the local target, answer 200 and splice.
// Every outcome answers a status (with a `weft-reason` header when refused) and produces one
// access record.
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { describeError } from '../../errors.js';
import { formatAuthority, parseAuthority } from './authority.js';
import type { LocalAddressCheck } from './local-addresses.js';
import { splice } from './splice.js';
import type {
  AuthorizeHook,
  StreamCloseReason,
  TunnelAccessRecord,
  TunnelPeer,
  TunnelTarget,
} from './types.js';

const SPLICE_REASONS = {
  done: 'done',
  stream_reset: 'peer_reset',
  socket_reset: 'target_reset',
} as const;

/** The header that carries why a stream was refused (HTTP/2 has no reason phrase). */
export const REASON_HEADER = 'weft-reason';

export type ConnectTarget = (target: TunnelTarget) => Socket;

export interface ConnectStreamDeps {
  authorize: AuthorizeHook;
  connect: ConnectTarget;
  isLocalAddress: LocalAddressCheck;
  /** Ports of the agent itself: never a target (a stream to 15008 would loop). */
  reservedPorts: ReadonlySet<number>;
  connectTimeoutMs: number;
  record: (entry: TunnelAccessRecord) => void;
}

/** The default local connect: half-open allowed so that each direction ends on its own. */
export function connectLocal(target: TunnelTarget): Socket {
  return netConnect({
    host: target.address,
    port: target.port,
    allowHalfOpen: true,
    noDelay: true,
  });
}

/** Header values must not carry CR/LF; keep reasons short and on one line. */
function headerSafe(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, ' ').slice(0, 200);
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
      status,
      reason,
      ...(detail !== undefined ? { detail } : {}),
      bytesToTarget: bytes.to,
      bytesFromTarget: bytes.from,
      durationMs: performance.now() - started,
    });
  };
  const refuse = (status: number, reason: StreamCloseReason, detail: string): void => {
    if (!stream.destroyed && !stream.headersSent) {
      stream.respond(
        { ':status': status, [REASON_HEADER]: headerSafe(detail) },
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
  if (!decision.allow) return refuse(403, 'denied', decision.reason);
  if (stream.destroyed)
    return done(0, 'peer_reset', undefined, 'stream closed during authorization');

  connectAndSplice(stream, target, deps, done);
}

type Done = (
  status: number,
  reason: StreamCloseReason,
  bytes?: { to: number; from: number },
  detail?: string,
) => void;

function connectAndSplice(
  stream: ServerHttp2Stream,
  target: TunnelTarget,
  deps: ConnectStreamDeps,
  done: Done,
): void {
  const fail502 = (detail: string): void => {
    if (stream.destroyed) {
      done(0, 'peer_reset', undefined, 'stream closed while connecting');
      return;
    }
    stream.respond({ ':status': 502, [REASON_HEADER]: headerSafe(detail) }, { endStream: true });
    done(502, 'connect_failed', undefined, detail);
  };
  let socket: Socket;
  try {
    socket = deps.connect(target);
  } catch (err) {
    fail502(`connect to ${formatAuthority(target)} failed: ${describeError(err)}`);
    return;
  }
  const timer = setTimeout(() => {
    socket.destroy(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' }));
  }, deps.connectTimeoutMs);
  // The peer may give up (reset, session gone) before the target answers.
  const onStreamClose = (): void => {
    cleanup();
    socket.destroy();
    done(0, 'peer_reset', undefined, 'stream closed while connecting');
  };
  const onConnectError = (err: Error): void => {
    cleanup();
    fail502(`connect to ${formatAuthority(target)} failed: ${describeError(err)}`);
  };
  const onConnect = (): void => {
    cleanup();
    if (stream.destroyed) {
      socket.destroy();
      done(0, 'peer_reset', undefined, 'stream closed while connecting');
      return;
    }
    stream.respond({ ':status': 200 });
    splice(stream, socket, (result) => {
      const bytes = { to: socket.bytesWritten, from: socket.bytesRead };
      done(200, SPLICE_REASONS[result.reason], bytes, result.detail);
    });
  };
  const cleanup = (): void => {
    clearTimeout(timer);
    stream.off('close', onStreamClose);
    socket.off('error', onConnectError);
    socket.off('connect', onConnect);
  };
  stream.once('close', onStreamClose);
  socket.once('error', onConnectError);
  socket.once('connect', onConnect);
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
