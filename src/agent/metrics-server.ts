// Prometheus `/metrics` on the host address (DESIGN.md: 15020). The registry is filled by the
// parts that own each metric; this serves it, off the data path, and adds the process's own.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { WeftError } from '../errors.js';
import { createServer } from '../sys/node-http.js';
import { collectProcessMetrics } from '../telemetry/prom.js';
import { registerEventLoopLag } from './event-loop-lag.js';

/**
 * prom-client's process metrics (CPU, memory, fds, GC, ...), with the event-loop lag measured
 * by event-loop-lag.ts instead: prom-client's reports its sampling interval as lag (and its
 * sampler, which src/telemetry/prom.ts leaves out, woke the loop once a second).
 */
export function registerProcessMetrics(registry: Registry): void {
  collectProcessMetrics(registry);
  registerEventLoopLag(registry);
}

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startMetricsServer(
  registry: Pick<Registry, 'metrics' | 'contentType'>,
  address: string,
  port: number,
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.url !== '/metrics' && !req.url?.startsWith('/metrics?')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only /metrics here\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new WeftError(
          'WEFT_E_SOCKET',
          `metrics: cannot listen on ${address}:${port}: ${err.code ?? err.message}`,
        ),
      ),
    );
    server.listen(port, address, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => server.close(() => resolve()).closeAllConnections()),
  };
}
