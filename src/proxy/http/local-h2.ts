// HTTP/2 with prior knowledge (h2c) to local apps, gRPC's transport: sessions per (app
// endpoint, caller IP), multiplexing every request of that caller host, made by the
// LocalConnector from the caller's address where the host allows it. A session takes streams
// up to the app's SETTINGS_MAX_CONCURRENT_STREAMS; past that another is opened (as Envoy and
// HAProxy do), so a request never waits inside the agent behind the app's limit on one
// connection. A session that closes, errs or gets GOAWAY is forgotten at once.
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect as h2connect,
  type OutgoingHttpHeaders,
} from 'node:http2';
import type { LocalConnector } from '../endpoint/connect-local.js';
import { formatAuthority } from '../tunnel/authority.js';
import type { TunnelTarget } from '../tunnel/types.js';
import { LocalConnectError } from './local-http1.js';
import type { L7Request } from './types.js';

export interface LocalH2Options {
  local: Pick<LocalConnector, 'connect'>;
  connectTimeoutMs: number;
  /** A session with no stream activity for this long is closed (GOAWAY). */
  idleTimeoutMs: number;
}

/**
 * Per-stream receive window towards the app: with the tunnel's 4 MiB window on the other side,
 * what one slow caller can make the agent hold for a stream stays a few MiB. Local RTTs are
 * tiny, so 1 MiB does not limit throughput.
 */
const STREAM_WINDOW = 1024 * 1024;
const SESSION_WINDOW = 16 * 1024 * 1024;
/**
 * Streams a session takes before the app's SETTINGS say how many it allows: RFC 9113 section
 * 6.5.2 recommends that servers allow at least 100, and most advertise exactly that (HAProxy,
 * grpc-java, nginx 128).
 */
const UNKNOWN_LIMIT = 100;
/**
 * Sessions per (app, caller IP) at most: a bound on the connections one caller host makes to
 * an app. When all are full, the least busy one takes the stream and nghttp2 holds it until a
 * stream of that session ends (the app's own limit, kept).
 */
export const MAX_SESSIONS_PER_APP = 16;

interface Entry {
  session: Promise<{ session: ClientHttp2Session; preserved: boolean }>;
  /** Streams opened on it and not yet closed (reserved before the session is ready). */
  active: number;
  /** The app's SETTINGS_MAX_CONCURRENT_STREAMS for this session, once it said. */
  limit: number;
}

export class LocalH2Sessions {
  private readonly sessions = new Map<string, Entry[]>();

  constructor(private readonly opts: LocalH2Options) {}

  /** Opens a stream for the request (headers sent at once); the caller pipes the body. */
  async request(
    target: TunnelTarget,
    client: TunnelTarget | undefined,
    req: L7Request,
  ): Promise<{ stream: ClientHttp2Stream; preserved: boolean }> {
    const entry = this.entry(target, client);
    // Reserved now, synchronously: requests arriving together spread over sessions with room.
    entry.active += 1;
    let stream: ClientHttp2Stream;
    let preserved: boolean;
    try {
      const opened = await entry.session;
      preserved = opened.preserved;
      const headers: OutgoingHttpHeaders = {
        ...req.headers,
        ':method': req.method,
        ':path': req.path,
        ':authority': req.authority,
        ':scheme': 'http',
      };
      stream = opened.session.request(headers, { endStream: false });
    } catch (err) {
      entry.active -= 1;
      throw err;
    }
    stream.once('close', () => {
      entry.active -= 1;
    });
    return { stream, preserved };
  }

  /** A session of this (app, caller IP) with room, else a new one, else the least busy. */
  private entry(target: TunnelTarget, client: TunnelTarget | undefined): Entry {
    const key = `${formatAuthority(target)}|${client?.address ?? ''}`;
    let list = this.sessions.get(key);
    if (list === undefined) {
      list = [];
      this.sessions.set(key, list);
    }
    let least: Entry | undefined;
    for (const e of list) {
      if (e.active < e.limit) return e;
      if (least === undefined || e.active < least.active) least = e;
    }
    if (least !== undefined && list.length >= MAX_SESSIONS_PER_APP) return least;
    const entries = list;
    const entry: Entry = { session: undefined as never, active: 0, limit: UNKNOWN_LIMIT };
    const forget = () => {
      const i = entries.indexOf(entry);
      if (i >= 0) entries.splice(i, 1);
      if (entries.length === 0 && this.sessions.get(key) === entries) this.sessions.delete(key);
    };
    entry.session = this.open(target, client, entry, forget);
    entry.session.catch(forget);
    list.push(entry);
    return entry;
  }

  private async open(
    target: TunnelTarget,
    client: TunnelTarget | undefined,
    entry: Entry,
    forget: () => void,
  ): Promise<{ session: ClientHttp2Session; preserved: boolean }> {
    let connected: Awaited<ReturnType<LocalH2Options['local']['connect']>>;
    try {
      connected = await this.opts.local.connect({
        target,
        client,
        timeoutMs: this.opts.connectTimeoutMs,
      });
    } catch (err) {
      throw new LocalConnectError((err as Error).message, { cause: err });
    }
    const { socket, preserved } = connected;
    const session = h2connect(`http://${formatAuthority(target)}`, {
      createConnection: () => socket,
      settings: { initialWindowSize: STREAM_WINDOW, enablePush: false },
    });
    session.on('error', () => {}); // seen by its streams; the session is forgotten on close
    session.once('close', forget);
    session.once('goaway', forget);
    session.setTimeout(this.opts.idleTimeoutMs, () => {
      forget();
      session.close();
    });
    session.once('connect', () => session.setLocalWindowSize(SESSION_WINDOW));
    // The app's limit, and any later change of it (RFC 9113 section 6.5.2: unlimited if absent).
    session.on('remoteSettings', (settings) => {
      entry.limit = Math.max(1, settings.maxConcurrentStreams ?? 2 ** 32 - 1);
    });
    return { session, preserved };
  }

  /** Sessions open (or opening) now. */
  count(): number {
    let n = 0;
    for (const list of this.sessions.values()) n += list.length;
    return n;
  }

  close(): void {
    for (const list of this.sessions.values()) {
      for (const entry of list) {
        entry.session.then(({ session }) => session.destroy()).catch(() => {});
      }
    }
    this.sessions.clear();
  }
}
