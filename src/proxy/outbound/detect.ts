// Stage "protocol": what a captured connection speaks, from its Service port's `protocol` and,
// when that is `auto` or `http`, from the first bytes the client sends. Every byte read is put
// back (socket.unshift, in order) and the socket is left paused, so whatever handles the
// connection next (an HTTP server, the opaque relay) sees the stream from its first byte.
// Handing it to a Node HTTP server: `server.emit('connection', socket)` then `socket.resume()`
// (http and http2 servers read the socket's handle and start only when it is resumed; they take
// the bytes put back first). test/integration/detect.test.ts shows both.
import type { Socket } from 'node:net';
import { parseSni, sniffHttpVersion, sniffProtocol } from './detect-sniff.js';

export type Detected =
  | { kind: 'http1' }
  | { kind: 'http2' }
  | { kind: 'tls'; sni?: string }
  | { kind: 'opaque'; why: string };

/** Why a connection is opaque: a closed vocabulary, used in log lines and metric labels. */
export const OPAQUE_REASONS = [
  'declared_tcp', // the port says `tcp`: nothing is read
  'no_bytes_in_window', // `auto`: the client said nothing within the window (server speaks first)
  'undecided_in_window', // `auto`: what it sent within the window was still ambiguous
  'not_http_or_tls', // `auto`: the first bytes are neither HTTP nor a TLS ClientHello
  'client_ended', // the client half-closed before its bytes decided anything
  'client_closed', // the connection closed or failed during detection
] as const;
export type OpaqueReason = (typeof OPAQUE_REASONS)[number];

/**
 * How long an `auto` port waits for the client's first byte before treating the connection
 * as opaque. Its cost: a client of a server-speaks-first protocol (MySQL, SMTP, a banner) waits
 * this long once per connection before it hears the server (declare such ports `tcp` to avoid
 * it). Shorter would misjudge client-speaks-first apps that connect and write a moment later
 * (they would still work, as opaque TCP, but lose per-request balancing and metrics); on the
 * capturing host a client's first bytes follow its connect within microseconds, so 200 ms
 * leaves a wide margin while staying far under Linkerd's 10 s, which makes such ports unusable
 * until declared. The timer's expiry is checked again after one round of I/O, so bytes that
 * arrived while the event loop was busy are never missed.
 */
export const DETECT_WINDOW_MS = 200;

export interface DetectOptions {
  protocol: 'tcp' | 'http' | 'http2' | 'grpc' | 'auto';
  /** `auto` only: how long to wait for a first byte (DETECT_WINDOW_MS in production). */
  windowMs: number;
}

/**
 * Decides what `socket` (paused, as accepted) speaks. Resolves, never rejects: a connection that
 * closes or fails meanwhile is opaque, and the relay that takes it over sees the close. `tcp`,
 * `http2` and `grpc` read nothing (the HTTP/2 server checks the preface itself); `http` waits as
 * long as the client takes (the caller's socket timeout bounds it); `auto` waits at most
 * `windowMs` for the bytes to decide.
 */
export function detectProtocol(socket: Socket, opts: DetectOptions): Promise<Detected> {
  switch (opts.protocol) {
    case 'tcp':
      return Promise.resolve({ kind: 'opaque', why: 'declared_tcp' });
    case 'http2':
    case 'grpc':
      return Promise.resolve({ kind: 'http2' });
    case 'http':
      return sniff(socket, decideHttp, undefined);
    case 'auto':
      return sniff(socket, decideAuto, { ms: opts.windowMs, expire: expireAuto });
  }
}

/** A decision over the bytes so far; undefined: wait for more. */
type Decide = (bytes: Buffer) => Detected | undefined;

function decideHttp(bytes: Buffer): Detected | undefined {
  const version = sniffHttpVersion(bytes);
  return version === 'more' ? undefined : { kind: version };
}

function decideAuto(bytes: Buffer): Detected | undefined {
  const sniffed = sniffProtocol(bytes);
  switch (sniffed) {
    case 'more':
      return undefined;
    case 'opaque':
      return { kind: 'opaque', why: 'not_http_or_tls' };
    case 'tls': {
      // A ClientHello comes whole before the client waits for the server: wait for its SNI.
      const sni = parseSni(bytes);
      if (sni.kind === 'more') return undefined;
      return sni.sni === undefined ? { kind: 'tls' } : { kind: 'tls', sni: sni.sni };
    }
    default:
      return { kind: sniffed };
  }
}

/** `auto` when the window passes undecided. */
function expireAuto(bytes: Buffer): Detected {
  if (bytes.length === 0) return { kind: 'opaque', why: 'no_bytes_in_window' };
  // A ClientHello that has not fully arrived is still TLS: only its name is unknown.
  if (sniffProtocol(bytes) === 'tls') return { kind: 'tls' };
  return { kind: 'opaque', why: 'undecided_in_window' };
}

/** The client half-closed with these bytes undecided: nothing more will come. */
function atEnd(decide: Decide, bytes: Buffer): Detected {
  if (decide === decideHttp) return { kind: 'http1' }; // its server answers the partial request
  if (bytes.length > 0 && sniffProtocol(bytes) === 'tls') return { kind: 'tls' };
  return { kind: 'opaque', why: 'client_ended' };
}

/**
 * The executor: reads in paused mode ('readable' and read()), so that the client's FIN is seen
 * before the stream emits 'end'; putting the bytes back then keeps 'end' from being emitted
 * until the next reader has consumed them (Node checks for "one last unshift").
 */
function sniff(
  socket: Socket,
  decide: Decide,
  window: { ms: number; expire: (bytes: Buffer) => Detected } | undefined,
): Promise<Detected> {
  if (socket.destroyed || socket.readableEnded) {
    return Promise.resolve({ kind: 'opaque', why: 'client_closed' });
  }
  return new Promise<Detected>((resolve) => {
    let bytes: Buffer = Buffer.alloc(0);
    let finished = false;
    let timer: NodeJS.Timeout | undefined;

    const finish = (result: Detected): void => {
      if (finished) return;
      finished = true;
      if (timer !== undefined) clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('close', onClose);
      socket.off('error', onClose);
      if (socket.destroyed) {
        resolve({ kind: 'opaque', why: 'client_closed' });
        return;
      }
      if (bytes.length > 0) socket.unshift(bytes);
      // Removing the last 'readable' listener makes the stream "not paused, not flowing" on the
      // next tick; pause it after that, so that it stays paused until its next owner reads.
      process.nextTick(() => {
        if (!socket.destroyed) socket.pause();
        resolve(result);
      });
    };

    function onReadable(): void {
      let got = false;
      for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read()) {
        bytes = bytes.length === 0 ? chunk : Buffer.concat([bytes, chunk]);
        got = true;
      }
      // 'readable' with nothing to read is the end of the stream (the client's FIN).
      const result = decide(bytes) ?? (got ? undefined : atEnd(decide, bytes));
      if (result !== undefined) finish(result);
    }

    function onClose(): void {
      finish({ kind: 'opaque', why: 'client_closed' });
    }

    socket.on('readable', onReadable);
    socket.once('close', onClose);
    socket.once('error', onClose);
    if (window !== undefined) {
      timer = setTimeout(() => {
        // Bytes may have reached the kernel while the event loop was busy past the window: let
        // one round of I/O deliver them before judging the client silent.
        setImmediate(() => finish(window.expire(bytes)));
      }, window.ms);
    }
  });
}
