// The outbound HTTP stack: one HTTP/1.1 server and one h2c server per agent that never listen.
// A captured connection whose first bytes are HTTP is handed over (emit 'connection'), with its
// context (caller, route) kept by socket; each request then goes its own way (exchange) and its
// response is written back in the app's protocol. The app's TCP connection stays one
// connection record; each request is one request record.
// Bad input never goes anywhere: Node's strict HTTP/1 parser refuses malformed request lines,
// headers over 64 KiB, Content-Length with Transfer-Encoding and conflicting Content-Lengths,
// which are answered 400 with the connection closed; invalid HTTP/2 frames get GOAWAY.
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  constants,
  createServer as createH2Server,
  type Http2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { describeError } from '../../errors.js';
import type { Logger } from '../../sys/logger.js';
import { createServer as createHttp1Server } from '../../sys/node-http.js';
import { httpSpan } from '../../telemetry/http-span.js';
import { setTraceHeaders, spanResult, type Tracer } from '../../telemetry/tracer.js';
import { type CloseReason, parseAnswerReason, reasonOfAnswer } from '../close-reason.js';
import type { OutboundContext } from '../outbound/identify.js';
import type { OpaqueDeps, ServiceTarget } from '../outbound/opaque.js';
import type { OutboundHttpStack } from '../outbound/stack.js';
import { type OpenConnection, recordError } from '../records.js';
import { BreakerSlot } from '../resilience/breaker.js';
import type { MirrorMetrics } from '../routing/mirror-metrics.js';
import { decideRoute } from '../routing/route-decision.js';
import { routedExchange, routesFor } from '../routing/route-stage.js';
import type { Telemetry } from '../telemetry.js';
import { agentAnswerParts } from './agent-answer.js';
import { admitRequest, type BreakerConnection, releaseConnection } from './outbound-breaker.js';
import { type ExchangeDeps, type Exchanged, exchange } from './outbound-exchange.js';
import { type Delivered, respondHttp1, respondHttp2 } from './outbound-respond.js';
import { upgradeToOpaque } from './outbound-upgrade.js';
import { acceptsTrailers, grpcStatusOf, isGrpc } from './outbound-wire.js';
import type { RequestRecord, RequestTelemetry } from './request-telemetry.js';
import type { HttpVersion, L7Request, L7Response } from './types.js';
import { endToEnd } from './wire-headers.js';

/** 64 KiB of request head (HTTP/1.1 header section; HTTP/2 header list). */
export const MAX_HEADER_BYTES = 64 * 1024;
/**
 * Streams one app connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS): a bound
 * on what one app can make the agent hold, as the tunnel session has (Node's default: 2^32 - 1).
 */
export const MAX_CONCURRENT_STREAMS = 1000;

export interface OutboundHttpDeps extends ExchangeDeps, OpaqueDeps {
  telemetry: Telemetry;
  requests: RequestTelemetry;
  /** A client span per request; the traceparent it makes travels on to the next hop. */
  tracer: Tracer;
  log: Logger;
  /** An idle keep-alive connection (no request in flight) is closed after this long. */
  idleMs: number;
  /** Draws for route splits and fault percentages (tests inject a seeded one). */
  random?: () => number;
  /** RequestMirror's counts (weft_http_mirrored_total). */
  mirrors: MirrorMetrics;
}

/** What a handed-over connection carries to each of its requests. */
interface HttpConnection extends BreakerConnection {
  ctx: OutboundContext;
  target: ServiceTarget;
  record: OpenConnection;
  /** Why it closed, when not simply done: set by whoever ends it. */
  closeReason: CloseReason | undefined;
  /** Set while an upgraded connection is relayed: settles once the relay has said how it ended. */
  relayed?: Promise<void>;
  error: string | undefined;
}

export interface OutboundHttp extends OutboundHttpStack {
  /** Requests and connections in flight, for tests and drain. */
  readonly connections: number;
  /**
   * The worker is retiring (a reload): apps are asked to open new connections, which reach
   * the new workers. HTTP/1.1: idle keep-alive connections are closed (now and every second
   * after), each response from now on carries Connection: close; HTTP/2: GOAWAY, the streams
   * open finish. Returns a function that stops the repeated closing.
   */
  drain(): () => void;
}

/** While draining, idle HTTP/1.1 keep-alive connections are closed this often. */
const DRAIN_IDLE_EVERY_MS = 1_000;

export function createOutboundHttp(deps: OutboundHttpDeps): OutboundHttp {
  const byConnection = new WeakMap<Socket, HttpConnection>();
  const bySession = new WeakMap<Http2Session, HttpConnection>();
  let connections = 0;
  let draining = false;
  const h2Sessions = new Set<Http2Session>();
  // Set only during the synchronous emit('connection') of an h2c handover: the session it
  // creates takes it (session.socket is a proxy, not the socket itself).
  let handing: HttpConnection | undefined;

  const http1 = createHttp1Server({
    maxHeaderSize: MAX_HEADER_BYTES,
    insecureHTTPParser: false,
    requestTimeout: 0,
    keepAliveTimeout: deps.idleMs,
  });
  // The listener's idle time holds for HTTP too: no byte either way for idleMs (a stalled
  // request head included: this server never listens, so Node's headersTimeout never runs).
  http1.setTimeout(deps.idleMs);
  http1.on('timeout', (socket: Socket) => {
    const c = byConnection.get(socket);
    if (c) c.closeReason = 'idle_timeout';
    socket.destroy();
  });
  // A client that half-closes after its request still gets its response, as over opaque TCP.
  // Node's server otherwise aborts requests in flight at the client's FIN (socketOnEnd in
  // lib/_http_server.js reads this untyped property).
  (http1 as typeof http1 & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  http1.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const c = byConnection.get(req.socket);
    if (c === undefined) return res.destroy();
    // Node then answers with Connection: close and ends the connection after the response.
    if (draining) res.shouldKeepAlive = false;
    serveHttp1(c, req, res, deps).catch((err) => internal(deps.log, err, req.socket));
  });
  // Bad input: a 400 and the connection closed, nothing forwarded.
  http1.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const c = byConnection.get(socket);
    if (c) {
      c.closeReason = 'bad_request';
      c.error = err.code ?? err.message;
    }
    if (socket.writable && err.code !== 'ECONNRESET') {
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    }
    socket.destroySoon();
  });
  const onUpgrade = (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const c = byConnection.get(socket);
    if (c === undefined) return socket.destroy();
    upgradeToOpaque(c, req, socket, head, deps).catch((err) => internal(deps.log, err, socket));
  };
  http1.on('upgrade', onUpgrade);
  http1.on('connect', onUpgrade);

  const h2 = createH2Server({
    settings: { maxHeaderListSize: MAX_HEADER_BYTES, maxConcurrentStreams: MAX_CONCURRENT_STREAMS },
  });
  h2.on('session', (session: Http2Session) => {
    if (handing === undefined) return session.destroy();
    bySession.set(session, handing);
    h2Sessions.add(session);
    session.once('close', () => h2Sessions.delete(session));
    if (draining) session.close();
    const c = handing;
    session.setTimeout(deps.idleMs, () => {
      c.closeReason = 'idle_timeout';
      session.destroy();
    });
  });
  h2.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number) => {
    const c = stream.session && bySession.get(stream.session);
    if (c === undefined) return stream.close(constants.NGHTTP2_REFUSED_STREAM);
    serveHttp2(c, stream, headers, flags, deps).catch((err) => internal(deps.log, err, undefined));
  });
  // A protocol error from the app (invalid frames): nghttp2 answers GOAWAY and reads no more.
  // Node reports only some of them here; after the others the connection ends when the
  // client closes it or at the idle timeout (Node 20 exposes no "GOAWAY sent" signal).
  h2.on('sessionError', (err: Error, session: Http2Session) => {
    const c = bySession.get(session);
    if (c) {
      c.closeReason = 'bad_request';
      c.error = err.message;
    }
    // nghttp2 has queued the GOAWAY; close() sends it and ends the connection.
    session.close();
  });

  return {
    get connections() {
      return connections;
    },
    drain() {
      draining = true;
      // close(): GOAWAY now, the connection ends once its open streams are done.
      for (const session of h2Sessions) session.close();
      http1.closeIdleConnections();
      const timer = setInterval(() => http1.closeIdleConnections(), DRAIN_IDLE_EVERY_MS);
      timer.unref();
      return () => clearInterval(timer);
    },
    serve(ctx, target, version) {
      const c: HttpConnection = {
        ctx,
        target,
        record: { ...ctx.record, dst_service: target.service },
        closeReason: undefined,
        error: undefined,
        breaker: deps.state.breaker(target.service),
        admitted: false,
      };
      const socket = ctx.conn.client;
      deps.telemetry.open(c.record);
      if (socket.destroyed) {
        // Gone while its first bytes were looked at: its 'close' has been and gone.
        deps.telemetry.close(
          { ...c.record, bytes_sent: 0, bytes_received: 0, close_reason: 'client_reset' },
          ctx.conn.started,
        );
        return;
      }
      connections += 1;
      socket.once('close', (hadError) => {
        connections -= 1;
        releaseConnection(c);
        const record = (): void =>
          deps.telemetry.close(
            {
              ...c.record,
              bytes_sent: socket.bytesRead,
              bytes_received: socket.bytesWritten,
              close_reason: c.closeReason ?? (hadError ? 'client_reset' : 'done'),
              ...(c.error ? { error: c.error } : {}),
            },
            ctx.conn.started,
          );
        // An upgraded connection's relay reports how it ended after this socket's close.
        if (c.relayed) void c.relayed.then(record);
        else record();
      });
      if (version === 'http1') {
        byConnection.set(socket, c);
        http1.emit('connection', socket);
        // The HTTP/1 parser reads the socket's handle directly: resuming the stream first
        // replays the bytes detection put back (still in its buffer), then starts reading.
        socket.resume();
      } else {
        handing = c;
        try {
          // Node's HTTP/2 session takes what the socket has buffered (socket.readableLength).
          h2.emit('connection', socket);
        } finally {
          handing = undefined;
        }
        // A declared http2/grpc port was never read from: the handle starts reading now.
        socket.resume();
      }
    },
  };
}

async function serveHttp1(
  c: HttpConnection,
  req: IncomingMessage,
  res: ServerResponse,
  deps: OutboundHttpDeps,
): Promise<void> {
  const abort = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  const bodyless =
    req.headers['content-length'] === undefined || req.headers['content-length'] === '0'
      ? req.headers['transfer-encoding'] === undefined
      : false;
  const request: L7Request = {
    method: req.method ?? 'GET',
    authority: req.headers.host ?? '',
    path: req.url ?? '/',
    headers: endToEnd(req.headers),
    body: req,
    version: '1.1',
    signal: abort.signal,
  };
  await serveRequest(c, request, bodyless, deps, (response) =>
    respondHttp1(res, response, acceptsTrailers(headerText(req.headers.te))),
  );
}

async function serveHttp2(
  c: HttpConnection,
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  flags: number,
  deps: OutboundHttpDeps,
): Promise<void> {
  if (headers[':method'] === 'CONNECT') {
    // A tunnel inside an HTTP/2 stream (RFC 9113 8.5, RFC 8441 WebSockets) is not carried yet:
    // refused plainly rather than forwarded as a request it is not.
    const answer = agentAnswerParts({
      reason: 'unsupported',
      detail: 'CONNECT inside an HTTP/2 stream is not carried: use HTTP/1.1 CONNECT or Upgrade',
      grpc: false,
    });
    stream.on('error', () => {});
    stream.respond({ ...answer.headers, ':status': answer.status });
    stream.end(answer.text);
    return;
  }
  const abort = new AbortController();
  let finished = false;
  stream.once('close', () => {
    if (!finished) abort.abort();
  });
  stream.on('error', () => {});
  const request: L7Request = {
    method: headerText(headers[':method']) ?? 'GET',
    authority: headerText(headers[':authority']) ?? headerText(headers.host) ?? '',
    path: headerText(headers[':path']) ?? '/',
    headers: endToEnd(headers),
    body: stream,
    version: '2',
    signal: abort.signal,
  };
  const bodyless = (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0;
  await serveRequest(c, request, bodyless, deps, async (response) => {
    const delivered = await respondHttp2(stream, response);
    finished = true;
    return delivered;
  });
}

/** One request: exchange, respond, and its record. */
async function serveRequest(
  c: HttpConnection,
  request: L7Request,
  bodyless: boolean,
  deps: OutboundHttpDeps,
  respond: (response: L7Response) => Promise<Delivered>,
): Promise<void> {
  const started = process.hrtime.bigint();
  // Route: a service without routes costs one map read; a request no rule matches goes to the
  // Service itself (route "default").
  const routes = routesFor(deps.state, c.target);
  const grpcCall = routes === undefined ? false : isGrpc(request.headers['content-type']);
  const decision =
    routes === undefined
      ? undefined
      : decideRoute(routes, request, grpcCall, c.target, deps.random ?? Math.random);
  // A routed request is its backend's (Envoy's cluster): its metrics' dst_service and its
  // circuit breaker's request slot; the route's name stays in the `route` label.
  const backend =
    decision?.kind === 'forward' && decision.target.service !== c.target.service
      ? decision.target.service
      : undefined;
  const labels = {
    direction: 'outbound' as const,
    src_service: c.record.src_service,
    dst_service: backend ?? c.target.service,
  };
  deps.requests.start(labels);
  let requestBytes = 0;
  const body = bodyless
    ? undefined
    : counted(request.body, (n) => {
        requestBytes += n;
      });
  // Trace: keep the app's trace (or start one); the next hop's parent is this span.
  const span = deps.tracer.start(request.headers, () =>
    httpSpan('client', request, { src: labels.src_service, dst: labels.dst_service }),
  );
  const headers = { ...request.headers };
  setTraceHeaders(headers, span);
  const sent = { ...request, headers, body: body ?? emptyBody(request.body) };
  const record: RequestRecord = {
    ...labels,
    route: decision?.route ?? 'default',
    method: request.method,
    authority: request.authority,
    path: request.path,
    protocol: protocolName(request.version),
    status: 0,
    src: c.record.src,
  } as RequestRecord;
  // The rest set in place, in the access log's order: no temporary object per request.
  if (c.record.src_identity) record.src_identity = c.record.src_identity;
  record.request_bytes = 0;
  record.response_bytes = 0;
  record.trace_id = span.traceId;
  record.close_reason = 'done';
  // circuit breaker: admitted (a slot held until the response is over), or answered at once.
  // The app's connection counts against the Service it called, the request against its backend.
  const slot = admitRequest(
    c,
    isGrpc(request.headers['content-type']),
    backend === undefined ? c.breaker : deps.state.breaker(backend),
  );
  try {
    const { response, endpoint, done } =
      slot instanceof BreakerSlot
        ? decision === undefined
          ? await exchange(c.ctx, c.target, sent, body, deps, { breaker: slot })
          : await routedExchange(c.ctx, decision, sent, body, grpcCall, deps, slot)
        : refused(slot, sent.body);
    // try/finally rather than .finally(done): no extra promises per request.
    let delivered: Delivered;
    try {
      delivered = await respond(response);
    } finally {
      done();
    }
    const grpc = grpcStatusOf(response.headers, response.trailers());
    const closeReason = closeReasonOf(response, delivered, request.signal);
    // The record is this request's own: filled in place (no copy per request), fields in the
    // order the access log has always had them.
    record.status = response.status;
    if (grpc !== undefined) record.grpc_status = grpc;
    if (endpoint) record.endpoint = endpoint;
    record.response_bytes = delivered.bytes;
    record.close_reason = closeReason;
    if (delivered.error) record.error = delivered.error;
  } catch (err) {
    record.close_reason = 'internal';
    record.error = describeError(err);
    throw err;
  } finally {
    if (slot instanceof BreakerSlot) slot.end();
    record.request_bytes = requestBytes;
    deps.requests.finish(record, started, request.headers);
    const error = recordError(record);
    span.end(spanResult(record.status, record.grpc_status, error));
  }
}

/**
 * Why the request ended: the agent's own answer says (its weft-reason, from this agent or the
 * peer's; or the route's redirect); else a response cut short broke on the app's side (it went away: the request was
 * aborted) or the upstream's; else done.
 */
function closeReasonOf(
  response: L7Response,
  delivered: Delivered,
  signal: AbortSignal,
): CloseReason {
  if (response.reason !== undefined) {
    // The route's redirect: the agent's, but a normal response (no weft-reason, not an answer).
    if (response.reason === 'route_redirect') return 'route_redirect';
    const grpc = grpcStatusOf(response.headers, undefined);
    return parseAnswerReason(response.reason) ?? reasonOfAnswer(response.status, grpc);
  }
  if (delivered.error !== undefined) return signal.aborted ? 'client_reset' : 'upstream_reset';
  return 'done';
}

/** The agent's own answer for a refused request; its body is read and dropped. */
function refused(response: L7Response, body: Readable): Exchanged {
  body.resume();
  return { response, endpoint: undefined, done: () => {} };
}

/**
 * The body as forwarded, its bytes counted on the way: a 'data' listener on the paused body
 * sees every chunk its reader takes without starting the flow itself (as the inbound stack's
 * `observed`), so back pressure stays the reader's. Not a Transform piped in between: that was
 * a stream, a pipe and about ten listeners more on every request with a body (every gRPC call).
 */
function counted(source: Readable, onBytes: (n: number) => void): Readable {
  source.pause();
  source.on('data', (chunk: Buffer) => onBytes(chunk.length));
  // A late error (the app gone after the exchange ended) must not be an unhandled 'error'.
  if (source.listenerCount('error') === 0) source.on('error', () => {});
  return source;
}

/** A bodiless request's body as the inbound stack reads it: the app's own, ended. */
function emptyBody(source: Readable): Readable {
  source.resume();
  return source;
}

function protocolName(version: HttpVersion): string {
  return version === '1.1' ? 'HTTP/1.1' : 'HTTP/2';
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function internal(log: Logger, err: unknown, socket: Socket | undefined): void {
  log.error({ err: describeError(err) }, 'outbound HTTP request failed unexpectedly');
  socket?.destroy();
}
