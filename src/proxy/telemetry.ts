// The data path's golden TCP metrics and its access log. Names follow Linkerd's, which
// operators search for (tcp_open_total, tcp_read_bytes_total, ...), prefixed weft_. Labels are
// bounded: direction, the two service names (or "unknown"/"external"), and the close reason.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { type LineWriter, type Logger, lineWriter } from '../sys/logger.js';
import type { DenialDetail, RecentDenials } from '../telemetry/recent-denials.js';
import { elapsedMs } from './address.js';
import {
  CONNECTION_LABELS,
  CONNECTION_LINE,
  type ConnectionLabels,
  type ConnectionRecord,
  closeLabels,
  connectionLabels,
  logLine,
  type RefusedConnection,
} from './records.js';

export type { ConnectionLabels, ConnectionRecord } from './records.js';

const LABELS = CONNECTION_LABELS;

export class Telemetry {
  private readonly opened: Counter<(typeof LABELS)[number]>;
  private readonly closed: Counter<(typeof LABELS)[number] | 'reason'>;
  private readonly openConnections: Gauge<(typeof LABELS)[number]>;
  private readonly readBytes: Counter<(typeof LABELS)[number]>;
  private readonly writeBytes: Counter<(typeof LABELS)[number]>;
  private readonly duration: Histogram<(typeof LABELS)[number]>;
  private readonly authz: Counter<'direction' | 'dst_service' | 'decision'>;

  private readonly line: LineWriter;

  constructor(
    registry: Registry,
    log: Logger,
    private readonly denials?: RecentDenials,
  ) {
    // The access log's writer, picked once (see lineWriter): one line per request.
    this.line = lineWriter(log);
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
    this.opened.inc(connectionLabels(labels));
    this.openConnections.inc(connectionLabels(labels));
  }

  /** A connection counted by open() ends: metrics and its access-log line. */
  close(record: ConnectionRecord, started: bigint): void {
    this.openConnections.dec(connectionLabels(record));
    this.finish(record, elapsedMs(started));
  }

  /** A connection refused before it opened (no endpoint, denied, unknown destination). */
  refused(record: RefusedConnection, started: bigint): void {
    this.opened.inc(connectionLabels(record));
    this.finish({ ...record, bytes_sent: 0, bytes_received: 0 }, elapsedMs(started));
  }

  private finish(record: ConnectionRecord, durationMs: number): void {
    const labels = connectionLabels(record);
    this.closed.inc(closeLabels(record));
    this.readBytes.inc(labels, record.bytes_sent);
    this.writeBytes.inc(labels, record.bytes_received);
    this.duration.observe(labels, durationMs);
    this.line(logLine(record, durationMs), CONNECTION_LINE);
  }

  /** An authorization decision; a denial, with who was refused what, is kept for the report. */
  decision(
    direction: 'outbound' | 'inbound',
    dstService: string,
    allowed: boolean,
    denied?: Omit<DenialDetail, 'direction' | 'destination'>,
  ): void {
    this.authz.inc({ direction, dst_service: dstService, decision: allowed ? 'allow' : 'deny' });
    if (!allowed && denied !== undefined)
      this.denials?.add({ ...denied, direction, destination: dstService });
  }
}
