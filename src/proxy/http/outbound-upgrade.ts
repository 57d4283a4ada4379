// An app's Upgrade (WebSocket) or CONNECT on an HTTP connection: past the request head the
// connection is opaque bytes, so it continues as the opaque stack does (an endpoint picked for
// the connection, a CONNECT stream through the tunnel or a local socket) with the request
// head replayed to the endpoint, which answers the upgrade itself. The Upgrade is one request
// record (its status read from the endpoint's first line), the bytes after it the connection's.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { type CloseReason, type RelayEnd, spliceCloseReason } from '../close-reason.js';
import type { OutboundContext } from '../outbound/identify.js';
import { type OpaqueDeps, openOpaque, type ServiceTarget } from '../outbound/opaque.js';
import { type OpenConnection, type RequestRecord, sameHostInbound } from '../records.js';
import { relay } from '../tcp-relay.js';
import { splice } from '../tunnel/index.js';
import { agentAnswerParts } from './agent-answer.js';
import { rawAnswer, rawRequestHead } from './outbound-wire.js';
import type { RequestTelemetry } from './request-telemetry.js';

/** The connection an upgrade happens on (outbound-server.ts's HttpConnection). */
export interface UpgradingConnection {
  ctx: OutboundContext;
  target: ServiceTarget;
  /** The connection's record: the request record starts from it. */
  record: OpenConnection;
  closeReason: CloseReason | undefined;
  error: string | undefined;
  /** Settles when the relay after the upgrade has ended (the connection's record waits). */
  relayed?: Promise<void>;
}

export interface UpgradeDeps extends OpaqueDeps {
  requests: RequestTelemetry;
}

/**
 * The Upgrade (or CONNECT) itself is one request record: method, authority, path, and the
 * status the endpoint answered (101, or its refusal) or the agent's own; the bytes after it
 * are the connection's record (closed `upgraded`).
 */
export async function upgradeToOpaque(
  c: UpgradingConnection,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  deps: UpgradeDeps,
): Promise<void> {
  // Nothing more is read from the app until its bytes have somewhere to go.
  socket.pause();
  const started = process.hrtime.bigint();
  const record = upgradeRecord(c, req);
  deps.requests.start(record);
  const opened = await openOpaque(c.ctx, c.target, deps);
  if (opened.kind === 'refused') {
    c.closeReason = opened.close_reason;
    c.error = opened.error;
    const answer = agentAnswerParts({
      reason: opened.close_reason,
      detail: opened.error,
      grpc: false,
      ...(opened.retryAfter === undefined ? {} : { retryAfter: opened.retryAfter }),
    });
    socket.end(rawAnswer(answer));
    deps.requests.finish(
      {
        ...record,
        status: answer.status,
        close_reason: opened.close_reason,
        error: opened.error,
        response_bytes: Buffer.byteLength(answer.text),
      },
      started,
    );
    return;
  }
  record.endpoint = opened.endpoint;
  let relayEnded = (): void => {};
  c.relayed = new Promise((resolve) => {
    relayEnded = resolve;
  });
  const replay = Buffer.concat([
    Buffer.from(
      rawRequestHead(req.method ?? 'GET', req.url ?? '/', req.httpVersion, req.rawHeaders),
      'latin1',
    ),
    head,
  ]);
  // The endpoint's status line ends the request record; until then it is in flight.
  let recorded = false;
  const answered = (status: number): void => {
    if (recorded) return;
    recorded = true;
    deps.requests.finish({ ...record, status }, started);
  };
  const upstream = opened.upstream;
  const source = 'socket' in upstream ? upstream.socket : upstream.stream;
  let seen = '';
  const onData = (chunk: Buffer): void => {
    seen += chunk.toString('latin1', 0, Math.min(chunk.length, STATUS_LINE_MAX));
    const status = responseStatus(seen);
    if (status === undefined && seen.length < STATUS_LINE_MAX) return;
    source.off('data', onData);
    answered(status ?? 0);
  };
  source.on('data', onData);
  // Same host: no receiving agent records the destination's side of it (see sameHostInbound).
  const inbound = opened.security === 'local' ? sameHostInbound(c.record) : undefined;
  if (inbound) {
    inbound.dst = opened.endpoint;
    inbound.endpoint = opened.endpoint;
    deps.telemetry.open(inbound);
  }
  const finish = (reason: RelayEnd, error?: string): void => {
    opened.done();
    source.off('data', onData);
    if (!recorded) {
      // Over before the endpoint answered: the request failed (or its caller went away).
      recorded = true;
      const why = reason === 'done' ? 'upstream_failed' : reason;
      deps.requests.finish({ ...record, close_reason: why, ...(error ? { error } : {}) }, started);
    }
    c.closeReason = reason === 'done' ? 'upgraded' : reason;
    if (error) c.error = error;
    if (inbound) {
      const end = {
        bytes_sent: socket.bytesRead,
        bytes_received: socket.bytesWritten,
        close_reason: c.closeReason,
        ...(error ? { error } : {}),
      };
      deps.telemetry.close({ ...inbound, ...end }, c.ctx.conn.started);
    }
    relayEnded();
  };
  if ('socket' in upstream) {
    upstream.socket.write(replay);
    relay(socket, upstream.socket, (s) => finish(s.reason, s.error));
  } else {
    upstream.stream.write(replay);
    splice(upstream.stream, socket, (r) =>
      finish(spliceCloseReason(r.reason, 'upstream'), r.detail),
    );
  }
  socket.resume();
}

/** An HTTP/1.x status line is short: one that has not ended by then is not one. */
const STATUS_LINE_MAX = 64;

/** The status of a response head's first line ("HTTP/1.1 101 Switching Protocols\r\n"). */
export function responseStatus(head: string): number | undefined {
  const m = /^HTTP\/1\.[01] (\d{3})[ \r]/.exec(head);
  return m ? Number(m[1]) : undefined;
}

function upgradeRecord(c: UpgradingConnection, req: IncomingMessage): RequestRecord {
  return {
    direction: 'outbound',
    src_service: c.record.src_service,
    dst_service: c.target.service,
    route: 'default',
    method: req.method ?? 'GET',
    authority: req.headers.host ?? '',
    path: req.url ?? '/',
    protocol: `HTTP/${req.httpVersion}`,
    status: 0,
    src: c.record.src,
    ...(c.record.src_identity ? { src_identity: c.record.src_identity } : {}),
    request_bytes: 0,
    response_bytes: 0,
    close_reason: 'done',
  };
}
