// HTTP/2 PING on quiet tunnel sessions: a peer whose host died without a FIN or RST (power
// loss, a partition) would otherwise keep streams and pooled sessions hanging until TCP gives
// up, which takes many minutes. A session that received bytes since the last tick is alive
// and is not pinged, so busy sessions cost nothing.
import type { Http2Session } from 'node:http2';
import type { Socket } from 'node:net';
import { WeftError } from '../../errors.js';

export interface KeepAlive {
  /** How often a quiet session is pinged. */
  intervalMs: number;
  /** How long a PING may go unanswered before the session is destroyed. */
  timeoutMs: number;
}

export const DEFAULT_KEEPALIVE: KeepAlive = { intervalMs: 30_000, timeoutMs: 10_000 };

export function keepAliveOf(
  value: KeepAlive | false | undefined,
  where: string,
): KeepAlive | false {
  if (value === false) return false;
  const ka = { ...DEFAULT_KEEPALIVE, ...value };
  for (const field of ['intervalMs', 'timeoutMs'] as const) {
    if (!Number.isFinite(ka[field]) || ka[field] <= 0) {
      throw new WeftError(
        'WEFT_E_CONFIG',
        `${where}.keepAlive.${field} must be a positive number, got ${ka[field]}`,
      );
    }
  }
  return ka;
}

/**
 * Pings `session` when `socket` has been quiet for an interval; destroys the session with
 * `onDead`'s error when the answer does not come in time. Stops when the session closes.
 */
export function watchSession(
  session: Http2Session,
  socket: Socket,
  ka: KeepAlive | false,
  onDead: () => Error,
): void {
  if (ka === false) return;
  let lastRead = socket.bytesRead;
  let waiting: NodeJS.Timeout | undefined;
  const tick = setInterval(() => {
    const read = socket.bytesRead;
    if (read !== lastRead || waiting !== undefined || session.destroyed) {
      lastRead = read;
      return;
    }
    waiting = setTimeout(() => {
      if (!session.destroyed) session.destroy(onDead());
    }, ka.timeoutMs);
    waiting.unref();
    const sent = session.ping((err) => {
      clearTimeout(waiting);
      waiting = undefined;
      lastRead = socket.bytesRead;
      // An error here means the session is already going away: 'close' handles it.
      void err;
    });
    if (!sent) {
      clearTimeout(waiting);
      waiting = undefined;
    }
  }, ka.intervalMs);
  tick.unref();
  session.once('close', () => {
    clearInterval(tick);
    clearTimeout(waiting);
  });
}
