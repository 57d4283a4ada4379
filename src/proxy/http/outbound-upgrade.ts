// An app's Upgrade (WebSocket) or CONNECT on an HTTP connection: past the request head the
// connection is opaque bytes, so it continues as the opaque stack does (an endpoint picked for
// the connection, a CONNECT stream through the tunnel or a local socket) with the request
// head replayed to the endpoint, which answers the upgrade itself.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { type CloseReason, type RelayEnd, spliceCloseReason } from '../close-reason.js';
import type { OutboundContext } from '../outbound/identify.js';
import { type OpaqueDeps, openOpaque, type ServiceTarget } from '../outbound/opaque.js';
import { relay } from '../tcp-relay.js';
import { splice } from '../tunnel/index.js';
import { agentAnswerParts } from './agent-answer.js';
import { rawAnswer, rawRequestHead } from './outbound-wire.js';

/** The connection an upgrade happens on (outbound-server.ts's HttpConnection). */
export interface UpgradingConnection {
  ctx: OutboundContext;
  target: ServiceTarget;
  closeReason: CloseReason | undefined;
  error: string | undefined;
}

export async function upgradeToOpaque(
  c: UpgradingConnection,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  deps: OpaqueDeps,
): Promise<void> {
  // Nothing more is read from the app until its bytes have somewhere to go.
  socket.pause();
  const opened = await openOpaque(c.ctx, c.target, deps);
  if (opened.kind === 'refused') {
    c.closeReason = opened.close_reason;
    c.error = opened.error;
    const answer = agentAnswerParts({
      reason: opened.close_reason,
      detail: opened.error,
      grpc: false,
    });
    socket.end(rawAnswer(answer));
    return;
  }
  const replay = Buffer.concat([
    Buffer.from(
      rawRequestHead(req.method ?? 'GET', req.url ?? '/', req.httpVersion, req.rawHeaders),
      'latin1',
    ),
    head,
  ]);
  const finish = (reason: RelayEnd, error?: string): void => {
    opened.done();
    c.closeReason = reason === 'done' ? 'upgraded' : reason;
    if (error) c.error = error;
  };
  const upstream = opened.upstream;
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
