// HTTP/2 with prior knowledge (h2c) to local apps, gRPC's transport: one session per (app
// endpoint, caller IP), multiplexing every request of that caller host, made by the
// LocalConnector from the caller's address where the host allows it. A session that closes,
// errs or gets GOAWAY is forgotten at once; the next request opens a new one.
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

interface Entry {
  session: Promise<{ session: ClientHttp2Session; preserved: boolean }>;
}

export class LocalH2Sessions {
  private readonly sessions = new Map<string, Entry>();

  constructor(private readonly opts: LocalH2Options) {}

  /** Opens a stream for the request (headers sent at once); the caller pipes the body. */
  async request(
    target: TunnelTarget,
    client: TunnelTarget | undefined,
    req: L7Request,
  ): Promise<{ stream: ClientHttp2Stream; preserved: boolean }> {
    const { session, preserved } = await this.session(target, client);
    const headers: OutgoingHttpHeaders = {
      ...req.headers,
      ':method': req.method,
      ':path': req.path,
      ':authority': req.authority,
      ':scheme': 'http',
    };
    return { stream: session.request(headers, { endStream: false }), preserved };
  }

  private session(target: TunnelTarget, client: TunnelTarget | undefined): Entry['session'] {
    const key = `${formatAuthority(target)}|${client?.address ?? ''}`;
    const known = this.sessions.get(key);
    if (known) return known.session;
    const entry: Entry = { session: this.open(target, client, () => forget()) };
    const forget = () => {
      if (this.sessions.get(key) === entry) this.sessions.delete(key);
    };
    entry.session.catch(forget);
    this.sessions.set(key, entry);
    return entry.session;
  }

  private async open(
    target: TunnelTarget,
    client: TunnelTarget | undefined,
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
    return { session, preserved };
  }

  /** Sessions open now. */
  count(): number {
    return this.sessions.size;
  }

  close(): void {
    for (const entry of this.sessions.values()) {
      entry.session.then(({ session }) => session.destroy()).catch(() => {});
    }
    this.sessions.clear();
  }
}
