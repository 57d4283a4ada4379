// The data path's golden TCP metrics and its access log. Names follow Linkerd's, which
// operators search for (tcp_open_total, tcp_read_bytes_total, ...), prefixed weft_. Labels are
// bounded: direction, the two service names (or "unknown"/"external"), and the close reason.
// The series are plain cells found by one string key (request-series.ts), not prom-client's
// inc()/observe(), which hash and validate a label object on every call: seven such calls
// per connection were about 3 % of an agent's CPU per new connection.
import type { Registry } from 'prom-client';
import { type LineWriter, type Logger, lineWriter } from '../sys/logger.js';
import type { DenialDetail, RecentDenials } from '../telemetry/recent-denials.js';
import { elapsedMs } from './address.js';
import { HistogramFamily, ValueFamily } from './http/request-series.js';
import {
  CONNECTION_LINE,
  type ConnectionLabels,
  type ConnectionRecord,
  closeLabels,
  connectionLabels,
  logLine,
  type RefusedConnection,
} from './records.js';

export type { ConnectionLabels, ConnectionRecord } from './records.js';

/** One string per label set: the fields cannot hold a NUL (service names, a direction). */
function keyOf(r: ConnectionLabels): string {
  return `${r.direction}\0${r.src_service}\0${r.dst_service}`;
}

export class Telemetry {
  private readonly opened: ValueFamily;
  private readonly closed: ValueFamily;
  private readonly openConnections: ValueFamily;
  private readonly readBytes: ValueFamily;
  private readonly writeBytes: ValueFamily;
  private readonly duration: HistogramFamily;
  private readonly authz: ValueFamily;

  private readonly line: LineWriter;

  constructor(
    registry: Registry,
    log: Logger,
    private readonly denials?: RecentDenials,
  ) {
    // The access log's writer, picked once (see lineWriter): one line per request.
    this.line = lineWriter(log);
    this.opened = new ValueFamily(
      'weft_tcp_open_total',
      'TCP connections opened',
      'counter',
      registry,
    );
    this.closed = new ValueFamily(
      'weft_tcp_close_total',
      'TCP connections closed, by reason',
      'counter',
      registry,
    );
    this.openConnections = new ValueFamily(
      'weft_tcp_open_connections',
      'TCP connections open now',
      'gauge',
      registry,
    );
    this.readBytes = new ValueFamily(
      'weft_tcp_read_bytes_total',
      'Bytes read from the client (sent towards the destination)',
      'counter',
      registry,
    );
    this.writeBytes = new ValueFamily(
      'weft_tcp_write_bytes_total',
      'Bytes written to the client (received from the destination)',
      'counter',
      registry,
    );
    this.duration = new HistogramFamily(
      'weft_tcp_connection_duration_ms',
      'How long TCP connections lasted, in milliseconds',
      [1, 5, 10, 50, 100, 500, 1_000, 5_000, 10_000, 60_000, 300_000, 3_600_000],
      registry,
    );
    this.authz = new ValueFamily(
      'weft_authz_decisions_total',
      'Authorization decisions, by direction, destination service and decision',
      'counter',
      registry,
    );
  }

  /** A connection starts: counted open until close() (every path: capture and tunnel). */
  open(labels: ConnectionLabels): void {
    const key = keyOf(labels);
    const make = () => connectionLabels(labels);
    this.opened.cell(key, make).value += 1;
    this.openConnections.cell(key, make).value += 1;
  }

  /** A connection counted by open() ends: metrics and its access-log line. */
  close(record: ConnectionRecord, started: bigint): void {
    const key = keyOf(record);
    this.openConnections.cell(key, () => connectionLabels(record)).value -= 1;
    this.finish(record, key, elapsedMs(started));
  }

  /** A connection refused before it opened (no endpoint, denied, unknown destination). */
  refused(record: RefusedConnection, started: bigint): void {
    const key = keyOf(record);
    this.opened.cell(key, () => connectionLabels(record)).value += 1;
    this.finish({ ...record, bytes_sent: 0, bytes_received: 0 }, key, elapsedMs(started));
  }

  private finish(record: ConnectionRecord, key: string, durationMs: number): void {
    const make = () => connectionLabels(record);
    this.closed.cell(`${key}\0${record.close_reason}`, () => closeLabels(record)).value += 1;
    // As prom-client's inc(labels, 0): the series exists from the first close, even at 0 bytes.
    this.readBytes.cell(key, make).value += record.bytes_sent;
    this.writeBytes.cell(key, make).value += record.bytes_received;
    this.duration.observe(this.duration.cell(key, make), durationMs);
    this.line(logLine(record, durationMs), CONNECTION_LINE);
  }

  /** An authorization decision; a denial, with who was refused what, is kept for the report. */
  decision(
    direction: 'outbound' | 'inbound',
    dstService: string,
    allowed: boolean,
    denied?: Omit<DenialDetail, 'direction' | 'destination'>,
  ): void {
    const decision = allowed ? 'allow' : 'deny';
    this.authz.cell(`${direction}\0${dstService}\0${decision}`, () => ({
      direction,
      dst_service: dstService,
      decision,
    })).value += 1;
    if (!allowed && denied !== undefined)
      this.denials?.add({ ...denied, direction, destination: dstService });
  }
}
