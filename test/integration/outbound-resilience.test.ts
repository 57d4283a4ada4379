// TrafficPolicy timeouts and retries on the outbound HTTP path, on loopback through the real
// tunnel: a flapping endpoint gives the client no error, a failing service sees at most
// 1 + budget times its requests, bodies over 64 KiB and responses already begun are never
// retried, per-try and request timeouts fire at their values, a gRPC client's deadline is
// honoured (without any policy too) and reaches the server reduced by the time spent.

import { Agent, request as httpRequest } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseGrpcTimeout } from '../../src/proxy/resilience/deadline.js';
import { sumSeries } from '../helpers/metrics-text.js';
import { waitFor } from '../helpers/wait.js';
import { type ResilienceLab, resilienceLab } from './outbound-resilience-fixture.js';
import { meshPki } from './tunnel-fixture.js';

/**
 * Timers fire on a shared, loaded 2-core machine: a timeout must never fire before its value,
 * and is allowed this much after it (scheduling, TLS and the tunnel between).
 */
const LATE_TOLERANCE_MS = 1_500;

// Backoffs of 1-5 ms keep the tests quick; the budget is not what these services test.
const FAST = { backoff: { base: '1ms', max: '5ms' }, budget: { percent: 100, minPerSecond: 100 } };

let lab: ResilienceLab;
beforeAll(async () => {
  lab = await resilienceLab(await meshPki(), [
    {
      name: 'retry',
      vip: '240.240.1.1',
      policy: {
        retries: { attempts: 2, on: ['5xx', 'reset'], retriableGrpcStatusCodes: [14], ...FAST },
      },
    },
    {
      name: 'down',
      vip: '240.240.1.2',
      policy: {
        retries: {
          attempts: 3,
          on: ['5xx'],
          backoff: { base: '1ms', max: '2ms' },
          budget: { percent: 20, minPerSecond: 0 },
        },
      },
    },
    {
      name: 'pertry',
      vip: '240.240.1.3',
      policy: {
        timeouts: { request: '10s' },
        retries: { attempts: 1, perTryTimeout: '300ms', on: ['reset'], ...FAST },
      },
    },
    { name: 'deadline', vip: '240.240.1.4', policy: { timeouts: { request: '400ms' } } },
    { name: 'idle', vip: '240.240.1.5', policy: { timeouts: { idle: '300ms' } } },
    { name: 'plain', vip: '240.240.1.6' },
    {
      name: 'maxretries',
      vip: '240.240.1.10',
      policy: {
        retries: { attempts: 1, on: ['5xx'], ...FAST },
        circuitBreaker: { maxRetries: 1 },
      },
    },
    // A policy must never take away the failover of a request that reached no app.
    {
      name: 'onreset',
      vip: '240.240.1.11',
      policy: { retries: { attempts: 1, on: ['reset'], ...FAST } },
    },
    {
      name: 'noretries',
      vip: '240.240.1.12',
      policy: { retries: { attempts: 1, on: ['5xx'], ...FAST }, circuitBreaker: { maxRetries: 0 } },
    },
    {
      name: 'hang',
      vip: '240.240.1.7',
      nodes: ['node-e', 'node-b'],
      policy: { timeouts: { connect: '300ms' } },
    },
    {
      name: 'tcphang',
      vip: '240.240.1.8',
      protocol: 'tcp',
      nodes: ['node-e', 'node-b'],
      policy: { timeouts: { connect: '300ms' } },
    },
    {
      name: 'tcpidle',
      vip: '240.240.1.9',
      protocol: 'tcp',
      policy: { timeouts: { idle: '300ms' } },
    },
  ]);
});

afterAll(async () => {
  await lab?.close();
});

interface Got {
  status: number;
  headers: Record<string, unknown>;
  body: string;
  /** Whether the body arrived whole (false: the connection was cut mid-body). */
  complete: boolean;
  ms: number;
}

function call(
  port: number,
  path: string,
  opts: { agent?: Agent; method?: string; body?: Buffer | string } = {},
): Promise<Got> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        method: opts.method ?? 'GET',
        agent: opts.agent,
        headers: { host: 'svc.mesh' },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        const done = () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            complete: res.complete,
            ms: performance.now() - started,
          });
        res.on('end', done);
        res.on('error', done);
        res.on('aborted', done);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

type Reply = { node: string; grpcTimeout: string };
type UnaryCall = (
  request: unknown,
  options: { deadline: number },
  done: (err: Error | null, reply: Reply) => void,
) => void;

const triesOf = (prefix: string) => lab.tries.filter((t) => t.path.startsWith(prefix));

/** The sum of a metric's series that carry these labels, as a scrape would show it. */
async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const text = await lab.registry.metrics();
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  return sumSeries(
    text
      .split('\n')
      .filter((l) => l.startsWith(`${name}{`) && wanted.every((w) => l.includes(w)))
      .join('\n'),
    /./,
  );
}

describe('retries', () => {
  it('turn a flapping endpoint (503, reset, ...) into no error for GETs, on the other endpoint', async () => {
    const port = await lab.port('retry');
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 40; i++) {
      const r = await call(port, `/flap/${i}`, { agent });
      expect(r.status, r.body).toBe(200);
      expect(JSON.parse(r.body).node).toBe('node-c');
    }
    agent.destroy();
    const onB = triesOf('/flap/').filter((t) => t.node === 'node-b');
    // The flapping endpoint was tried (p2c sends it about half of the first tries) and failed
    // both ways; every such try was followed by one on node-c.
    expect(onB.length).toBeGreaterThan(4);
    expect(triesOf('/flap/').length).toBe(40 + onB.length);
    expect(
      await metric('weft_http_retries_total', { dst_service: 'retry', reason: 'http_status' }),
    ).toBeGreaterThan(0);
    expect(
      await metric('weft_http_retries_total', {
        dst_service: 'retry',
        route: 'default',
        reason: 'reset',
      }),
    ).toBeGreaterThan(0);
  });

  it('with every endpoint failing, the tries stay within 1 + budget of the requests', async () => {
    const port = await lab.port('down');
    const requests = 50;
    for (let i = 0; i < requests; i++) {
      const r = await call(port, `/fail/${i}`);
      // The client gets the app's own answer once retries are spent or denied.
      expect(r.status).toBe(503);
    }
    const tries = triesOf('/fail/').filter((t) => t.path.match(/^\/fail\/\d+$/)).length;
    // Budget: 20 % of the requests, no floor. attempts: 3 would allow 4 tries per request.
    expect(tries).toBeGreaterThan(requests);
    expect(tries).toBeLessThanOrEqual(requests * 1.2);
    expect(
      await metric('weft_http_retries_denied_total', { dst_service: 'down', reason: 'budget' }),
    ).toBeGreaterThan(0);
  });

  it('a POST with a small body is retried with its whole body; one over 64 KiB is not', async () => {
    const port = await lab.port('retry');
    const small = Buffer.alloc(1_000, 0x61);
    const r1 = await call(port, '/fail/post-small', { method: 'POST', body: small });
    expect(r1.status).toBe(503);
    const smallTries = triesOf('/fail/post-small');
    expect(smallTries.map((t) => t.bodyBytes)).toEqual([1_000, 1_000, 1_000]);

    const big = Buffer.alloc(100 * 1024, 0x62);
    const r2 = await call(port, '/fail/post-big', { method: 'POST', body: big });
    expect(r2.status).toBe(503);
    expect(triesOf('/fail/post-big').map((t) => t.bodyBytes)).toEqual([big.length]);
  });

  it('circuitBreaker.maxRetries: at most that many requests are being retried at once', async () => {
    const port = await lab.port('maxretries');
    // Six requests fail together after 300 ms; only one of them may be retried meanwhile.
    const got = await Promise.all(
      Array.from({ length: 6 }, (_, i) => call(port, `/slowfail/300/max-${i}`)),
    );
    expect(got.map((r) => r.status)).toEqual(Array(6).fill(503));
    expect(triesOf('/slowfail/300/max-')).toHaveLength(7);
    expect(
      await metric('weft_http_retries_denied_total', {
        dst_service: 'maxretries',
        reason: 'max_retries',
      }),
    ).toBe(5);
  });

  it.each([
    ['whose `on` does not list connect-failure', 'onreset'],
    ['whose circuitBreaker.maxRetries allows no retry', 'noretries'],
  ])(
    'a policy %s still moves a request that reached no app to another endpoint',
    async (_n, svc) => {
      const port = await lab.port(svc);
      const prefix = `/app-down/${svc}-`;
      for (let i = 0; i < 20; i++) {
        const r = await call(port, `${prefix}${i}`);
        expect(r.status, r.body).toBe(200);
        expect(JSON.parse(r.body).node).toBe('node-c');
      }
      // node-b was tried (p2c gives it about half of the first tries, until it is ejected), and
      // each of its undelivered answers was followed by a try on node-c.
      const onB = triesOf(prefix).filter((t) => t.node === 'node-b');
      expect(onB.length).toBeGreaterThan(0);
      expect(triesOf(prefix)).toHaveLength(20 + onB.length);
      expect(
        await metric('weft_http_retries_total', { dst_service: svc, reason: 'connect_failure' }),
      ).toBe(onB.length);
      expect(await metric('weft_http_retries_denied_total', { dst_service: svc })).toBe(0);
    },
  );

  it('a request whose response began is never retried', async () => {
    const port = await lab.port('retry');
    const r = await call(port, '/reset-after/1');
    expect(r.status).toBe(200);
    expect(r.complete).toBe(false);
    expect(triesOf('/reset-after/1')).toHaveLength(1);
  });
});

describe('timeouts', () => {
  it('a per-try timeout cuts each try at its value, then the retry, then answers 504', async () => {
    const port = await lab.port('pertry');
    const r = await call(port, '/slow/5000/a');
    expect(r.status).toBe(504);
    expect(r.headers['weft-reason']).toBe('per_try_timeout');
    // Two tries of 300 ms each (attempts: 1), and a backoff of at most 5 ms between.
    expect(r.ms).toBeGreaterThanOrEqual(600);
    expect(r.ms).toBeLessThan(600 + 5 + LATE_TOLERANCE_MS);
    const tries = triesOf('/slow/5000/a');
    expect(tries).toHaveLength(2);
    // Each cut try was cancelled upstream, not left running.
    await waitFor('both tries reset at the backend', () => tries.every((t) => t.reset));
    expect(
      await metric('weft_http_timeouts_total', { dst_service: 'pertry', kind: 'per_try_timeout' }),
    ).toBe(2);
  });

  it('a request timeout answers 504 at its value', async () => {
    const port = await lab.port('deadline');
    const r = await call(port, '/slow/5000/b');
    expect(r.status).toBe(504);
    expect(r.headers['weft-reason']).toBe('request_timeout');
    expect(r.ms).toBeGreaterThanOrEqual(400);
    expect(r.ms).toBeLessThan(400 + LATE_TOLERANCE_MS);
    const line = await waitFor('the request log line', () =>
      lab.logs.find((l) => l.msg === 'request' && l.path === '/slow/5000/b'),
    );
    expect(line).toMatchObject({ status: 504, close_reason: 'request_timeout' });
  });

  it('a request timeout also covers the response body: a stalled one is cut at the value', async () => {
    const port = await lab.port('deadline');
    const r = await call(port, '/stall/c');
    expect(r.status).toBe(200);
    expect(r.body).toBe('partial');
    expect(r.complete).toBe(false);
    expect(r.ms).toBeGreaterThanOrEqual(400);
    expect(r.ms).toBeLessThan(400 + LATE_TOLERANCE_MS);
  });

  it('an idle timeout cuts a response that stops moving', async () => {
    const port = await lab.port('idle');
    const r = await call(port, '/stall/d');
    expect(r.complete).toBe(false);
    expect(r.ms).toBeGreaterThanOrEqual(300);
    expect(r.ms).toBeLessThan(300 + LATE_TOLERANCE_MS);
    expect(
      await metric('weft_http_timeouts_total', { dst_service: 'idle', kind: 'idle_timeout' }),
    ).toBe(1);
  });
});

describe('gRPC deadlines', () => {
  it("a client's grpc-timeout is honoured without any policy: DEADLINE_EXCEEDED, trailers-only", async () => {
    const port = await lab.port('plain');
    const session = h2connect(`http://127.0.0.1:${port}`);
    const started = performance.now();
    const s = session.request({
      ':method': 'POST',
      ':path': '/slow/5000/grpc',
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-timeout': '300m',
    });
    s.end();
    const headers = await new Promise<Record<string, unknown>>((resolve) =>
      s.once('response', resolve),
    );
    const ms = performance.now() - started;
    session.close();
    expect(headers).toMatchObject({
      ':status': 200,
      'grpc-status': '4',
      'weft-reason': 'request_timeout',
    });
    expect(ms).toBeGreaterThanOrEqual(300);
    expect(ms).toBeLessThan(300 + LATE_TOLERANCE_MS);
  });

  it('a grpc-js deadline reaches the server reduced by the time already spent (and UNAVAILABLE is retried)', async () => {
    const port = await lab.port('retry');
    lab.failNextGrpc();
    const json = {
      serialize: (o: unknown) => Buffer.from(JSON.stringify(o)),
      deserialize: (b: Buffer) => JSON.parse(b.toString()),
    };
    const Client = grpc.makeGenericClientConstructor(
      {
        unary: {
          path: '/weft.test.Echo/Unary',
          requestStream: false,
          responseStream: false,
          requestSerialize: json.serialize,
          requestDeserialize: json.deserialize,
          responseSerialize: json.serialize,
          responseDeserialize: json.deserialize,
        },
      },
      'Echo',
    );
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const reply = await new Promise<{ node: string; grpcTimeout: string }>((resolve, reject) =>
      (client as unknown as { unary: UnaryCall }).unary(
        { text: 'hi' },
        { deadline: Date.now() + 5_000 },
        (err, r) => (err ? reject(err) : resolve(r)),
      ),
    );
    client.close();
    const tries = triesOf('/weft.test.Echo/Unary');
    expect(tries).toHaveLength(2);
    const [first, second] = tries.map((t) => parseGrpcTimeout(t.grpcTimeout)!);
    expect(first).toBeLessThanOrEqual(5_000);
    // The first try took 300 ms to fail: the second carries at most what was left.
    expect(second).toBeLessThanOrEqual(first! - 300);
    expect(second).toBeGreaterThan(0);
    expect(reply.grpcTimeout).toBe(tries[1]!.grpcTimeout);
    expect(
      await metric('weft_http_retries_total', { dst_service: 'retry', reason: 'grpc_status' }),
    ).toBe(1);
  });
});

/** Connects, sends `text`, and resolves with its echo and how long the echo took. */
function echoOnce(
  port: number,
  text: string,
): Promise<{ socket: Socket; echo: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = netConnect(port, '127.0.0.1', () => socket.write(text));
    let echo = '';
    socket.on('data', (c: Buffer) => {
      echo += c.toString();
      if (echo.length >= text.length) {
        socket.removeAllListeners('data');
        resolve({ socket, echo, ms: performance.now() - started });
      }
    });
    socket.on('error', reject);
  });
}

describe('connect and idle timeouts', () => {
  it('HTTP: an endpoint whose tunnel never answers is given up after the connect timeout', async () => {
    const port = await lab.port('hang');
    // p2c sends about one first try in two to node-e: each such request moves on after 300 ms.
    for (let i = 0; i < 12; i++) {
      const r = await call(port, `/ok/hang-${i}`);
      expect(r.status).toBe(200);
      expect(r.ms).toBeLessThan(300 + LATE_TOLERANCE_MS);
    }
    expect(lab.silentAccepts()).toBeGreaterThan(0);
    expect(
      await metric('weft_http_timeouts_total', { dst_service: 'hang', kind: 'connect_timeout' }),
    ).toBeGreaterThan(0);
  });

  it('opaque TCP: the same, per connection (without it the handshake waits 10 s)', async () => {
    const port = await lab.port('tcphang');
    let slow = 0;
    for (let i = 0; i < 12; i++) {
      const { socket, echo, ms } = await echoOnce(port, `hello ${i}`);
      socket.destroy();
      expect(echo).toBe(`hello ${i}`);
      expect(ms).toBeLessThan(300 + LATE_TOLERANCE_MS);
      if (ms >= 300) slow += 1;
    }
    // Some connections went to node-e first and were moved on at the connect timeout.
    expect(slow).toBeGreaterThan(0);
  });

  it('opaque TCP: a connection quiet both ways for timeouts.idle is closed', async () => {
    const port = await lab.port('tcpidle');
    const { socket } = await echoOnce(port, 'ping');
    const quietSince = performance.now();
    await new Promise((resolve) => socket.once('close', resolve));
    const ms = performance.now() - quietSince;
    expect(ms).toBeGreaterThanOrEqual(300 - 5);
    expect(ms).toBeLessThan(300 + LATE_TOLERANCE_MS);
    const line = await waitFor('the connection log line', () =>
      lab.logs.find((l) => l.msg === 'connection' && l.dst_service === 'tcpidle'),
    );
    expect(line).toMatchObject({ close_reason: 'idle_timeout' });
  });
});
