// Protocol detection on real loopback sockets: what each declared protocol reads, what `auto`
// decides from real clients (curl-like HTTP/1.1, HTTP/2 with prior knowledge, TLS with SNI,
// binary, silence), and that every byte reaches whoever takes the socket next (an echo, an
// HTTP/1.1 or HTTP/2 server handed the socket), in order, however the client split its writes.
import { randomBytes } from 'node:crypto';
import { Agent, createServer as h1CreateServer, request as h1Request } from 'node:http';
import { createServer as h2CreateServer, connect as h2connect } from 'node:http2';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as tlsCreateServer } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type Detected,
  type DetectOptions,
  detectProtocol,
} from '../../src/proxy/outbound/detect.js';
import { HTTP2_PREFACE } from '../../src/proxy/outbound/detect-sniff.js';
import { captureClientHello } from '../helpers/client-hello.js';
import { createTestCa, issueLeaf } from '../helpers/test-pki.js';
import { waitFor } from '../helpers/wait.js';
import { echoTarget, listenTarget, readAll, type Target } from './tunnel-fixture.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

/** Windows for `auto`: one no test waits out, and one short enough to wait out quickly. */
const LONG_WINDOW = 60_000;
const SHORT_WINDOW = 50;

const LISTENED = ['readable', 'data', 'end', 'close', 'error'] as const;
type Listeners = Record<(typeof LISTENED)[number], number>;
const listenersOf = (s: Socket) =>
  Object.fromEntries(LISTENED.map((e) => [e, s.listenerCount(e)])) as Listeners;

interface Detection {
  detected: Detected;
  /** Bytes read from the kernel when detection resolved (0: it read nothing). */
  bytesRead: number;
  paused: boolean;
  listenersBefore: Listeners;
  listenersAfter: Listeners;
}

interface Detector {
  port: number;
  /** Accepted sockets, in order. */
  sockets: Socket[];
  /** Detections, in the order they resolved. */
  results: Detection[];
}

/**
 * A listener that accepts paused (as the capture listener does), detects, records the result,
 * then hands the socket to `next`: the part of weft that takes the connection after detection.
 */
async function detector(
  opts: DetectOptions,
  next: (socket: Socket, detected: Detected) => void,
): Promise<Detector> {
  const sockets: Socket[] = [];
  const results: Detection[] = [];
  const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    socket.on('error', () => {}); // as the accept stage does
    const listenersBefore = listenersOf(socket);
    detectProtocol(socket, opts).then((detected) => {
      results.push({
        detected,
        bytesRead: socket.bytesRead,
        paused: socket.isPaused(),
        listenersBefore,
        listenersAfter: listenersOf(socket),
      });
      next(socket, detected);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => closeServer(server, sockets));
  return { port: (server.address() as { port: number }).port, sockets, results };
}

function closeServer(server: Server, sockets: Socket[]): Promise<void> {
  for (const s of sockets) s.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** The opaque relay, reduced to its essence: splice both ways, half-close kept. */
function relayTo(port: number) {
  return (socket: Socket) => {
    const upstream = netConnect({ port, host: '127.0.0.1', allowHalfOpen: true });
    upstream.on('error', () => socket.destroy());
    socket.once('close', () => upstream.destroy());
    socket.pipe(upstream);
    upstream.pipe(socket);
  };
}

function connectClient(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const client = netConnect({ port, host: '127.0.0.1', allowHalfOpen: true }, () =>
      resolve(client),
    );
    client.once('error', reject);
    cleanups.push(() => client.destroy());
  });
}

/**
 * Writes each chunk only once the detector has read everything before it, so the detector
 * really meets the bytes in these pieces (not coalesced by the kernel).
 */
async function writeApart(client: Socket, server: () => Socket | undefined, chunks: Buffer[]) {
  let sent = 0;
  for (const chunk of chunks) {
    client.write(chunk);
    sent += chunk.length;
    const total = sent;
    await waitFor(`the detector to read ${total} bytes`, () => {
      const s = server();
      return s !== undefined && s.bytesRead >= total;
    });
  }
}

function pieces(bytes: Buffer, cuts: number[]): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    out.push(bytes.subarray(at, cut));
    at = cut;
  }
  return out;
}

const latin1 = (text: string) => Buffer.from(text, 'latin1');

let echo: Target;
let clientHello: Buffer;
beforeAll(async () => {
  echo = await echoTarget('bye');
  clientHello = await captureClientHello('db.example');
  return () => echo.close();
});

describe('every byte read is given back, in order', () => {
  const request = latin1('GET /orders HTTP/1.1\r\nHost: orders.mesh\r\n\r\n');
  const binary = Buffer.from([0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f]); // postgres
  it.each<[string, DetectOptions['protocol'], Detected, () => Buffer[]]>([
    [
      'the HTTP/2 preface in 3 writes',
      'auto',
      { kind: 'http2' },
      () => pieces(HTTP2_PREFACE, [3, 15]),
    ],
    [
      'the HTTP/2 preface in 24 writes',
      'http',
      { kind: 'http2' },
      () =>
        pieces(
          HTTP2_PREFACE,
          [...Array(23).keys()].map((i) => i + 1),
        ),
    ],
    ['a request line in 3 writes', 'auto', { kind: 'http1' }, () => pieces(request, [2, 9])],
    ['a request line in 3 writes', 'http', { kind: 'http1' }, () => pieces(request, [2, 9])],
    [
      'a ClientHello in 2 writes',
      'auto',
      { kind: 'tls', sni: 'db.example' },
      () => pieces(clientHello, [7]),
    ],
    ['binary', 'auto', { kind: 'opaque', why: 'not_http_or_tls' }, () => [binary]],
    [
      'a 256 KiB first write',
      'auto',
      { kind: 'http1' },
      () => [Buffer.concat([request, randomBytes(256 * 1024)])],
    ],
  ])('%s on a port declared %s: %o', async (_what, protocol, expected, chunks) => {
    const det = await detector({ protocol, windowMs: LONG_WINDOW }, relayTo(echo.port));
    const client = await connectClient(det.port);
    const echoed = readAll(client);
    const first = chunks();
    await writeApart(client, () => det.sockets[0], first);
    const rest = randomBytes(100 * 1024);
    client.end(rest);

    expect(Buffer.compare(await echoed, Buffer.concat([...first, rest, latin1('bye')]))).toBe(0);
    expect(det.results.map((r) => r.detected)).toEqual([expected]);
  });

  it('leaves the socket paused, with no listener of its own left behind', async () => {
    const det = await detector({ protocol: 'auto', windowMs: LONG_WINDOW }, relayTo(echo.port));
    const client = await connectClient(det.port);
    const echoed = readAll(client);
    client.end(HTTP2_PREFACE);
    await echoed;
    const [result] = det.results;
    expect(result?.paused).toBe(true);
    expect(result?.listenersAfter).toEqual(result?.listenersBefore);
  });
});

describe('auto: clients that say nothing, or nothing decisive', () => {
  it('a silent client is opaque after the window; the server speaks first and they talk', async () => {
    const banner = await listenTarget((socket) => {
      socket.on('error', () => {});
      socket.write('220 mail.example ESMTP ready\r\n');
      socket.on('data', (chunk) => socket.write(chunk));
      socket.on('end', () => socket.end());
    });
    cleanups.push(() => banner.close());
    const det = await detector({ protocol: 'auto', windowMs: SHORT_WINDOW }, relayTo(banner.port));
    const client = await connectClient(det.port);
    const received: Buffer[] = [];
    client.on('data', (c: Buffer) => received.push(c));
    await waitFor('the banner', () => Buffer.concat(received).includes('\r\n'));
    client.end('EHLO client.example\r\n');
    await new Promise((resolve) => client.once('end', resolve));

    expect(Buffer.concat(received).toString()).toBe(
      '220 mail.example ESMTP ready\r\nEHLO client.example\r\n',
    );
    expect(det.results.map((r) => r.detected)).toEqual([
      { kind: 'opaque', why: 'no_bytes_in_window' },
    ]);
    expect(det.results[0]?.bytesRead).toBe(0);
  });

  it('bytes still ambiguous when the window ends are opaque, and all delivered', async () => {
    const det = await detector({ protocol: 'auto', windowMs: SHORT_WINDOW }, relayTo(echo.port));
    const client = await connectClient(det.port);
    const echoed = readAll(client);
    await writeApart(client, () => det.sockets[0], [latin1('GET /slo')]);
    await waitFor('the window to end', () => det.results.length === 1);
    client.end('w HTTP/1.1\r\n\r\n');

    expect((await echoed).toString()).toBe('GET /slow HTTP/1.1\r\n\r\nbye');
    expect(det.results[0]?.detected).toEqual({ kind: 'opaque', why: 'undecided_in_window' });
  });

  it('a client that half-closes before its bytes decide is opaque; bytes and FIN go on', async () => {
    const det = await detector({ protocol: 'auto', windowMs: LONG_WINDOW }, relayTo(echo.port));
    const client = await connectClient(det.port);
    const echoed = readAll(client);
    client.end('GET /x');

    expect((await echoed).toString()).toBe('GET /xbye');
    expect(det.results[0]?.detected).toEqual({ kind: 'opaque', why: 'client_ended' });
  });

  it('a connection reset during detection resolves opaque, with nothing left listening', async () => {
    const det = await detector({ protocol: 'auto', windowMs: LONG_WINDOW }, () => {});
    const client = await connectClient(det.port);
    await writeApart(client, () => det.sockets[0], [latin1('GE')]);
    client.resetAndDestroy();
    await waitFor('detection to resolve', () => det.results.length === 1);

    expect(det.results[0]?.detected).toEqual({ kind: 'opaque', why: 'client_closed' });
    expect(det.results[0]?.listenersAfter).toEqual(det.results[0]?.listenersBefore);
  });
});

describe('ports with a declared protocol', () => {
  it.each<[DetectOptions['protocol'], Detected]>([
    ['tcp', { kind: 'opaque', why: 'declared_tcp' }],
    ['http2', { kind: 'http2' }],
    ['grpc', { kind: 'http2' }],
  ])('%s decides at once, reading nothing: %o', async (protocol, expected) => {
    const det = await detector({ protocol, windowMs: LONG_WINDOW }, relayTo(echo.port));
    const client = await connectClient(det.port);
    const echoed = readAll(client);
    client.write('GET / HTTP/1.1\r\n'); // not what the port says: read by the next stage only
    await waitFor('detection to resolve', () => det.results.length === 1);
    client.end();

    expect((await echoed).toString()).toBe('GET / HTTP/1.1\r\nbye');
    expect(det.results[0]).toMatchObject({ detected: expected, bytesRead: 0, paused: true });
  });

  it('http waits for the client however long it takes (no window)', async () => {
    const http = await detector({ protocol: 'http', windowMs: SHORT_WINDOW }, relayTo(echo.port));
    const auto = await detector({ protocol: 'auto', windowMs: SHORT_WINDOW }, () => {});
    const slow = await connectClient(http.port);
    await waitFor('the http port to accept', () => http.sockets.length === 1);
    // Sentinel: a window that started later has ended.
    await connectClient(auto.port);
    await waitFor('the auto window to end', () => auto.results.length === 1);
    expect(http.results).toEqual([]);

    const echoed = readAll(slow);
    slow.end('GET / HTTP/1.1\r\n\r\n');
    expect((await echoed).toString()).toBe('GET / HTTP/1.1\r\n\r\nbye');
    expect(http.results[0]?.detected).toEqual({ kind: 'http1' });
  });
});

/**
 * Hands a detected socket to a Node HTTP server, as the HTTP stack does. The socket is paused;
 * both servers read its handle directly once they own it, and start reading only when the
 * socket is resumed (the bytes put back are taken from the stream's buffer first: http2 drains
 * it when its session starts, HTTP/1 when the stream flows).
 */
function handTo(server: { emit(event: 'connection', socket: Socket): boolean }) {
  return (socket: Socket) => {
    server.emit('connection', socket);
    socket.resume();
  };
}

describe('the server that takes the socket next reads it from its first byte', () => {
  it.each<DetectOptions['protocol']>(['auto', 'http'])(
    'HTTP/1.1 on %s: an http.Server handed the socket answers both requests',
    async (protocol) => {
      const h1 = h1CreateServer((req, res) => res.end(`h1 ${req.method} ${req.url}`));
      const det = await detector({ protocol, windowMs: LONG_WINDOW }, handTo(h1));
      const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
      cleanups.push(() => keepAlive.destroy());
      const get = (path: string) =>
        new Promise<string>((resolve, reject) => {
          const req = h1Request({ port: det.port, host: '127.0.0.1', path, agent: keepAlive });
          req.on('response', (res) => readAll(res as never).then((b) => resolve(b.toString())));
          req.on('error', reject);
          req.end();
        });

      expect(await get('/one')).toBe('h1 GET /one');
      expect(await get('/two')).toBe('h1 GET /two');
      expect(det.results.map((r) => r.detected)).toEqual([{ kind: 'http1' }]);
    },
  );

  it.each<DetectOptions['protocol']>(['auto', 'http', 'http2', 'grpc'])(
    'HTTP/2 with prior knowledge on %s: an http2 server handed the socket answers',
    async (protocol) => {
      const h2 = h2CreateServer();
      h2.on('stream', (stream, headers) => {
        stream.respond({ ':status': 200 });
        stream.end(`h2 ${headers[':path']}`);
      });
      const det = await detector({ protocol, windowMs: LONG_WINDOW }, handTo(h2));
      const session = h2connect(`http://127.0.0.1:${det.port}`);
      cleanups.push(() => session.destroy());
      const get = (path: string) =>
        new Promise<string>((resolve, reject) => {
          const req = session.request({ ':path': path });
          readAll(req).then((b) => resolve(b.toString()), reject);
          req.end();
        });

      expect(await Promise.all([get('/a'), get('/b')])).toEqual(['h2 /a', 'h2 /b']);
      expect(det.results.map((r) => r.detected)).toEqual([{ kind: 'http2' }]);
    },
  );

  it('TLS from tls.connect({ servername }) is tls with its SNI, and the handshake completes', async () => {
    const ca = await createTestCa();
    const leaf = await issueLeaf(ca, 'spiffe://weft.local/svc/db');
    const accepted: Socket[] = [];
    const tlsEcho = tlsCreateServer({ cert: leaf.certPem, key: leaf.keyPem }, (socket) =>
      socket.pipe(socket),
    );
    tlsEcho.on('connection', (socket: Socket) => accepted.push(socket));
    await new Promise<void>((resolve) => tlsEcho.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => closeServer(tlsEcho, accepted));
    const det = await detector(
      { protocol: 'auto', windowMs: LONG_WINDOW },
      relayTo((tlsEcho.address() as { port: number }).port),
    );
    const client = tlsConnect({
      port: det.port,
      host: '127.0.0.1',
      servername: 'db.example',
      ca: ca.certPem,
      checkServerIdentity: () => undefined, // the leaf names a SPIFFE ID, not db.example
    });
    cleanups.push(() => client.destroy());
    await new Promise((resolve, reject) => {
      client.once('secureConnect', resolve);
      client.once('error', reject);
    });
    client.write('select 1');
    const [reply] = (await new Promise((resolve) => client.once('data', (d) => resolve([d])))) as [
      Buffer,
    ];

    expect(reply.toString()).toBe('select 1');
    expect(det.results.map((r) => r.detected)).toEqual([{ kind: 'tls', sni: 'db.example' }]);
  });
});
