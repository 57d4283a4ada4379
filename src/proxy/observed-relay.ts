// The last stage of both directions: splice the client to its upstream and record the
// connection when it closes, or refuse it at once and record that. One place, so every path
// counts and logs alike, and every relayed connection keeps its listener's timeouts: closed
// after idleMs with no byte either way (idle_timeout), or after silentMs with no byte at all
// since it started (silent_timeout: a caller that only holds a descriptor).
import type { Http2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { CapturedConnection } from './capture-listener.js';
import { spliceCloseReason } from './close-reason.js';
import type { ConnectionRecord, OpenConnection, RefusedConnection } from './records.js';
import { type RelaySummary, relay } from './tcp-relay.js';
import type { Telemetry } from './telemetry.js';
import { splice } from './tunnel/index.js';

/** Where the client's bytes go: a TCP socket, or a CONNECT stream of the tunnel. */
export type Upstream = { socket: Socket } | { stream: Http2Stream };

export interface RelayOptions {
  /** Called once the connection is over (before it is recorded): the endpoint's in-flight count. */
  onDone?: () => void;
  /**
   * A same-host connection is also the destination's inbound connection, which no tunnel
   * carries: recorded as such (open gauge, close counters, a log line), as the receiving agent
   * records a tunnelled one, so inbound metrics count every caller.
   */
  inbound?: OpenConnection;
}

export function observedRelay(
  conn: CapturedConnection,
  upstream: Upstream,
  telemetry: Telemetry,
  record: OpenConnection,
  opts: RelayOptions = {},
): void {
  const { onDone, inbound } = opts;
  const records = inbound ? [record, inbound] : [record];
  for (const r of records) telemetry.open(r);
  const close = (
    end: Pick<ConnectionRecord, 'bytes_sent' | 'bytes_received' | 'close_reason' | 'error'>,
  ) => {
    for (const r of records) telemetry.close({ ...r, ...end }, conn.started);
  };
  if (conn.client.destroyed) {
    // The client went away while its upstream was being reached: nothing to relay.
    if ('socket' in upstream) upstream.socket.destroy();
    else upstream.stream.destroy();
    onDone?.();
    close({ bytes_sent: 0, bytes_received: 0, close_reason: 'client_reset' });
    return;
  }
  let timedOut: 'idle_timeout' | 'silent_timeout' | undefined;
  const cut = (reason: 'idle_timeout' | 'silent_timeout'): void => {
    timedOut ??= reason;
    conn.client.destroy();
    if ('socket' in upstream) upstream.socket.destroy();
    else upstream.stream.destroy();
  };
  const silent = armTimeouts(conn, cut);
  const done = (summary: RelaySummary) => {
    if (silent !== undefined) clearTimeout(silent);
    onDone?.();
    close({
      bytes_sent: summary.bytesFromClient,
      bytes_received: summary.bytesToClient,
      close_reason: timedOut ?? summary.reason,
      ...(summary.error && !timedOut ? { error: summary.error } : {}),
    });
  };
  if ('socket' in upstream) {
    relay(conn.client, upstream.socket, done);
  } else {
    // The tunnel's splice maps resets both ways (RFC 9113 8.5) and batches writes.
    splice(upstream.stream, conn.client, (r) =>
      done({
        bytesFromClient: conn.client.bytesRead,
        bytesToClient: conn.client.bytesWritten,
        reason: spliceCloseReason(r.reason, 'upstream'),
        ...(r.detail ? { error: r.detail } : {}),
      }),
    );
  }
  conn.client.resume();
}

/**
 * The client socket carries every byte of the connection, both ways: its inactivity timer is
 * the connection's (Node re-arms it on each read and write, with no timer per byte). The
 * silent check is one timer, at silentMs after the start; it returns it for clearing.
 */
function armTimeouts(
  conn: CapturedConnection,
  cut: (reason: 'idle_timeout' | 'silent_timeout') => void,
): NodeJS.Timeout | undefined {
  const { idleMs, silentMs } = conn.timeouts;
  conn.client.setTimeout(idleMs, () => cut('idle_timeout'));
  if (silentMs === undefined) return undefined;
  const timer = setTimeout(() => {
    if (conn.client.bytesRead === 0 && conn.client.bytesWritten === 0) cut('silent_timeout');
  }, silentMs);
  timer.unref();
  return timer;
}

/** A reset, not a FIN: the client learns at once that nothing is there. */
export function refuseConnection(
  conn: CapturedConnection,
  telemetry: Telemetry,
  record: RefusedConnection,
): void {
  conn.client.resetAndDestroy();
  telemetry.refused(record, conn.started);
}
