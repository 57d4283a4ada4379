// Stage "local endpoint" of the inbound HTTP stack: the request to the app in the version it
// is spoken to (HTTP/1.1 over the keep-alive pool, or h2c), the body streamed with back
// pressure, the app's response as an L7Response. Rejects only before a response arrived,
// with LocalConnectError when the app could not be reached at all.

import type { ClientHttp2Stream, IncomingHttpHeaders } from 'node:http2';
import type { Readable, Writable } from 'node:stream';
import type { LocalConnector } from '../endpoint/connect-local.js';
import type { TunnelTarget } from '../tunnel/types.js';
import { LocalH2Sessions } from './local-h2.js';
import { LocalHttp1Pool } from './local-http1.js';
import type { HeaderMap, HttpVersion, L7Request, L7Response } from './types.js';
import { endToEnd } from './wire-headers.js';

export interface LocalAppOptions {
  local: Pick<LocalConnector, 'connect'>;
  connectTimeoutMs: number;
  /** Idle HTTP/1.1 connections are closed after this (default 4 s, see local-http1.ts). */
  http1IdleTimeoutMs?: number;
  /** Idle h2c sessions are closed after this (default 60 s). */
  h2IdleTimeoutMs?: number;
}

export interface LocalExchange {
  response: L7Response;
  /** The app saw the caller's address as its peer. */
  preserved: boolean;
  /** Request body bytes sent to the app so far (final once the request body ended). */
  requestBytes: () => number;
}

export class LocalApps {
  readonly http1: LocalHttp1Pool;
  readonly h2: LocalH2Sessions;

  constructor(opts: LocalAppOptions) {
    this.http1 = new LocalHttp1Pool({
      local: opts.local,
      connectTimeoutMs: opts.connectTimeoutMs,
      idleTimeoutMs: opts.http1IdleTimeoutMs ?? 4_000,
    });
    this.h2 = new LocalH2Sessions({
      local: opts.local,
      connectTimeoutMs: opts.connectTimeoutMs,
      idleTimeoutMs: opts.h2IdleTimeoutMs ?? 60_000,
    });
  }

  /** Sends `req` to the app at `target`, from `client`'s address where possible. */
  send(
    target: TunnelTarget,
    client: TunnelTarget | undefined,
    version: HttpVersion,
    req: L7Request,
  ): Promise<LocalExchange> {
    return version === '1.1'
      ? this.sendHttp1(target, client, req)
      : this.sendH2(target, client, req);
  }

  close(): void {
    this.http1.close();
    this.h2.close();
  }

  private async sendHttp1(
    target: TunnelTarget,
    client: TunnelTarget | undefined,
    req: L7Request,
  ): Promise<LocalExchange> {
    const { preserved, requestBytes, ...response } = await this.http1.request(target, client, req);
    return { response, preserved, requestBytes };
  }

  private async sendH2(
    target: TunnelTarget,
    client: TunnelTarget | undefined,
    req: L7Request,
  ): Promise<LocalExchange> {
    const { stream, preserved } = await this.h2.request(target, client, req);
    const sent = pump(req.body, stream);
    return new Promise((resolve, reject) => {
      let trailers: HeaderMap | undefined;
      const onAbort = () => stream.close(0x8); // NGHTTP2_CANCEL
      req.signal.addEventListener('abort', onAbort, { once: true });
      const fail = (err: Error) => {
        req.signal.removeEventListener('abort', onAbort);
        reject(err);
      };
      stream.once('error', fail);
      // Closed with no response at all: a refused stream, a reset, the session gone.
      const closedEarly = () =>
        fail(new Error(`the app reset the stream (code ${stream.rstCode})`));
      stream.once('close', closedEarly);
      stream.once('trailers', (t: IncomingHttpHeaders) => {
        trailers = endToEnd(t);
      });
      stream.once('response', (headers: IncomingHttpHeaders) => {
        stream.off('error', fail);
        stream.off('close', closedEarly);
        stream.on('error', () => {}); // a later failure shows as the body's error
        resolve({
          response: {
            status: Number(headers[':status']),
            headers: endToEnd(headers),
            body: stream as ClientHttp2Stream & Readable,
            trailers: () => trailers,
          },
          preserved,
          requestBytes: sent,
        });
      });
    });
  }
}

/**
 * Pipes the request body to the app with back pressure; counts its bytes. A body that breaks
 * off (the caller reset) destroys the upstream request, so the app never takes a cut body for
 * a whole one.
 */
function pump(body: Readable, out: Writable): () => number {
  let bytes = 0;
  body.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
  });
  body.once('error', (err) => out.destroy(err));
  body.pipe(out);
  return () => bytes;
}
