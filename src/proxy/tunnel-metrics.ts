// The tunnel's metrics, both ends: the pool's sessions, handshakes and streams (sending side),
// the server's sessions and streams by status and close reason (receiving side). Read from
// their stats at scrape time, off the data path. Refusals of connections to 15008 are
// weft_connections_refused_total{listener="tunnel"} (refusals.ts).
import type { Registry } from 'prom-client';
import { Counter, Gauge } from '../telemetry/prom.js';
import type { TunnelPool, TunnelServer } from './tunnel/index.js';

export function registerTunnelMetrics(
  registry: Registry,
  pool: () => TunnelPool | undefined,
  server: () => TunnelServer | undefined,
): void {
  const registers = [registry];
  new Gauge({
    name: 'weft_tunnel_sessions',
    help: 'Open mTLS tunnel sessions to peer agents',
    registers,
    collect() {
      this.set(pool()?.stats().sessions ?? 0);
    },
  });
  new Counter({
    name: 'weft_tunnel_handshakes_total',
    help: 'TLS handshakes made by the tunnel pool since start (low under steady traffic: sessions are pooled)',
    registers,
    collect() {
      this.reset();
      this.inc(pool()?.stats().handshakesTotal ?? 0);
    },
  });
  new Gauge({
    name: 'weft_tunnel_streams_active',
    help: 'Connections riding the tunnel pool now',
    registers,
    collect() {
      this.set(pool()?.stats().streamsActive ?? 0);
    },
  });
  new Gauge({
    name: 'weft_tunnel_server_sessions',
    help: 'Tunnel sessions from peer agents open now',
    registers,
    collect() {
      this.set(server()?.stats().sessionsActive ?? 0);
    },
  });
  new Counter({
    name: 'weft_tunnel_server_sessions_idle_closed_total',
    help: 'Tunnel sessions from peer agents closed because they carried no stream for the idle timeout',
    registers,
    collect() {
      this.reset();
      this.inc(server()?.stats().sessionsIdleClosed ?? 0);
    },
  });
  new Counter({
    name: 'weft_tunnel_server_streams_total',
    help: 'Streams from peer agents, by the status answered (0: none) and how they ended',
    labelNames: ['status', 'reason'],
    registers,
    collect() {
      this.reset();
      for (const o of server()?.stats().streamOutcomes ?? []) {
        this.inc({ status: String(o.status), reason: o.reason }, o.count);
      }
    },
  });
}
