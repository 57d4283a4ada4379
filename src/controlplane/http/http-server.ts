// The control plane's HTTP port (15014): /healthz (the process is up), /readyz (store open,
// gRPC serving), /metrics (Prometheus), and the web dashboard (/, behind its login).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { type DashboardHttp, isDashboardPath } from '../dashboard/dashboard-http.js';

export interface HttpServerOptions {
  host: string;
  port: number;
  registry: Registry;
  dashboard: DashboardHttp;
  /** Undefined when ready; else why not. */
  notReady(): Promise<string | undefined>;
}

export async function startHttpServer(
  options: HttpServerOptions,
): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const reply = (status: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(status, { 'content-type': type });
      res.end(body);
    };
    if (isDashboardPath(path)) {
      void options.dashboard.handle(req, res, path);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'method not allowed\n');
    if (path === '/healthz') return reply(200, 'ok\n');
    if (path === '/readyz') {
      options.notReady().then(
        (why) => (why === undefined ? reply(200, 'ready\n') : reply(503, `not ready: ${why}\n`)),
        (err: unknown) => reply(503, `not ready: ${String(err)}\n`),
      );
      return;
    }
    if (path === '/metrics') {
      options.registry.metrics().then(
        (text) => reply(200, text, options.registry.contentType),
        (err: unknown) => reply(500, `cannot collect metrics: ${String(err)}\n`),
      );
      return;
    }
    reply(404, 'not found: try /, /healthz, /readyz or /metrics\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { server, port: (server.address() as AddressInfo).port };
}
