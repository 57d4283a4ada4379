// The data path's golden TCP metrics and its access log. Names follow Linkerd's, which
// operators search for (tcp_open_total, tcp_read_bytes_total, ...), prefixed weft_. Labels are
// bounded: direction, the two service names (or "unknown"/"external"), and the close reason.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Logger } from '../sys/logger.js';
import { elapsedMs } from './address.js';

export interface ConnectionLabels {
  direction: 'outbound' | 'inbound';
  src_service: string;
  dst_service: string;
}

export interface ConnectionRecord extends ConnectionLabels {
  src: string;
  dst: string;
  /** Inbound through the tunnel: the peer agent's address (`src` is the original client's). */
  peer?: string;
  /** Inbound: whether the application saw `src` as its peer (false: the agent's address). */
  src_preserved?: boolean;
  /** A client a tunnel peer claimed from another address than its own: not used. */
  src_claimed?: string;
  /** Where bytes went: "ip:port", or "tunnel <peer> -> ip:port". */
  endpoint?: string;
  src_identity?: string;
  dst_identity?: string;
  src_uid?: number;
  src_unit?: string;
  /** "mtls", "plaintext" or "local" (same host, no tunnel). */
  security?: string;
  bytes_sent: number;
  bytes_received: number;
  close_reason: string;
  error?: string;
}

const LABELS = ['direction', 'src_service', 'dst_service'] as const;

export class Telemetry {
  private readonly opened: Counter<(typeof LABELS)[number]>;
  private readonly closed: Counter<(typeof LABELS)[number] | 'reason'>;
  private readonly openConnections: Gauge<(typeof LABELS)[number]>;
  private readonly readBytes: Counter<(typeof LABELS)[number]>;
  private readonly writeBytes: Counter<(typeof LABELS)[number]>;
  private readonly duration: Histogram<(typeof LABELS)[number]>;
  private readonly authz: Counter<'direction' | 'dst_service' | 'decision'>;

  constructor(
    registry: Registry,
    private readonly log: Logger,
  ) {
    const registers = [registry];
    this.opened = new Counter({
      name: 'weft_tcp_open_total',
      help: 'TCP connections opened',
      labelNames: LABELS,
      registers,
    });
    this.closed = new Counter({
      name: 'weft_tcp_close_total',
      help: 'TCP connections closed, by reason',
      labelNames: [...LABELS, 'reason'],
      registers,
    });
    this.openConnections = new Gauge({
      name: 'weft_tcp_open_connections',
      help: 'TCP connections open now',
      labelNames: LABELS,
      registers,
    });
    this.readBytes = new Counter({
      name: 'weft_tcp_read_bytes_total',
      help: 'Bytes read from the client (sent towards the destination)',
      labelNames: LABELS,
      registers,
    });
    this.writeBytes = new Counter({
      name: 'weft_tcp_write_bytes_total',
      help: 'Bytes written to the client (received from the destination)',
      labelNames: LABELS,
      registers,
    });
    this.duration = new Histogram({
      name: 'weft_tcp_connection_duration_ms',
      help: 'How long TCP connections lasted, in milliseconds',
      labelNames: LABELS,
      buckets: [1, 5, 10, 50, 100, 500, 1_000, 5_000, 10_000, 60_000, 300_000, 3_600_000],
      registers,
    });
    this.authz = new Counter({
      name: 'weft_authz_decisions_total',
      help: 'Authorization decisions, by direction, destination service and decision',
      labelNames: ['direction', 'dst_service', 'decision'],
      registers,
    });
  }

  /** A connection starts: counted open until close() (every path: capture and tunnel). */
  open(labels: ConnectionLabels): void {
    this.opened.inc(labelsOf(labels));
    this.openConnections.inc(labelsOf(labels));
  }

  /** A connection counted by open() ends: metrics and its access-log line. */
  close(record: ConnectionRecord, started: bigint): void {
    this.openConnections.dec(labelsOf(record));
    this.finish(record, elapsedMs(started));
  }

  /** A connection refused before it opened (no endpoint, denied, unknown destination). */
  refused(record: Omit<ConnectionRecord, 'bytes_sent' | 'bytes_received'>, started: bigint): void {
    this.opened.inc(labelsOf(record));
    this.finish({ ...record, bytes_sent: 0, bytes_received: 0 }, elapsedMs(started));
  }

  private finish(record: ConnectionRecord, durationMs: number): void {
    const labels = labelsOf(record);
    this.closed.inc({ ...labels, reason: record.close_reason });
    this.readBytes.inc(labels, record.bytes_sent);
    this.writeBytes.inc(labels, record.bytes_received);
    this.duration.observe(labels, durationMs);
    this.log.info({ ...record, duration_ms: durationMs }, 'connection');
  }

  decision(direction: 'outbound' | 'inbound', dstService: string, allowed: boolean): void {
    this.authz.inc({ direction, dst_service: dstService, decision: allowed ? 'allow' : 'deny' });
  }
}

function labelsOf(r: ConnectionLabels): ConnectionLabels {
  return { direction: r.direction, src_service: r.src_service, dst_service: r.dst_service };
}
