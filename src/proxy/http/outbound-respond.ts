// Writing an L7Response back to the app, in the protocol it spoke: HTTP/1.1 (status line,
// streamed body, trailers when the client accepts them) or HTTP/2 (HEADERS, DATA, trailers;
// a gRPC trailers-only answer as one HEADERS frame). The body is piped with back pressure: a
// client that reads slowly pauses the upstream, within the streams' fixed buffers.
import type { ServerResponse } from 'node:http';
import type { OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { isTrailersOnly } from './outbound-wire.js';
import { pipeBody } from './pipe-body.js';
import type { HeaderMap, L7Response } from './types.js';

export interface Delivered {
  /** Response body bytes written to the app. */
  bytes: number;
  /** Set when the exchange broke off (the app or the upstream went away). */
  error?: string;
}

export async function respondHttp1(
  res: ServerResponse,
  response: L7Response,
  trailersAccepted: boolean,
): Promise<Delivered> {
  let bytes = 0;
  const count = (n: number): void => {
    bytes += n;
  };
  try {
    res.writeHead(response.status, response.headers);
    await pipeBody(response.body, res, false, count);
    const trailers = response.trailers();
    if (trailersAccepted && trailers !== undefined && res.chunkedEncoding)
      res.addTrailers(trailers);
    res.end();
    return { bytes };
  } catch (err) {
    // Half a response cannot be finished honestly: the app sees the connection cut.
    res.destroy();
    response.body.destroy();
    return { bytes, error: (err as Error).message };
  }
}

export async function respondHttp2(
  stream: ServerHttp2Stream,
  response: L7Response,
): Promise<Delivered> {
  if (stream.destroyed || stream.closed) {
    response.body.destroy();
    return { bytes: 0, error: 'the client went away' };
  }
  const headers: OutgoingHttpHeaders = { ...response.headers, ':status': response.status };
  if (isTrailersOnly(response.headers)) {
    stream.respond(headers, { endStream: true });
    response.body.resume();
    return { bytes: 0 };
  }
  let bytes = 0;
  const count = (n: number): void => {
    bytes += n;
  };
  try {
    stream.respond(headers, { waitForTrailers: true });
    stream.once('wantTrailers', () => {
      // Empty trailers end the stream with an empty HEADERS frame (END_STREAM).
      stream.sendTrailers(trailerFields(response.trailers()));
    });
    await pipeBody(response.body, stream, true, count);
    return { bytes };
  } catch (err) {
    // A reset (destroy: RST_STREAM at once), never a clean end: the client must not take a
    // truncated body for whole (close(code) would send END_STREAM first).
    if (!stream.destroyed) stream.destroy(err as Error);
    response.body.destroy();
    return { bytes, error: (err as Error).message };
  }
}

function trailerFields(trailers: HeaderMap | undefined): OutgoingHttpHeaders {
  return trailers ?? {};
}
