// HTTP/1.1 to local apps over keep-alive connections: one http.Agent whose pools are keyed by
// (app endpoint, caller IP), each connection made by the LocalConnector from the caller's
// address where the host allows it. Keying by the caller's IP keeps the app's view of who
// called (its peer address) true while still reusing connections across that caller's requests.
import { Agent, type AgentOptions, type ClientRequest, request as httpRequest } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { LocalConnector } from '../endpoint/connect-local.js';
import type { TunnelTarget } from '../tunnel/types.js';
import type { HeaderMap, L7Request } from './types.js';

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
  /** Idle connections kept per (app, caller IP). */
  maxIdlePerKey: number;
}

/** The options our createConnection reads beside Node's own (passed through by Node). */
interface PoolRequestOptions {
  host: string;
  port: number;
  weftClient?: TunnelTarget;
}

/** Whether a connection came from the caller's address, by socket (for the request record). */
export const preservedSockets = new WeakSet<Socket>();

class LocalAgent extends Agent {
  constructor(
    private readonly pool: LocalHttp1Options,
    options: AgentOptions,
  ) {
    super(options);
  }

  // Node's documented hook: a socket may be handed to the callback later (asynchronously).
  override createConnection(
    options: PoolRequestOptions,
    callback: (err: Error | null, socket?: Duplex) => void,
  ): undefined {
    this.pool.local
      .connect({
        target: { address: options.host, port: options.port },
        client: options.weftClient,
        timeoutMs: this.pool.connectTimeoutMs,
      })
      .then(
        ({ socket, preserved }) => {
          if (preserved) preservedSockets.add(socket);
          // The connectors keep a socket open after the peer's FIN (an opaque relay passes
          // the half-close on). A pooled HTTP/1.1 connection is done at the app's FIN: left
          // half-open it would stay in the pool and take the next request, which the app no
          // longer reads (its process may be gone).
          (socket as Socket).allowHalfOpen = false;
          callback(null, socket);
        },
        (err: Error) => callback(new LocalConnectError(err.message, { cause: err })),
      );
    return undefined;
  }
}

/** Methods Node does not frame with chunked encoding by default (their body is usually empty). */
const NO_DEFAULT_CHUNKING = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);

export class LocalHttp1Pool {
  private readonly agent: LocalAgent;

  constructor(opts: LocalHttp1Options) {
    this.agent = new LocalAgent(opts, {
      keepAlive: true,
      timeout: opts.idleTimeoutMs,
      maxFreeSockets: opts.maxIdlePerKey,
      scheduling: 'lifo',
    });
  }

  /** Starts the request; the body is piped by the caller (see local-app.ts). */
  request(target: TunnelTarget, client: TunnelTarget | undefined, req: L7Request): ClientRequest {
    const headers: HeaderMap = { ...req.headers, host: req.authority };
    // `te` needs a `Connection: te` on HTTP/1.1 (RFC 9110 section 10.1.4); trailers are
    // HTTP/2's business here, so it is not sent.
    delete headers.te;
    const out = httpRequest({
      agent: this.agent,
      host: target.address,
      port: target.port,
      // Part of the pool's key (Agent.getName): connections are reused per caller IP.
      ...(client ? { localAddress: client.address, weftClient: client } : {}),
      method: req.method,
      path: req.path,
      headers,
      setHost: false,
    });
    if (NO_DEFAULT_CHUNKING.has(req.method) && headers['content-length'] === undefined) {
      // A GET with a body and no length: Node would write it unframed (a smuggling hazard);
      // frame it as chunked, decided by the first byte since most have none.
      req.body.once('data', () => {
        if (!out.headersSent) out.setHeader('transfer-encoding', 'chunked');
      });
    }
    return out;
  }

  /** Connections open now (in use and idle), for tests and /config_dump. */
  connections(): number {
    const count = (m: NodeJS.ReadOnlyDict<unknown[]>) =>
      Object.values(m).reduce((n, list) => n + (list?.length ?? 0), 0);
    return count(this.agent.sockets) + count(this.agent.freeSockets);
  }

  close(): void {
    this.agent.destroy();
  }
}
