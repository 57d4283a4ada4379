// HTTP/1.1 to local apps over keep-alive connections: one undici Pool per (app endpoint, caller
// IP), each connection made by the LocalConnector from the caller's address where the host
// allows it. Keying by the caller's IP keeps the app's view of who called (its peer address)
// true while still reusing connections across that caller's requests. undici's dispatcher, not
// node:http's Agent and ClientRequest: the request path is about half the CPU, and the head of
// a bodiless request goes out in one write (bench/README.md "The L7 path's cost").
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { Client as ClientType, Dispatcher, Pool as PoolType } from 'undici';

// undici's two dispatcher files, not its index: the index also loads fetch, WebSocket, the cache
// and the mock agents (95 modules, 11 MiB of a worker's memory; these two load 23 for 6 MiB).
const require = createRequire(import.meta.url);
const Client = require('undici/lib/dispatcher/client.js') as typeof ClientType;
const Pool = require('undici/lib/dispatcher/pool.js') as typeof PoolType;
type Pool = PoolType;

import type { LocalConnector } from '../endpoint/connect-local.js';
import { formatAuthority } from '../tunnel/authority.js';
import type { TunnelTarget } from '../tunnel/types.js';
import type { HeaderMap, L7Request } from './types.js';
import { endToEndRaw } from './wire-headers.js';

/** The failure to reach the app at all (nothing was sent): the stack answers 502. */
export class LocalConnectError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LocalConnectError';
  }
}

export interface LocalHttp1Options {
  local: Pick<LocalConnector, 'connect'>;
  connectTimeoutMs: number;
  /**
   * How long an idle kept-alive connection is kept. Below Node's default server keepAliveTimeout
   * (5 s) so the agent, not the app, closes idle ones: a request is never written on a
   * connection the app is closing at that moment. An app's `Keep-Alive: timeout=N` shortens it.
   */
  idleTimeoutMs: number;
}

/** The app's answer to one request, its body streamed with back pressure. */
export interface LocalHttp1Response {
  status: number;
  headers: HeaderMap;
  body: Readable;
  /** Known once `body` has ended; undefined when the app sent none. */
  trailers: () => HeaderMap | undefined;
  /** The app saw the caller's address as its peer. */
  preserved: boolean;
  /** Request body bytes sent to the app so far (final once the request body ended). */
  requestBytes: () => number;
}

/** A pooled connection: undici's Client (one socket at a time), with how its socket was made. */
class LocalClient extends Client {
  preserved = false;
}

/** A request's handler knows the client that serves it: the preserved flag is per socket. */
type TaggedHandler = Dispatcher.DispatchHandlers & { client?: LocalClient };

class TaggingClient extends LocalClient {
  override dispatch(opts: Dispatcher.DispatchOptions, handler: TaggedHandler): boolean {
    handler.client = this;
    return super.dispatch(opts, handler);
  }
}

export class LocalHttp1Pool {
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly opts: LocalHttp1Options) {}

  /** Sends `req`; resolves with the response head, rejects only before one arrived. */
  request(
    target: TunnelTarget,
    client: TunnelTarget | undefined,
    req: L7Request,
  ): Promise<LocalHttp1Response> {
    const headers: HeaderMap = { ...req.headers, host: req.authority };
    // `te` needs a `Connection: te` on HTTP/1.1 (RFC 9110 section 10.1.4); trailers are
    // HTTP/2's business here, so it is not sent. `expect: 100-continue` was answered by the
    // caller's agent already; the body follows the head at once (RFC 9110 section 10.1.1).
    delete headers.te;
    delete headers.expect;
    const sent = { bytes: 0 };
    // A request that has no body (most) is written as one head; else the body streams through
    // a view that counts it (undici destroys the stream it is given on a failure, and the
    // caller's stream must live on to carry the agent's answer). undici writes the head with
    // the first chunk and frames a body of unknown length as chunked.
    const body = hasNoBody(req.body) ? null : bodyView(req.body, sent);
    if (body === null) req.body.resume(); // let the caller's stream finish its read side
    return new Promise((resolve, reject) => {
      const handler = new ResponseHandler(req.signal, resolve, reject, sent);
      this.pool(target, client).dispatch(
        { method: req.method as Dispatcher.HttpMethod, path: req.path, headers, body },
        handler,
      );
    });
  }

  /** Connections open now (in use and idle), for tests and /config_dump. */
  connections(): number {
    let n = 0;
    for (const pool of this.pools.values()) n += pool.stats.connected;
    return n;
  }

  close(): void {
    for (const pool of this.pools.values()) void pool.destroy().catch(() => {});
    this.pools.clear();
  }

  private pool(target: TunnelTarget, client: TunnelTarget | undefined): Pool {
    const key = `${target.address}|${target.port}|${client?.address ?? ''}`;
    let pool = this.pools.get(key);
    if (pool !== undefined) return pool;
    const { local, connectTimeoutMs, idleTimeoutMs } = this.opts;
    const origin = `http://${formatAuthority(target)}`;
    const connect = (
      made: LocalClient,
      done: (err: Error | null, socket: Socket | null) => void,
    ) => {
      local.connect({ target, client, timeoutMs: connectTimeoutMs }).then(
        ({ socket, preserved }) => {
          made.preserved = preserved;
          socket.setNoDelay(true);
          // The connectors keep a socket open after the peer's FIN (an opaque relay passes
          // the half-close on). A pooled HTTP/1.1 connection is done at the app's FIN: undici
          // retires it then, and no request is written on it after.
          socket.allowHalfOpen = false;
          done(null, socket);
        },
        (err: Error) => done(new LocalConnectError(err.message, { cause: err }), null),
      );
    };
    pool = new Pool(origin, {
      factory: (url, options) => {
        const made: LocalClient = new TaggingClient(url, {
          ...options,
          connect: (_, done) =>
            connect(made, done as (err: Error | null, socket: Socket | null) => void),
        } as ClientType.Options);
        return made;
      },
      keepAliveTimeout: idleTimeoutMs,
      keepAliveMaxTimeout: idleTimeoutMs,
      // An app's Keep-Alive hint is trusted less this much (the request may cross its close).
      keepAliveTimeoutThreshold: 1_000,
      // No limits of undici's own: the stack's timeouts (per try, request, idle) apply.
      headersTimeout: 0,
      bodyTimeout: 0,
      maxHeaderSize: 64 * 1024,
    });
    const made = pool;
    // A caller IP's pool goes once it has no connection left, so the map does not grow with
    // every caller ever seen.
    made.on('disconnect', () => {
      if (made.stats.connected === 0 && made.stats.size === 0 && this.pools.get(key) === made) {
        this.pools.delete(key);
        void made.close().catch(() => {});
      }
    });
    this.pools.set(key, made);
    return made;
  }
}

/**
 * One request's events from undici: the head resolves the promise with a body stream whose
 * reader's pace is the app's (onData's false pauses the socket, the reader's read() resumes
 * it); a failure before the head rejects it, after the head it breaks the body.
 */
class ResponseHandler implements Dispatcher.DispatchHandlers {
  client?: LocalClient;
  private abort: ((err?: Error) => void) | undefined;
  private body: Readable | undefined;
  private resume: (() => void) | undefined;
  private trailers: HeaderMap | undefined;
  private settled = false;

  constructor(
    private readonly signal: AbortSignal,
    private readonly resolve: (r: LocalHttp1Response) => void,
    private readonly reject: (err: Error) => void,
    private readonly sent: { bytes: number },
  ) {}

  onConnect(abort: (err?: Error) => void): void {
    this.abort = abort;
    if (this.signal.aborted) abort(new Error('the caller went away'));
    else this.signal.addEventListener('abort', this.onAbort, { once: true });
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void): boolean {
    if (status < 200) return true; // 1xx: the final response follows
    this.resume = resume;
    const body = new Readable({
      read: () => this.resume?.(),
      // The reader gave up (the caller went away mid-body): the app's connection is cut, it
      // cannot be reused mid-body.
      destroy: (err, cb) => {
        if (!body.readableEnded) this.abort?.(err ?? new Error('the response was not read'));
        cb(err);
      },
    });
    this.body = body;
    this.settled = true;
    this.resolve({
      status,
      headers: endToEndRaw(raw),
      body,
      trailers: () => this.trailers,
      preserved: this.client?.preserved ?? false,
      requestBytes: () => this.sent.bytes,
    });
    return true;
  }

  onData(chunk: Buffer): boolean {
    return this.body?.push(chunk) ?? true;
  }

  onComplete(trailers: string[] | null): void {
    this.signal.removeEventListener('abort', this.onAbort);
    if (trailers !== null && trailers.length > 0) this.trailers = endToEndRaw(trailers);
    this.body?.push(null);
  }

  onError(err: Error): void {
    this.signal.removeEventListener('abort', this.onAbort);
    if (!this.settled) {
      this.settled = true;
      this.reject(err);
    } else if (this.body && !this.body.destroyed) this.body.destroy(err);
  }

  private readonly onAbort = (): void => {
    this.abort?.(new Error('the caller went away'));
  };
}

/**
 * Whether the request has no body and none will come: the tunnel stream's HEADERS ended it
 * (END_STREAM), or a same-host caller's message is complete with nothing left to read.
 */
function hasNoBody(body: Readable): boolean {
  const b = body as Readable & { endAfterHeaders?: boolean; complete?: boolean };
  return (
    b.endAfterHeaders === true || b.readableEnded || (b.complete === true && b.readableLength === 0)
  );
}

/**
 * The request body as undici reads it, with back pressure, counted. The caller's stream breaking
 * off (reset, error) destroys the view, so undici cuts the app's connection and the app never
 * takes a cut body for a whole one; undici giving up on the view drops the rest of the body.
 */
function bodyView(src: Readable, sent: { bytes: number }): Readable {
  const onData = (chunk: Buffer) => {
    sent.bytes += chunk.length;
    if (!view.push(chunk)) src.pause();
  };
  const onEnd = () => view.push(null);
  const onError = (err: Error) => view.destroy(err);
  const onClose = () => {
    if (!src.readableEnded) view.destroy(new Error('the request body broke off'));
  };
  const view: Readable = new Readable({
    read: () => src.resume(),
    destroy: (err, cb) => {
      src.off('data', onData);
      src.off('end', onEnd);
      src.off('error', onError);
      src.off('close', onClose);
      src.on('error', () => {});
      src.resume();
      cb(err);
    },
  });
  src.on('data', onData);
  src.once('end', onEnd);
  src.once('error', onError);
  src.once('close', onClose);
  src.pause();
  return view;
}
