// Splices an HTTP/2 CONNECT stream and a TCP socket both ways, at either end of the tunnel
// (receiving agent: stream <-> local target; sending agent: captured app socket <-> stream).
// Backpressure both ways: a slow reader stops the other side (the stream's window is not
// re-opened while its data sits unread), so nothing buffers without bound. Half-close maps
// END_STREAM <-> FIN. Errors follow RFC 9113 section 8.5: a TCP error resets the stream with
// CONNECT_ERROR, and a reset stream resets the TCP connection.
import { constants, type Http2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';

export interface SpliceResult {
  /** done: both directions ended cleanly; otherwise which side broke first. */
  reason: 'done' | 'stream_reset' | 'socket_reset';
  detail?: string;
}

function codeOf(err: Error): string {
  return (err as NodeJS.ErrnoException).code ?? err.message;
}

/** Pipes `stream` <-> `socket`; `onDone` is called once, after both have closed. */
export function splice(
  stream: Http2Stream,
  socket: Socket,
  onDone: (result: SpliceResult) => void,
): void {
  let result: SpliceResult = { reason: 'done' };
  let open = 2;
  const fail = (reason: SpliceResult['reason'], detail: string): void => {
    if (result.reason === 'done') result = { reason, detail };
  };
  const finish = (): void => {
    open -= 1;
    if (open === 0) onDone(result);
  };

  stream.on('error', (err) => fail('stream_reset', codeOf(err)));
  socket.on('error', (err) => fail('socket_reset', codeOf(err)));

  stream.once('close', () => {
    // Closed without both halves done: the peer reset it or its session died.
    if (wasReset(stream) || !stream.readableEnded) {
      fail('stream_reset', `stream reset (code ${stream.rstCode})`);
      if (!socket.destroyed) socket.resetAndDestroy();
    }
    finish();
  });
  socket.once('close', (hadError) => {
    if (hadError) resetStream(stream, constants.NGHTTP2_CONNECT_ERROR);
    finish();
  });

  pump(stream, socket, 'coalesced', () => {
    // Node also ends the readable side of a stream that was reset (RST_STREAM): that must
    // reach the socket as a reset, not as a clean FIN.
    if (socket.destroyed) return;
    if (wasReset(stream)) socket.resetAndDestroy();
    else socket.end();
  });
  pump(socket, stream, 'direct', () => {
    if (!stream.destroyed && !stream.writableEnded) stream.end();
  });
}

/**
 * How much may wait in the writer's buffer before the reader is paused: the fixed cap per
 * direction of a stream. Well above one read (64 KiB): a writer at its highWaterMark (64 KiB,
 * one read's worth) would otherwise pause and resume the reader on every read, and the reader
 * would sit idle while one chunk is framed and encrypted.
 */
const PUMP_LIMIT = 256 * 1024;

/**
 * How `pump` hands chunks to its writer.
 * - coalesced (stream -> socket): corked from the first chunk of a turn until setImmediate, so
 *   the chunks of a turn go out as one writev. HTTP/2 hands DATA over in pieces cut at TLS
 *   record boundaries (16 KiB, a frame header often in the middle): written one by one they
 *   cost two write syscalls per 16 KiB.
 * - direct (socket -> stream): each read written at once. Node's HTTP/2 session already sends
 *   what its streams were given in one pass per event-loop turn (a native immediate); corking
 *   the stream as well delayed every request's or answer's bytes by a whole turn, since the
 *   session's send then ran only in the next one. That cost a third of the L4 keep-alive rate
 *   (bench probe: 12.1-13.5k against 17.2-18.0k req/s, with more CPU per request) and gained
 *   nothing in bulk throughput.
 */
type Writes = 'coalesced' | 'direct';

/**
 * `from` -> `to`, with `from` paused while more than PUMP_LIMIT waits in `to` and resumed on
 * 'drain' (not on every read, as pipe() does at the writer's 64 KiB highWaterMark); `onEnd`
 * runs when `from` ends.
 */
function pump(from: Readable, to: Writable, writes: Writes, onEnd: () => void): void {
  let corked = false;
  const flush = (): void => {
    corked = false;
    to.uncork();
  };
  from.on('data', (chunk: Buffer) => {
    if (to.destroyed) return;
    if (writes === 'coalesced' && !corked) {
      corked = true;
      to.cork();
      setImmediate(flush);
    }
    if (!to.write(chunk) && to.writableLength >= PUMP_LIMIT) from.pause();
  });
  to.on('drain', () => from.resume());
  from.once('end', onEnd);
  // As pipe() did: a reader paused until its upstream was ready starts flowing now.
  from.resume();
}

const EMPTY = Buffer.alloc(0);

/**
 * Sends RST_STREAM without an END_STREAM before it. Http2Stream.close() first ends the
 * writable side, and Node flushes that END_STREAM ahead of the RST (node_http2.cc,
 * SubmitRstStream), so the peer would see a clean end, then the reset: a truncated upload
 * would look complete to the target. A pending (empty) write keeps end() from finishing
 * before the RST goes out; after it, nghttp2 drops the END_STREAM of a closed stream.
 */
export function resetStream(stream: Http2Stream, code: number): void {
  if (stream.destroyed || stream.closed) return;
  if (!stream.writableEnded) {
    stream.cork();
    stream.write(EMPTY);
  }
  stream.close(code);
}

function wasReset(stream: Http2Stream): boolean {
  return (
    stream.aborted ||
    (stream.rstCode !== undefined && stream.rstCode !== constants.NGHTTP2_NO_ERROR)
  );
}
