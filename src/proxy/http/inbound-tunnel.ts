// The tunnel's request streams as calls of the inbound HTTP stack: the tunnel server is only a
// transport, this adapter reads weft's headers (inbound-request.ts), hands the request to the
// stack, and writes the response back on the stream: body piped with back pressure (the
// stream's flow-control window and highWaterMark are the bound), trailers after it, and a
// reset when the response breaks off mid-body, so the caller never takes a cut body for whole.
import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { describeError } from '../../errors.js';
import type { Logger } from '../../sys/logger.js';
import { parseAnswerReason, reasonOfAnswer } from '../close-reason.js';
import type { TunnelRequestHandler, TunnelRequestOutcome } from '../tunnel/tunnel-server.js';
import type { StreamCloseReason, TunnelPeer } from '../tunnel/types.js';
import { agentAnswer, isGrpc } from './agent-answer.js';
import { parseTunnelRequest } from './inbound-request.js';
import { pipeBody } from './pipe-body.js';
import type { InboundCall, InboundHttpHandler, L7Response } from './types.js';
import { endToEnd } from './wire-headers.js';

/** Statuses whose response has no body (RFC 9110 sections 15.3.5, 15.3.6, 15.4.5). */
const NO_BODY = new Set([204, 205, 304]);

export function tunnelRequestHandler(
  handler: InboundHttpHandler,
  log: Logger,
): TunnelRequestHandler {
  return (stream, headers, peer) => serve(stream, headers, peer, handler, log);
}

async function serve(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  peer: TunnelPeer,
  handler: InboundHttpHandler,
  log: Logger,
): Promise<TunnelRequestOutcome> {
  stream.on('error', () => {}); // seen as the stream's close and its rstCode
  const abort = new AbortController();
  const ends = streamEnds(stream, abort);
  const method = String(headers[':method']);
  const head = parseTunnelRequest(headers, peer.address);
  let response: L7Response;
  if (!head.ok) {
    stream.resume(); // the body goes nowhere: read and drop it so the stream can finish
    const grpc = isGrpc(endToEnd(headers));
    response = agentAnswer({ reason: 'bad_request', detail: head.reason, grpc });
  } else {
    const call: InboundCall = {
      peer: { spiffeId: peer.spiffeId, address: peer.address, port: peer.port },
      target: head.target,
      client: head.client,
      ...(head.clientUnverified ? { clientUnverified: head.clientUnverified } : {}),
      request: {
        method: head.method,
        authority: head.authority,
        path: head.path,
        headers: endToEnd(headers),
        body: stream,
        version: head.version,
        signal: abort.signal,
      },
    };
    try {
      response = await handler(call);
    } catch (err) {
      // The stack answers every failure itself; reaching this is a bug, not the caller's.
      log.error({ err: describeError(err) }, 'inbound HTTP handler threw');
      const detail = 'the agent failed this request (a bug: see its log)';
      response = agentAnswer({ reason: 'internal', detail, grpc: false });
    }
  }
  const ended = await writeResponse(stream, response, method, ends);
  return { status: response.status, reason: answerReason(response) ?? ended };
}

/** The close reason of a response the agent made itself (undefined: the app's response). */
export function answerReason(response: L7Response): StreamCloseReason | undefined {
  if (response.reason === undefined) return undefined;
  const grpc = response.headers['grpc-status'];
  return (
    parseAnswerReason(response.reason) ??
    reasonOfAnswer(response.status, grpc === undefined ? undefined : Number(grpc))
  );
}

/** Writes the response on the stream; resolves with how the stream ended once it closed. */
export async function writeResponse(
  stream: ServerHttp2Stream,
  response: L7Response,
  method: string,
  ends: StreamEnds,
): Promise<StreamCloseReason> {
  const { body } = response;
  if (stream.destroyed) {
    body.destroy();
    return 'client_reset';
  }
  const headers = { ...response.headers, ':status': response.status };
  // A gRPC status in the headers is a trailers-only response: END_STREAM on that HEADERS frame,
  // or gRPC clients report a missing status. HEAD and 204/205/304 carry no body either.
  const empty =
    response.headers['grpc-status'] !== undefined ||
    method === 'HEAD' ||
    NO_BODY.has(response.status);
  try {
    stream.respond(headers, empty ? { endStream: true } : { waitForTrailers: true });
  } catch {
    // Header fields HTTP/2 refuses (an app's malformed value): nothing usable to forward.
    body.destroy();
    stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    return closed(stream, ends, 'upstream_reset');
  }
  if (empty) {
    body.resume(); // nothing to send; reading it to its end completes its record
    return closed(stream, ends, 'done');
  }
  stream.once('wantTrailers', () => {
    const trailers = response.trailers();
    // Empty trailers: Node sends an empty DATA frame with END_STREAM instead of HEADERS.
    stream.sendTrailers(trailers ? { ...trailers } : {});
  });
  try {
    await pipeBody(body, stream, true);
  } catch {
    // What is left of the app's response goes nowhere (its connection is not reused mid-body).
    body.destroy();
    if (ends.aborted) return closed(stream, ends, 'client_reset');
    // The app's response broke off: reset, so the caller sees an error, not a short body.
    if (!stream.destroyed) stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    return closed(stream, ends, 'upstream_reset');
  }
  return closed(stream, ends, 'done');
}

/** How a request's stream ended, watched once for the whole request (one listener each). */
interface StreamEnds {
  /** 'aborted': the caller reset the stream (or its session died) before the response ended. */
  aborted: boolean;
  /** The stream's 'close' has been. */
  closed: boolean;
  /** Told at the stream's 'close' (the response writer waiting for it). */
  onClose: (() => void) | undefined;
}

/**
 * Watches the stream for the request's life. The caller going away before the whole response
 * was written cancels the stack (and the app's request is dropped). A reset from the caller is
 * 'aborted': by the 'close' that follows it, Node has marked the writable side finished, so
 * 'close' alone misses it.
 */
function streamEnds(stream: ServerHttp2Stream, abort: AbortController): StreamEnds {
  const ends: StreamEnds = { aborted: false, closed: false, onClose: undefined };
  stream.on('close', () => {
    ends.closed = true;
    if (!stream.writableFinished) abort.abort();
    ends.onClose?.();
  });
  stream.on('aborted', () => {
    ends.aborted = true;
    abort.abort();
  });
  return ends;
}

/** Waits for the stream's close; a reset by the caller overrides `ours`. */
function closed(
  stream: ServerHttp2Stream,
  ends: StreamEnds,
  ours: StreamCloseReason,
): Promise<StreamCloseReason> {
  const decide = (): StreamCloseReason =>
    ours === 'done' && (stream.rstCode ?? 0) !== constants.NGHTTP2_NO_ERROR ? 'client_reset' : ours;
  if (ends.closed) return Promise.resolve(decide());
  return new Promise((resolve) => {
    ends.onClose = () => resolve(decide());
  });
}
