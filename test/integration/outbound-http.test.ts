// The outbound HTTP stack on loopback, through the whole outbound handler: requests on one
// HTTP/1.1 keep-alive connection (and on one h2c connection) are balanced per request over two
// hosts' endpoints through the real tunnel, as HTTP/2 streams with the wire contract; trailers
// survive; same-host calls go through the inbound stack; the agent's own answers; malformed
// input and smuggling attempts are answered 400 (or GOAWAY) with nothing forwarded; an Upgrade
// continues as opaque bytes.
import { Agent, request as httpRequest } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectLocal } from '../../src/proxy/tunnel/index.js';
import { waitFor } from '../helpers/wait.js';
import {
  arrivals,
  bigResponse,
  EMPTY_VIP,
  FLAKY_VIP,
  GONE_VIP,
  H2_VIP,
  LOCAL_VIP,
  type OutboundLab,
  outboundLab,
  resets,
  type Seen,
  WEB_VIP,
} from './outbound-http-fixture.js';
import { listenTarget, meshPki, type Target } from './tunnel-fixture.js';

let lab: OutboundLab;
let web: number;
let ws: Target;

beforeAll(async () => {
  // The endpoint behind an Upgrade: answers 101 to the replayed head, then echoes in capitals.
  ws = await listenTarget((socket) => {
    let head = '';
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      const upgrade = /\r\nupgrade: ([^\r]+)/i.exec(head)?.[1] ?? 'none';
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nupgrade: ${upgrade}\r\nconnection: upgrade\r\n\r\n`,
      );
      const rest = head.slice(end + 4);
      if (rest) socket.write(rest.toUpperCase());
      socket.on('data', (c: Buffer) => socket.write(c.toString('latin1').toUpperCase()));
    };
    // A client's FIN ends the conversation: the connection closes cleanly both ways.
    socket.on('end', () => socket.end());
    socket.on('data', onData);
    socket.on('error', () => {});
  });
  lab = await outboundLab(await meshPki(), {
    connect: (_target, o) => connectLocal({ address: '127.0.0.1', port: ws.port }, o),
  });
  web = await lab.capture(WEB_VIP, 80);
});

afterAll(async () => {
  await lab?.close();
  await ws?.close();
});

function get(
  port: number,
  path: string,
  opts: { agent?: Agent; headers?: Record<string, string>; body?: string; method?: string } = {},
): Promise<{
  status: number;
  headers: Record<string, unknown>;
  body: string;
  trailers: Record<string, string>;
  socketPort: number;
}> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        method: opts.method ?? (opts.body ? 'POST' : 'GET'),
        agent: opts.agent,
        headers: { host: 'web.mesh', ...opts.headers },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            trailers: res.trailers as Record<string, string>,
            socketPort: req.socket?.localPort ?? 0,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

function seenFor(path: string): Seen[] {
  return lab.seen.filter((s) => s.path === path);
}

describe('HTTP/1.1 from an app', () => {
  it('balances the requests of one keep-alive connection over both hosts, as the contract says', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const ports = new Set<number>();
    for (let i = 0; i < 12; i++) {
      const r = await get(web, `/ka/${i}`, {
        agent,
        headers: {
          'x-hop': 'drop-me',
          connection: 'keep-alive, x-hop',
          'weft-target': '10.9.9.9:1',
        },
      });
      expect(r.status).toBe(200);
      ports.add(r.socketPort);
    }
    agent.destroy();
    expect(ports.size).toBe(1);
    const seen = lab.seen.filter((s) => s.path.startsWith('/ka/'));
    expect(seen).toHaveLength(12);
    expect(new Set(seen.map((s) => s.node))).toEqual(new Set(['node-b', 'node-c']));
    for (const s of seen) {
      expect(s.target).toBe(s.node === 'node-b' ? '127.0.0.1:8080' : '127.0.0.2:8080');
      expect(s).toMatchObject({
        origProto: 'HTTP/1.1',
        method: 'GET',
        authority: 'web.mesh',
        stray: [],
      });
      // The app called from loopback: no address a peer would accept, so none is sent.
      expect(s.client).toBeNull();
    }
  });

  it('answers a client that half-closes after its request', async () => {
    const got = await new Promise<string>((resolve) => {
      const s = netConnect(web, '127.0.0.1', () =>
        s.end('GET /half HTTP/1.1\r\nHost: web.mesh\r\n\r\n'),
      );
      let text = '';
      s.on('data', (c: Buffer) => {
        text += c.toString('latin1');
      });
      s.on('close', () => resolve(text));
    });
    expect(got).toMatch(/^HTTP\/1\.1 200 /);
    expect(seenFor('/half')).toHaveLength(1);
  });

  it('streams a request body and relays the response', async () => {
    const body = 'x'.repeat(200_000);
    const r = await get(web, '/post', { body });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).body).toBe(body);
  });

  it('keeps trailers for a client that accepts them', async () => {
    const r = await get(web, '/trailers', { headers: { te: 'trailers', 'x-want-trailers': '1' } });
    expect(r.status).toBe(200);
    expect(r.trailers).toMatchObject({ 'x-checksum': 'abc', 'grpc-status': '0' });
  });

  it('counts each request once, with status, endpoint and identities, and the connection once', async () => {
    const r = await get(web, '/counted');
    expect(r.status).toBe(200);
    const line = await waitFor('the request log line', () =>
      lab.logs.find((l) => l.msg === 'request' && l.path === '/counted'),
    );
    expect(line).toMatchObject({
      direction: 'outbound',
      src_service: 'frontend',
      dst_service: 'web',
      route: 'default',
      method: 'GET',
      protocol: 'HTTP/1.1',
      status: 200,
      endpoint: expect.stringMatching(/^tunnel node-[bc] -> 127\.0\.0\.[12]:8080$/),
      src_identity: 'spiffe://weft.local/svc/frontend',
    });
    expect(line.response_bytes).toBe(Buffer.byteLength(r.body));
    const metrics = await lab.registry.getSingleMetricAsString('weft_http_requests_total');
    expect(metrics).toMatch(
      /direction="outbound",src_service="frontend",dst_service="web",route="default",status_code="200",grpc_status=""} \d+/,
    );
    await waitFor('the connection log line', () =>
      lab.logs.find(
        (l) => l.msg === 'connection' && l.dst_service === 'web' && l.close_reason === 'done',
      ),
    );
  });
});

describe('HTTP/2 (h2c, prior knowledge) from an app', () => {
  it('on a port declared grpc (nothing read before the h2c server takes it)', async () => {
    const port = await lab.capture(H2_VIP, 80);
    const session = h2connect(`http://127.0.0.1:${port}`);
    const s = session.request({ ':path': '/declared', ':authority': 'h2.mesh' });
    const headers = await new Promise<Record<string, unknown>>((resolve) =>
      s.once('response', resolve),
    );
    s.resume();
    await new Promise((resolve) => s.once('end', resolve));
    session.close();
    expect(headers[':status']).toBe(200);
    expect(seenFor('/declared')).toMatchObject([{ node: 'node-b', origProto: null }]);
  });

  it('balances the streams of one connection over both hosts and keeps trailers', async () => {
    const session = h2connect(`http://127.0.0.1:${web}`);
    const one = (path: string) =>
      new Promise<{
        headers: Record<string, unknown>;
        body: string;
        trailers: Record<string, unknown>;
      }>((resolve, reject) => {
        const s = session.request({
          ':path': path,
          ':authority': 'web.mesh',
          'x-want-trailers': '1',
          te: 'trailers',
        });
        let headers: Record<string, unknown> = {};
        let trailers: Record<string, unknown> = {};
        let body = '';
        s.on('response', (h) => (headers = h));
        s.on('trailers', (t) => (trailers = t));
        s.setEncoding('utf8');
        s.on('data', (c) => (body += c));
        s.on('end', () => resolve({ headers, body, trailers }));
        s.on('error', reject);
        s.end();
      });
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => one(`/h2/${i}`)));
    session.close();
    for (const r of results) {
      expect(r.headers[':status']).toBe(200);
      expect(r.trailers).toMatchObject({ 'x-checksum': 'abc', 'grpc-status': '0' });
    }
    const seen = lab.seen.filter((s) => s.path.startsWith('/h2/'));
    expect(new Set(seen.map((s) => s.node))).toEqual(new Set(['node-b', 'node-c']));
    for (const s of seen)
      expect(s).toMatchObject({ origProto: null, authority: 'web.mesh', stray: [] });
    const line = await waitFor('a request log line with the gRPC status', () =>
      lab.logs.find((l) => l.msg === 'request' && l.path === '/h2/0'),
    );
    expect(line).toMatchObject({ protocol: 'HTTP/2', status: 200, grpc_status: 0 });
  });
});

describe('failures where nothing reached the peer', () => {
  it('move the request to another endpoint, and the unreachable one is ejected', async () => {
    const flaky = await lab.capture(FLAKY_VIP, 80);
    const ejected = () =>
      lab.logs.find((l) => l.msg === 'endpoint ejected' && l.endpoint === 'node-d-flaky-8080');
    // Until outlier detection's 5 consecutive failures (the schema's default) eject node-d.
    for (let i = 0; i < 60 && !ejected(); i++) {
      const r = await get(flaky, `/flaky/${i}`);
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body).node).toBe('node-b');
    }
    await waitFor('node-d ejected', ejected);
  });
});

describe("a peer's agent that could not reach its app (weft-undelivered)", () => {
  it('a request with a body gets the 502 (its body went out once); a bodiless one goes to another endpoint', async () => {
    // A body was streamed to the first endpoint already: it is never sent twice. Until the
    // first pick of node-b (p2c: about one request in two), every answer is node-c's.
    let status = 200;
    for (let i = 0; i < 20 && status === 200; i++) {
      const r = await get(web, `/app-down/body-${i}`, { body: 'once' });
      status = r.status;
      if (status === 200) expect(JSON.parse(r.body).node).toBe('node-c');
    }
    expect(status).toBe(502);
    // Without the retry, about half of these would be node-b's 502.
    for (let i = 0; i < 8; i++) {
      const r = await get(web, `/app-down/${i}`);
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body).node).toBe('node-c');
    }
  });
});

describe('failures once the request reached the peer', () => {
  it('a stream reset before the answer is a 502, tried once', async () => {
    const path = `/reset-before/${Math.random()}`;
    const r = await get(web, path, { body: 'once' });
    expect(r.status).toBe(502);
    expect(r.headers['weft-reason']).toBe('upstream_failed');
    expect(seenFor(path)).toHaveLength(1);
  });

  it('a reset halfway through the body cuts the app connection, never passing as complete', async () => {
    const path = `/reset-after/${Math.random()}`;
    const outcome = await new Promise<string>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port: web, path }, (res) => {
        res.on('data', () => {});
        res.on('end', () => resolve(res.complete ? 'complete' : 'incomplete'));
        res.on('error', () => resolve('aborted'));
        res.on('aborted', () => resolve('aborted'));
      });
      req.on('error', () => resolve('error'));
      req.end();
    });
    expect(outcome).not.toBe('complete');
    const line = await waitFor('its request log line', () =>
      lab.logs.find((l) => l.msg === 'request' && l.path === path),
    );
    expect(line).toMatchObject({ status: 200, error: expect.any(String) });
  });
});

describe('an app that goes away', () => {
  it('mid-upload: the upstream stream is reset, never ended as if the body were whole', async () => {
    const path = `/cut/${Math.random()}`;
    const s = netConnect(web, '127.0.0.1', () =>
      s.write(`POST ${path} HTTP/1.1\r\nHost: web.mesh\r\nContent-Length: 1000\r\n\r\n0123456789`),
    );
    s.on('error', () => {});
    // The head went through (the stream is open at the backend), then the app is gone.
    await waitFor('the request to be open upstream', () => arrivals.includes(path));
    s.destroy();
    await waitFor('the backend to see the reset', () => resets.includes(path));
    expect(seenFor(path)).toEqual([]);
  });
});

describe('back pressure', () => {
  it('a client that stops reading pauses the upstream; it gets every byte when it reads again', async () => {
    const mib = 256;
    const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: web, path: `/big/${mib}` }, resolve);
      req.on('error', reject);
      req.end();
    });
    res.pause();
    // The backend fills what the windows and buffers between hold, then waits for room.
    await waitFor(
      'the backend to wait for room',
      () => bigResponse.waiting && bigResponse.written > 0,
    );
    const heldMiB = bigResponse.written / 2 ** 20;
    expect(bigResponse.done).toBe(false);
    expect(heldMiB).toBeLessThan(64);
    let bytes = 0;
    res.on('data', (c: Buffer) => {
      bytes += c.length;
    });
    res.resume();
    await new Promise((resolve) => res.once('end', resolve));
    expect(bytes).toBe(mib * 2 ** 20);
  });
});

describe('answers the agent makes itself', () => {
  it('CONNECT inside an HTTP/2 stream is refused with 501', async () => {
    const session = h2connect(`http://127.0.0.1:${web}`);
    const s = session.request({ ':method': 'CONNECT', ':authority': 'elsewhere:443' });
    const headers = await new Promise<Record<string, unknown>>((resolve) =>
      s.once('response', resolve),
    );
    session.destroy();
    expect(headers).toMatchObject({ ':status': 501, 'weft-reason': 'unsupported' });
  });

  it('503 says what failed once: "weft: " and the error, its code not repeated', async () => {
    const gone = await lab.capture(GONE_VIP, 80);
    const r = await get(gone, '/');
    expect(r.status).toBe(503);
    expect(r.headers['weft-reason']).toBe('no_healthy_endpoint');
    expect(r.body).toMatch(/^weft: WEFT_E_UNAVAILABLE: tunnel .*\n$/);
    expect(r.body.match(/WEFT_E_/g)).toHaveLength(1);
  });

  it('503 with a reason when the service has no endpoint; gRPC gets UNAVAILABLE trailers-only', async () => {
    const empty = await lab.capture(EMPTY_VIP, 80);
    const r = await get(empty, '/');
    expect(r.status).toBe(503);
    expect(r.headers['weft-reason']).toBe('no_healthy_endpoint');

    const session = h2connect(`http://127.0.0.1:${empty}`);
    const s = session.request({
      ':path': '/pkg.Svc/Call',
      ':method': 'POST',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    const headers = await new Promise<Record<string, unknown>>((resolve) =>
      s.once('response', resolve),
    );
    const endStream = await new Promise<boolean>((resolve) =>
      s.once('end', () => resolve(true)).resume(),
    );
    session.close();
    expect(headers).toMatchObject({
      ':status': 200,
      'content-type': 'application/grpc',
      'grpc-status': '14',
    });
    expect(endStream).toBe(true);
  });
});

describe('same host', () => {
  it('goes through the inbound stack, as the calling workload', async () => {
    const local = await lab.capture(LOCAL_VIP, 80);
    const r = await get(local, '/here', { body: 'hello' });
    expect(r).toMatchObject({ status: 201, body: 'local answer' });
    expect(r.headers['x-local']).toBe('yes');
    const call = lab.inboundCalls.at(-1)!;
    expect(call.peer.spiffeId).toBe('spiffe://weft.local/svc/frontend');
    expect(call.target).toEqual({ address: '127.0.0.1', port: 9090 });
    expect(call.request).toMatchObject({ method: 'POST', path: '/here', version: '1.1' });
  });
});

/** Sends raw bytes on a new connection; resolves with all it got back once it is closed. */
function raw(port: number, data: Buffer | string): Promise<Buffer> {
  return new Promise((resolve) => {
    const s = netConnect(port, '127.0.0.1', () => s.write(data));
    const chunks: Buffer[] = [];
    s.on('data', (c) => chunks.push(c));
    s.on('error', () => {});
    s.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

describe('bad input is refused and never forwarded', () => {
  it.each([
    ['a malformed request line', 'GET /a b c HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['headers over 64 KiB', `GET /big HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`],
    [
      'Content-Length with Transfer-Encoding',
      'POST /smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /inner HTTP/1.1\r\nHost: x\r\n\r\n',
    ],
    [
      'two different Content-Lengths',
      'POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabcGET /inner HTTP/1.1\r\nHost: x\r\n\r\n',
    ],
  ])('%s: 400, connection closed', async (_what, data) => {
    const before = lab.seen.length;
    const got = (await raw(web, data)).toString('latin1');
    expect(got).toMatch(/^HTTP\/1\.1 400 /);
    expect(got).not.toMatch(/HTTP\/1\.1 200/);
    // Sentinel: a good request made after it arrives, and it is the only one that did.
    const sentinel = `/sentinel-${Math.random()}`;
    expect((await get(web, sentinel)).status).toBe(200);
    expect(lab.seen.slice(before).map((s) => s.path)).toEqual([sentinel]);
  });

  it.each([
    // A DATA frame on stream 0 is a connection error (RFC 9113 section 6.1).
    ['DATA on stream 0', [0, 0, 1, 0, 0, 0, 0, 0, 0, 0x61]],
    // HEADERS on an even (server-initiated) stream id (RFC 9113 section 5.1.1).
    ['HEADERS on an even stream', [0, 0, 1, 1, 5, 0, 0, 0, 2, 0x82]],
    // A header block HPACK cannot decode (RFC 7541 section 2.3.3).
    ['an undecodable header block', [0, 0, 3, 1, 5, 0, 0, 0, 1, 0xff, 0xff, 0xff]],
  ])('invalid HTTP/2 frames (%s): GOAWAY, nothing forwarded', async (_what, frame) => {
    const before = lab.seen.length;
    const settings = [0, 0, 0, 4, 0, 0, 0, 0, 0];
    const s = netConnect(web, '127.0.0.1');
    s.write(
      Buffer.concat([
        Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
        Buffer.from([...settings, ...frame]),
      ]),
    );
    let got = Buffer.alloc(0);
    s.on('data', (c: Buffer) => {
      got = Buffer.concat([got, c]);
    });
    s.on('error', () => {});
    await waitFor('a GOAWAY', () => frameTypes(got).includes(7));
    s.destroy();
    const sentinel = `/sentinel-${Math.random()}`;
    expect((await get(web, sentinel)).status).toBe(200);
    expect(lab.seen.slice(before).map((x) => x.path)).toEqual([sentinel]);
  });
});

describe('an HTTP/2 header list over 64 KiB', () => {
  it('is refused (the stream reset), nothing forwarded', async () => {
    const before = lab.seen.length;
    const session = h2connect(`http://127.0.0.1:${web}`);
    const s = session.request({ ':path': '/big-head', 'x-big': 'a'.repeat(70_000) });
    const outcome = await new Promise<string>((resolve) => {
      s.once('response', () => resolve('answered'));
      s.once('error', () => resolve('reset'));
    });
    session.destroy();
    expect(outcome).toBe('reset');
    const sentinel = `/sentinel-${Math.random()}`;
    expect((await get(web, sentinel)).status).toBe(200);
    expect(lab.seen.slice(before).map((x) => x.path)).toEqual([sentinel]);
    expect(arrivals).not.toContain('/big-head');
  });
});

/** The types of the HTTP/2 frames in a server's bytes. */
function frameTypes(buf: Buffer): number[] {
  const types: number[] = [];
  for (let i = 0; i + 9 <= buf.length; ) {
    const len = buf.readUIntBE(i, 3);
    types.push(buf[i + 3]!);
    i += 9 + len;
  }
  return types;
}

describe('Upgrade from an app', () => {
  it('continues as opaque bytes through the tunnel, head replayed', async () => {
    const s = netConnect(web, '127.0.0.1');
    s.write(
      'GET /chat HTTP/1.1\r\nHost: web.mesh\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nhello',
    );
    let got = '';
    s.on('data', (c) => (got += c.toString('latin1')));
    await waitFor('the 101 and the first echo', () => got.includes('HELLO'));
    expect(got).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\nupgrade: websocket/);
    s.write('more');
    await waitFor('the second echo', () => got.endsWith('MORE'));
    // The Upgrade is a request record with the endpoint's status, the bytes after it the
    // connection's, closed "upgraded".
    const line = await waitFor('the upgrade request line', () =>
      lab.logs.find((l) => l.msg === 'request' && l.path === '/chat'),
    );
    expect(line).toMatchObject({
      direction: 'outbound',
      src_service: 'frontend',
      dst_service: 'web',
      method: 'GET',
      authority: 'web.mesh',
      protocol: 'HTTP/1.1',
      status: 101,
      close_reason: 'done',
      endpoint: expect.stringMatching(/^tunnel node-[bc] -> /),
    });
    const port = s.localPort;
    s.end();
    const conn = await waitFor('the connection line', () =>
      lab.logs.find((l) => l.msg === 'connection' && l.src === `127.0.0.1:${port}`),
    );
    expect(conn).toMatchObject({ dst_service: 'web', close_reason: 'upgraded' });
    const total = await lab.registry.getSingleMetricAsString('weft_http_requests_total');
    expect(total).toMatch(/dst_service="web",route="default",status_code="101",grpc_status=""} 1/);
  });

  it('refused (no endpoint): the agent answers 503 and records the request', async () => {
    const empty = await lab.capture(EMPTY_VIP, 80);
    const got = (
      await raw(
        empty,
        'GET /chat-nowhere HTTP/1.1\r\nHost: empty.mesh\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
      )
    ).toString('latin1');
    expect(got).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(got).toMatch(/\r\nweft-reason: no_healthy_endpoint\r\n/);
    expect(got).toMatch(/\r\n\r\nweft: .+\n$/);
    const line = await waitFor('the refused upgrade request line', () =>
      lab.logs.find((l) => l.msg === 'request' && l.path === '/chat-nowhere'),
    );
    expect(line).toMatchObject({
      dst_service: 'empty',
      status: 503,
      close_reason: 'no_healthy_endpoint',
    });
  });
});
