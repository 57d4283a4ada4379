// The per-connection metrics keep plain cells instead of prom-client's metric objects (for the
// cost of a new connection); a scrape must read exactly as prom-client's own exposition of the
// same calls did (the code before the change, kept here as the reference): the same series,
// labels, order, values and bucket edges, for opens, closes, refusals and decisions.

import pino from 'pino';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { type ConnectionRecord, closeLabels, connectionLabels } from '../../src/proxy/records.js';
import { Telemetry } from '../../src/proxy/telemetry.js';

const LABELS = ['direction', 'src_service', 'dst_service'] as const;
const BUCKETS = [1, 5, 10, 50, 100, 500, 1_000, 5_000, 10_000, 60_000, 300_000, 3_600_000];

/** The TCP metrics as prom-client's objects, fed as telemetry.ts fed them before. */
class Reference {
  private readonly opened: Counter;
  private readonly closed: Counter;
  private readonly open: Gauge;
  private readonly read: Counter;
  private readonly write: Counter;
  private readonly duration: Histogram;
  private readonly authz: Counter;

  constructor(registers: Registry[]) {
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
    this.open = new Gauge({
      name: 'weft_tcp_open_connections',
      help: 'TCP connections open now',
      labelNames: LABELS,
      registers,
    });
    this.read = new Counter({
      name: 'weft_tcp_read_bytes_total',
      help: 'Bytes read from the client (sent towards the destination)',
      labelNames: LABELS,
      registers,
    });
    this.write = new Counter({
      name: 'weft_tcp_write_bytes_total',
      help: 'Bytes written to the client (received from the destination)',
      labelNames: LABELS,
      registers,
    });
    this.duration = new Histogram({
      name: 'weft_tcp_connection_duration_ms',
      help: 'How long TCP connections lasted, in milliseconds',
      labelNames: LABELS,
      buckets: BUCKETS,
      registers,
    });
    this.authz = new Counter({
      name: 'weft_authz_decisions_total',
      help: 'Authorization decisions, by direction, destination service and decision',
      labelNames: ['direction', 'dst_service', 'decision'],
      registers,
    });
  }

  opens(r: ConnectionRecord): void {
    this.opened.inc(labels(r));
    this.open.inc(labels(r));
  }

  closes(r: ConnectionRecord, ms: number): void {
    this.open.dec(labels(r));
    this.finish(r, ms);
  }

  refuses(r: ConnectionRecord, ms: number): void {
    this.opened.inc(labels(r));
    this.finish(r, ms);
  }

  decides(direction: string, dst: string, allowed: boolean): void {
    this.authz.inc({ direction, dst_service: dst, decision: allowed ? 'allow' : 'deny' });
  }

  private finish(r: ConnectionRecord, ms: number): void {
    this.closed.inc(closeLabels(r) as unknown as Record<string, string>);
    this.read.inc(labels(r), r.bytes_sent);
    this.write.inc(labels(r), r.bytes_received);
    this.duration.observe(labels(r), ms);
  }
}

/** prom-client's label type, which the records' interfaces do not index. */
const labels = (r: ConnectionRecord) => connectionLabels(r) as unknown as Record<string, string>;

const record = (
  direction: 'outbound' | 'inbound',
  src: string,
  dst: string,
  close_reason: ConnectionRecord['close_reason'],
  bytes: [number, number],
): ConnectionRecord => ({
  direction,
  src_service: src,
  dst_service: dst,
  src: '10.0.0.1:40000',
  dst: '10.0.0.2:80',
  close_reason,
  bytes_sent: bytes[0],
  bytes_received: bytes[1],
});

describe('TCP telemetry series', () => {
  it('read as prom-client: opens, closes, refusals, zero bytes, odd names, decisions', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const telemetry = new Telemetry(ours, pino({ level: 'silent' }));
    const ref = new Reference([theirs]);
    // The durations come from the clock (elapsedMs): their buckets and sums are compared by
    // shape (names, labels, order, edges); their counts and every other series by value.
    const rows: Array<['open' | 'close' | 'refuse', ConnectionRecord]> = [
      ['open', record('outbound', 'web', 'orders', 'done', [0, 0])],
      ['open', record('inbound', 'unknown', 'orders', 'done', [0, 0])],
      ['close', record('outbound', 'web', 'orders', 'done', [120, 4_000])],
      ['refuse', record('outbound', 'web', 'external', 'circuit_open', [0, 0])],
      ['open', record('outbound', 'we"b\\\n', 'orders', 'done', [0, 0])],
      ['close', record('inbound', 'unknown', 'orders', 'client_reset', [0, 0])],
      ['open', record('outbound', 'web', 'orders', 'done', [0, 0])],
      ['close', record('outbound', 'web', 'orders', 'idle_timeout', [7, 0])],
      ['refuse', record('inbound', 'unknown', 'unknown', 'denied', [0, 0])],
    ];
    const started = process.hrtime.bigint();
    for (const [what, r] of rows) {
      if (what === 'open') {
        telemetry.open(r);
        ref.opens(r);
      } else if (what === 'close') {
        telemetry.close(r, started);
        ref.closes(r, 0);
      } else {
        telemetry.refused(r, started);
        ref.refuses(r, 0);
      }
    }
    telemetry.decision('inbound', 'orders', true);
    ref.decides('inbound', 'orders', true);
    telemetry.decision('outbound', 'orders', false, { source: 'x', reason: 'no' });
    ref.decides('outbound', 'orders', false);
    telemetry.decision('inbound', 'orders', true);
    ref.decides('inbound', 'orders', true);

    const normalize = (text: string) =>
      text.replace(/^(weft_tcp_connection_duration_ms_(?:sum|bucket)\{[^}]*\}) .*$/gm, '$1 X');
    const text = await ours.metrics();
    expect(normalize(text)).toBe(normalize(await theirs.metrics()));
    expect(text).toContain('weft_tcp_connection_duration_ms_count{direction="outbound"');
    const json = async (r: Registry) =>
      (await r.getMetricsAsJSON()).map((m) => ({
        ...m,
        values: m.values.map((v) =>
          m.name === 'weft_tcp_connection_duration_ms' &&
          (v as { metricName?: string }).metricName !== `${m.name}_count`
            ? { ...v, value: 0 }
            : v,
        ),
      }));
    expect(await json(ours)).toEqual(await json(theirs));
  });
});
