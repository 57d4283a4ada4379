// The agent's admin endpoint (127.0.0.1:15000), JSON for people and probes on the host:
//   /live         200 while the process serves requests at all (restart it when this fails)
//   /ready        200 when the listeners are up and a snapshot is loaded, fresh or cached.
//                 Serving cached state is ready: fail static means keep carrying traffic on
//                 the last-known-good config rather than drop the host from service, so the
//                 body says {"stale": true} and the alert belongs on weft_sync_state{state=
//                 "stale"}. `/ready?strict` answers 503 while stale, for who wants that.
//   /config_dump  the snapshot held, with its version, sync state and last update
//   /certs        each certificate held: SPIFFE ID, serial, validity, seconds left
//   /endpoints    each service's virtual IP, ports and endpoints
//   /workers      the agent's master (pid, build, upgrades) and worker processes: pid,
//                 generation, state, connections held, build
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { ControlPlaneSession } from '../controlplane-client/session.js';
import { WeftError } from '../errors.js';
import { createServer } from '../sys/node-http.js';
import { certsView, configDumpView, endpointsView, readyView } from './admin-views.js';

export interface AdminServerOptions {
  /** From the agent config's admin section (default 127.0.0.1:15000); port 0 picks one. */
  address: string;
  port: number;
  /** Absent when the agent runs without a control plane (a plain relay: state "standalone"). */
  session?: ControlPlaneSession;
  /** True once the agent's traffic listeners accept connections; without it, assumed up. */
  listenersReady?: () => boolean;
  /** The agent's workers (the master's pool); absent for an agent of one process. */
  workers?: () => unknown[];
  /** The master itself (pid, version, build, upgrades); absent for an agent of one process. */
  master?: () => unknown;
  logger?: Logger;
}

export interface AdminServer {
  /** Where it listens (the real port when 0 was asked for). */
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
    throw new WeftError('WEFT_E_CONFIG', `admin.port: must be 0-65535, got ${options.port}`);
  }
  const server = createServer((req, res) => handle(options, req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new WeftError(
          'WEFT_E_CONFIG',
          `admin: cannot listen on ${options.address}:${options.port}: ${err.code ?? err.message}`,
        ),
      ),
    );
    server.listen(options.port, options.address, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  options.logger?.info({ address: bound.address, port: bound.port }, 'admin endpoint listening');
  return { address: bound.address, port: bound.port, close: () => closeServer(server) };
}

function handle(options: AdminServerOptions, req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    send(res, 405, { error: 'only GET' });
    return;
  }
  try {
    const { status, body } = route(options, new URL(req.url ?? '/', 'http://admin'));
    send(res, status, body);
  } catch (err) {
    options.logger?.error({ err }, 'admin request failed');
    send(res, 500, { error: (err as Error).message });
  }
}

function route(options: AdminServerOptions, url: URL): { status: number; body: unknown } {
  const { session } = options;
  switch (url.pathname) {
    case '/live':
      return { status: 200, body: { live: true } };
    case '/ready': {
      const view = readyView(
        session,
        options.listenersReady?.() ?? true,
        url.searchParams.has('strict'),
      );
      return { status: view.ready ? 200 : 503, body: view };
    }
    case '/config_dump':
      return { status: 200, body: configDumpView(session) };
    case '/certs':
      return { status: 200, body: certsView(session) };
    case '/endpoints':
      return { status: 200, body: endpointsView(session) };
    case '/workers':
      return {
        status: 200,
        body: { master: options.master?.(), workers: options.workers?.() ?? [] },
      };
    default:
      return {
        status: 404,
        body: {
          error: 'no such page; try /ready, /live, /config_dump, /certs, /endpoints, /workers',
        },
      };
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Probes use keep-alive; do not wait for their idle sockets.
    server.closeAllConnections();
  });
}
