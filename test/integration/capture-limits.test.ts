// The capture listener's guards on loopback with real sockets: connections beyond the total
// and per-source limits are reset right after accept (the next stage never sees them) and
// counted by reason on /metrics; their log lines are one per interval, not one each; a
// relayed connection is closed after its idle time with no byte either way, and (inbound)
// after its silent time with no byte at all. Accepted as TPROXY delivers them (the original
// destination is the socket's own address), the next stage relays to an echo server.
import { connect, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { type MetricsServer, startMetricsServer } from '../../src/agent/metrics-server.js';
import { nativeSocketOps } from '../../src/native/socket-ops.js';
import {
  type CapturedConnection,
  createCaptureServer,
  type RelayTimeouts,
} from '../../src/proxy/capture-listener.js';
import { connectDirect } from '../../src/proxy/endpoint/connect-direct.js';
import { ConnectionGate } from '../../src/proxy/limits/connection-gate.js';
import { observedRelay } from '../../src/proxy/observed-relay.js';
import { Refusals } from '../../src/proxy/refusals.js';
import { Telemetry } from '../../src/proxy/telemetry.js';
import { echoTarget, type Target } from './tunnel-fixture.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

interface Listener {
  port: number;
  gate: ConnectionGate;
  handled: CapturedConnection[];
  lines: Array<Record<string, unknown>>;
  scrape(): Promise<string>;
}

async function listener(
  limits: { maxConnections: number; maxConnectionsPerSource: number },
  timeouts: RelayTimeouts = { idleMs: 60_000 },
): Promise<Listener> {
  const echo: Target = await echoTarget();
  cleanups.push(() => echo.close());
  const lines: Array<Record<string, unknown>> = [];
  const log = pino(
    new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
        done();
      },
    }),
  );
  const registry = new Registry();
  const telemetry = new Telemetry(registry, log);
  const gate = new ConnectionGate(limits);
  const handled: CapturedConnection[] = [];
  const server: Server = createCaptureServer({
    direction: 'inbound',
    mode: 'tproxy',
    ownPorts: new Set(),
    socketOps: nativeSocketOps,
    log,
    gate,
    refusals: new Refusals({ log, registry, logIntervalMs: 300 }),
    timeouts,
    handle: (conn) => {
      handled.push(conn);
      void connectDirect('127.0.0.1', echo.port, 2_000).then((upstream) =>
        observedRelay(conn, { socket: upstream }, telemetry, {
          direction: 'inbound',
          src: conn.source,
          dst: `127.0.0.1:${echo.port}`,
          src_service: 'unknown',
          dst_service: 'echo',
        }),
      );
    },
  });
  const open = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    open.add(s);
    s.once('close', () => open.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const metrics: MetricsServer = await startMetricsServer(registry, '127.0.0.1', 0);
  cleanups.push(() => metrics.close());
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  );
  return {
    port: (server.address() as { port: number }).port,
    gate,
    handled,
    lines,
    scrape: async () => (await fetch(`http://127.0.0.1:${metrics.port}/metrics`)).text(),
  };
}

/** A client from `from` (any 127.x address is this host). */
function client(port: number, from: string): Socket {
  const socket = connect({ host: '127.0.0.1', port, localAddress: from });
  socket.on('error', () => {});
  cleanups.push(() => socket.destroy());
  return socket;
}

/** Sends `text` and resolves with what comes back first: the connection is relayed. */
function roundTrip(socket: Socket, text = 'ping'): Promise<string> {
  return new Promise((resolve, reject) => {
    socket.once('data', (d: Buffer) => resolve(d.toString()));
    socket.once('close', () => reject(new Error('closed before an answer')));
    socket.write(text);
  });
}

/** Resolves with how the connection ended: the error code, or 'closed'. */
function ended(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let code = 'closed';
    socket.on('error', (err: NodeJS.ErrnoException) => {
      code = err.code ?? err.message;
    });
    socket.once('close', () => resolve(code));
  });
}

function series(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

describe('connection limits at accept', () => {
  it('holds up to the per-source and total limits, resets the rest at once, and counts them', async () => {
    const l = await listener({ maxConnections: 4, maxConnectionsPerSource: 2 });
    const a = [client(l.port, '127.0.0.1'), client(l.port, '127.0.0.1')];
    for (const s of a) expect(await roundTrip(s)).toBe('ping');
    // One source's third connection: reset, while its two are held.
    expect(await ended(client(l.port, '127.0.0.1'))).toBe('ECONNRESET');
    // Another source still gets in, up to the total.
    const b = [client(l.port, '127.0.0.2'), client(l.port, '127.0.0.2')];
    for (const s of b) expect(await roundTrip(s)).toBe('ping');
    expect(await ended(client(l.port, '127.0.0.3'))).toBe('ECONNRESET');
    // The refused ones never reached the next stage.
    expect(l.handled).toHaveLength(4);
    const text = await l.scrape();
    expect(
      series(text, 'weft_connections_refused_total{listener="inbound",reason="per_source_limit"}'),
    ).toBe(1);
    expect(
      series(text, 'weft_connections_refused_total{listener="inbound",reason="total_limit"}'),
    ).toBe(1);
    // A closed connection gives its slot back.
    a[0]!.destroy();
    await expect.poll(() => l.gate.openFrom('127.0.0.1')).toBe(1);
    expect(await roundTrip(client(l.port, '127.0.0.1'))).toBe('ping');
  });

  it('logs a burst of refusals as one line, then one summary with the count', async () => {
    const l = await listener({ maxConnections: 10, maxConnectionsPerSource: 1 });
    expect(await roundTrip(client(l.port, '127.0.0.1'))).toBe('ping');
    for (let i = 0; i < 30; i++)
      expect(await ended(client(l.port, '127.0.0.1'))).toBe('ECONNRESET');
    const refusalLines = () => l.lines.filter((x) => x.reason === 'per_source_limit');
    await expect.poll(() => refusalLines().find((x) => x.refused !== undefined)).toBeDefined();
    expect(refusalLines()).toHaveLength(2);
    expect(refusalLines()[1]).toMatchObject({
      listener: 'inbound',
      refused: 29,
      top_sources: { '127.0.0.1': 29 },
    });
  });
});

describe('timeouts of relayed connections', () => {
  it('closes a connection with no byte either way for idleMs; traffic keeps one open', async () => {
    const l = await listener({ maxConnections: 10, maxConnectionsPerSource: 10 }, { idleMs: 400 });
    const quiet = client(l.port, '127.0.0.1');
    const busy = client(l.port, '127.0.0.1');
    expect(await roundTrip(quiet)).toBe('ping');
    expect(await roundTrip(busy)).toBe('ping');
    busy.on('data', () => {});
    const chatter = setInterval(() => busy.write('.'), 50);
    cleanups.push(() => clearInterval(chatter));
    await ended(quiet);
    expect(busy.destroyed).toBe(false);
    await expect
      .poll(async () =>
        series(
          await l.scrape(),
          'weft_tcp_close_total{direction="inbound",src_service="unknown",dst_service="echo",reason="idle_timeout"}',
        ),
      )
      .toBe(1);
    expect(l.lines.find((x) => x.msg === 'connection')).toMatchObject({
      close_reason: 'idle_timeout',
      bytes_sent: 4,
      bytes_received: 4,
    });
  });

  it('closes an inbound connection on which no byte moved for silentMs', async () => {
    const l = await listener(
      { maxConnections: 10, maxConnectionsPerSource: 10 },
      { idleMs: 60_000, silentMs: 300 },
    );
    const silent = client(l.port, '127.0.0.1');
    const talking = client(l.port, '127.0.0.1');
    expect(await roundTrip(talking)).toBe('ping');
    await ended(silent);
    expect(talking.destroyed).toBe(false);
    expect(await roundTrip(talking, 'still here')).toBe('still here');
    await expect
      .poll(() => l.lines.find((x) => x.msg === 'connection'))
      .toMatchObject({ close_reason: 'silent_timeout', bytes_sent: 0, bytes_received: 0 });
  });
});
