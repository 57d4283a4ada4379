// One HTTP request riding the tunnel: an HTTP/2 request stream on a pooled session, beside the
// CONNECT streams of opaque connections. The body is streamed with back pressure (pipe, and
// HTTP/2 flow control behind it); the answer is the peer's response as an L7Response whose body
// is the stream itself, so the reader's pace is the upstream's. Trailers are kept.
import { constants, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import type { Readable } from 'node:stream';
import { WeftError } from '../../errors.js';
import type { HeaderMap, L7Response } from '../http/types.js';
import { REASON_HEADER, UNDELIVERED_HEADER } from '../http/wire-headers.js';
import type { ClientSession } from './client-session.js';
import { TunnelStreamError } from './client-session.js';

export interface TunnelRequestBody {
  /** Undefined: no body (END_STREAM on the HEADERS frame). */
  body: Readable | undefined;
  /** Aborted when the caller goes away: the stream is cancelled. */
  signal: AbortSignal;
}

/**
 * Sends `headers` (the wire headers, pseudo-headers included) and the body; resolves when the
 * response's headers arrive. Rejects with a TunnelStreamError whose `retryable` is true only
 * when nothing reached the peer's app: the stream was refused (REFUSED_STREAM, or the session
 * went away before answering) before a byte of the body was taken from `body`.
 */
export function sendRequest(
  session: ClientSession,
  headers: OutgoingHttpHeaders,
  req: TunnelRequestBody,
): Promise<L7Response> {
  const stream = session.openRequest(headers, req.body === undefined);
  // One listener per event, each for every stage of the request (before and after its answer),
  // rather than a set added and removed per stage: listeners are much of a request's cost.
  return new Promise((resolve, reject) => {
    const body = req.body;
    let bodyBytes = 0;
    let trailers: HeaderMap | undefined;
    let answered = false;
    const fail = (reason: string, refused: boolean): void => {
      answered = true;
      // Take the body back: another endpoint may be tried with it.
      if (body !== undefined) body.unpipe(stream);
      const retryable = refused && bodyBytes === 0;
      reject(
        new TunnelStreamError(
          'WEFT_E_UNAVAILABLE',
          0,
          reason,
          `tunnel to ${session.peerName}: request ${String(headers[':method'])} ${String(
            headers[':path'],
          )}: ${reason}`,
          retryable,
        ),
      );
    };
    stream.on('response', (h: IncomingHttpHeaders) => {
      if (answered) return;
      answered = true;
      const reason = h[REASON_HEADER];
      resolve({
        status: Number(h[':status']),
        headers: fields(h, true),
        body: stream,
        trailers: () => trailers,
        ...(typeof reason === 'string' ? { reason } : {}),
      });
    });
    stream.on('trailers', (t: IncomingHttpHeaders) => {
      trailers = fields(t);
    });
    // Errors reach the caller through the promise, or through the body's reader once answered;
    // a stray one (a write racing a reset) must never be an unhandled 'error'.
    stream.on('error', (err: Error) => {
      if (answered) return;
      const refused = stream.rstCode === constants.NGHTTP2_REFUSED_STREAM;
      // Only a refusal proves the peer's app saw nothing: a lost session may have delivered it.
      fail(refused ? 'stream refused' : err.message, refused);
    });
    const onBodyData = (chunk: Buffer): void => {
      bodyBytes += chunk.length;
    };
    const onBodyError = (): void => cancel();
    // A reset (RST_STREAM INTERNAL_ERROR), never END_STREAM first: the peer's app must not take
    // a cut upload for whole. destroy(err) resets at once; close(code) would end the writable
    // side first, and with nothing pending Node sends that END_STREAM ahead of the RST.
    const cancel = (): void => {
      if (!stream.destroyed)
        stream.destroy(new WeftError('WEFT_E_UNAVAILABLE', 'request cancelled'));
    };
    const onAbort = (): void => cancel();
    stream.on('close', () => {
      req.signal.removeEventListener('abort', onAbort);
      if (body !== undefined) {
        body.off('data', onBodyData);
        body.off('error', onBodyError);
      }
      if (!answered) {
        fail(
          `stream closed before a response (code ${stream.rstCode})`,
          stream.rstCode === constants.NGHTTP2_REFUSED_STREAM,
        );
      }
    });
    if (body !== undefined) {
      if (body.readableEnded) stream.end();
      else {
        body.on('data', onBodyData);
        body.on('error', onBodyError);
        body.pipe(stream);
      }
    }
    req.signal.addEventListener('abort', onAbort, { once: true });
    if (req.signal.aborted) cancel();
  });
}

/**
 * A response's or trailers' fields without pseudo-headers; of weft's own, only what the peer
 * agent says of its answer (weft-reason, weft-undelivered), when asked.
 */
function fields(h: IncomingHttpHeaders, keepAgents = false): HeaderMap {
  const out: HeaderMap = {};
  // for-in over Node's header object (own, plain properties): no entries array per response.
  for (const name in h) {
    const value = h[name];
    if (value === undefined || name.charCodeAt(0) === COLON) continue;
    const agents = name === REASON_HEADER || name === UNDELIVERED_HEADER;
    if (name.startsWith('weft-') && !(keepAgents && agents)) continue;
    out[name] = value;
  }
  return out;
}

const COLON = 0x3a;
