// Circuit breaking and outlier detection on the calling agent, through the whole outbound
// handler on loopback with real TLS (breakers-fixture.ts): each circuit breaker limit trips
// (503 circuit_open, gRPC UNAVAILABLE, an opaque connection reset) and recovers; outlier
// detection ejects a failing endpoint at its threshold, probes it with exactly one request,
// and brings it back when the probe succeeds; maxEjectionPercent keeps enough endpoints.
import { Agent, request as httpRequest } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceDoc, workloadDoc } from '../helpers/mesh-views.js';
import { sumSeries } from '../helpers/metrics-text.js';
import { waitFor } from '../helpers/wait.js';
import { type BreakersLab, breakersLab } from './breakers-fixture.js';
import { meshPki } from './tunnel-fixture.js';

const VIP = {
  busy: '240.240.1.1',
  conns: '240.240.1.2',
  db: '240.240.1.3',
  slow: '240.240.1.4',
  od: '240.240.1.5',
  odAll: '240.240.1.6',
  odRetry: '240.240.1.7',
  odShed: '240.240.1.8',
  front: '240.240.1.9',
  back: '240.240.1.10',
};

function policy(service: string, spec: Record<string, unknown>) {
  return {
    apiVersion: 'weft/v1',
    kind: 'TrafficPolicy',
    metadata: { name: service },
    spec: { targetRef: { name: service }, ...spec },
  };
}

const http = (port: number) => [{ port: 80, targetPort: port, protocol: 'http' }];

const docs = [
  // An HTTPRoute sends every request to `front` on to `back`: the requests are back's, for its
  // breaker (maxRequests 2), not front's (maxRequests 1).
  serviceDoc('front', VIP.front, http(8088)),
  workloadDoc('node-b', 'front', '127.0.0.1', 8088),
  policy('front', { circuitBreaker: { maxRequests: 1 } }),
  serviceDoc('back', VIP.back, http(8089)),
  workloadDoc('node-b', 'back', '127.0.0.1', 8089),
  policy('back', { circuitBreaker: { maxRequests: 2 } }),
  {
    apiVersion: 'weft/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'front-to-back' },
    spec: { parentRefs: [{ name: 'front' }], rules: [{ backendRefs: [{ name: 'back' }] }] },
  },
  serviceDoc('busy', VIP.busy, http(8083)),
  workloadDoc('node-b', 'busy', '127.0.0.1', 8083),
  policy('busy', { circuitBreaker: { maxRequests: 2 } }),
  serviceDoc('conns', VIP.conns, http(8084)),
  workloadDoc('node-b', 'conns', '127.0.0.1', 8084),
  policy('conns', { circuitBreaker: { maxConnections: 1 } }),
  serviceDoc('db', VIP.db, [{ port: 5432, targetPort: 9000, protocol: 'tcp' }]),
  workloadDoc('node-b', 'db', '127.0.0.1', 9000),
  policy('db', { circuitBreaker: { maxConnections: 1 } }),
  serviceDoc('slow', VIP.slow, http(8085)),
  workloadDoc('node-x', 'slow', '127.0.0.3', 8085),
  policy('slow', { circuitBreaker: { maxPendingRequests: 1 } }),
  serviceDoc('od', VIP.od, http(8081)),
  workloadDoc('node-b', 'od', '127.0.0.1', 8081),
  workloadDoc('node-c', 'od', '127.0.0.2', 8081),
  policy('od', {
    balancer: { type: 'roundRobin' },
    outlierDetection: { consecutiveFailures: 3, baseEjectionTime: '2s', maxEjectionPercent: 50 },
  }),
  serviceDoc('od-all', VIP.odAll, http(8082)),
  workloadDoc('node-b', 'od-all', '127.0.0.1', 8082),
  workloadDoc('node-c', 'od-all', '127.0.0.2', 8082),
  policy('od-all', {
    outlierDetection: { consecutiveFailures: 2, baseEjectionTime: '1h', maxEjectionPercent: 50 },
  }),
  serviceDoc('od-retry', VIP.odRetry, http(8086)),
  workloadDoc('node-b', 'od-retry', '127.0.0.1', 8086),
  workloadDoc('node-c', 'od-retry', '127.0.0.2', 8086),
  policy('od-retry', {
    balancer: { type: 'roundRobin' },
    retries: { attempts: 1, on: ['5xx'], backoff: { base: '1ms', max: '1ms' } },
    outlierDetection: { consecutiveFailures: 2, baseEjectionTime: '1h', maxEjectionPercent: 100 },
  }),
  serviceDoc('od-shed', VIP.odShed, http(8087)),
  workloadDoc('node-b', 'od-shed', '127.0.0.1', 8087),
  workloadDoc('node-c', 'od-shed', '127.0.0.2', 8087),
  policy('od-shed', {
    balancer: { type: 'roundRobin' },
    retries: { attempts: 1, on: ['5xx'], backoff: { base: '1ms', max: '1ms' } },
    outlierDetection: { consecutiveFailures: 2, baseEjectionTime: '1h', maxEjectionPercent: 50 },
  }),
];

let lab: BreakersLab;

beforeAll(async () => {
  lab = await breakersLab(await meshPki(), docs);
});

afterAll(async () => {
  await lab?.close();
});

interface Res {
  status: number;
  headers: Record<string, unknown>;
  body: string;
}

function get(port: number, path: string, agent?: Agent): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function metric(pattern: RegExp): Promise<number> {
  return sumSeries(await lab.registry.metrics(), pattern);
}

const rejections = (service: string, limit: string) =>
  metric(
    new RegExp(
      `^weft_circuit_breaker_rejections_total\\{dst_service="${service}",limit="${limit}"\\}`,
    ),
  );

describe('circuit breaker', () => {
  it('maxRequests: the request beyond the limit gets 503 circuit_open at once; it recovers', async () => {
    const port = await lab.capture(VIP.busy, 80);
    lab.modes.set('node-b:8083', 'hold');
    const first = [get(port, '/1'), get(port, '/2')];
    await waitFor('two requests held by the backend', () => lab.held.length === 2);
    const third = await get(port, '/3');
    expect(third.status).toBe(503);
    expect(third.headers['weft-reason']).toBe('circuit_open');
    expect(third.body).toMatch(/2 requests in flight \(circuitBreaker\.maxRequests\)/);
    expect(await rejections('busy', 'max_requests')).toBe(1);
    // gRPC gets a trailers-only UNAVAILABLE.
    const session = h2connect(`http://127.0.0.1:${port}`);
    try {
      const status = await new Promise<{ status: string; grpc: unknown }>((resolve, reject) => {
        const s = session.request(
          { ':method': 'POST', ':path': '/svc/Call', 'content-type': 'application/grpc' },
          { endStream: true },
        );
        s.once('response', (h) =>
          resolve({ status: String(h[':status']), grpc: h['grpc-status'] }),
        );
        s.once('error', reject);
        s.resume();
      });
      expect(status).toEqual({ status: '200', grpc: '14' });
    } finally {
      session.destroy();
    }
    // Recovery: once the held ones are answered, requests go through again.
    lab.modes.set('node-b:8083', 'ok');
    for (const h of lab.held.splice(0)) h.release();
    expect((await Promise.all(first)).map((r) => r.status)).toEqual([200, 200]);
    expect((await get(port, '/4')).status).toBe(200);
    expect(await rejections('busy', 'max_requests')).toBe(2);
  });

  it("a routed request holds its backend's breaker slot, not the parent's", async () => {
    const port = await lab.capture(VIP.front, 80);
    lab.modes.set('node-b:8089', 'hold');
    const first = [get(port, '/r1'), get(port, '/r2')];
    await waitFor('two routed requests held by the backend', () => lab.held.length === 2);
    const third = await get(port, '/r3');
    expect(third.status).toBe(503);
    expect(third.headers['weft-reason']).toBe('circuit_open');
    expect(third.body).toMatch(/circuit breaker open for back: 2 requests in flight/);
    expect(await rejections('back', 'max_requests')).toBe(1);
    expect(await rejections('front', 'max_requests')).toBe(0);
    lab.modes.set('node-b:8089', 'ok');
    for (const h of lab.held.splice(0)) h.release();
    expect((await Promise.all(first)).map((r) => r.status)).toEqual([200, 200]);
    expect(lab.arrivals.filter((a) => a === 'node-b:8088')).toEqual([]);
  });

  it('maxConnections (HTTP): a second app connection is refused while the first is open', async () => {
    const port = await lab.capture(VIP.conns, 80);
    const one = new Agent({ keepAlive: true, maxSockets: 1 });
    const two = new Agent({ keepAlive: true, maxSockets: 1 });
    expect((await get(port, '/a', one)).status).toBe(200);
    const refused = await get(port, '/b', two);
    expect(refused.status).toBe(503);
    expect(refused.headers['weft-reason']).toBe('circuit_open');
    expect(refused.body).toMatch(/\(circuitBreaker\.maxConnections\)/);
    // The first connection closes: the second connection's next request is admitted.
    one.destroy();
    await waitFor(
      'the second connection admitted',
      async () => (await get(port, '/c', two)).status === 200,
    );
    two.destroy();
    expect(await rejections('conns', 'max_connections')).toBeGreaterThanOrEqual(1);
  });

  it('maxConnections (opaque): the connection beyond it is reset and recorded circuit_open', async () => {
    const port = await lab.capture(VIP.db, 5432);
    const open = () => {
      const socket = netConnect(port, '127.0.0.1');
      const outcome = new Promise<string>((resolve) => {
        let got = '';
        socket.on('data', (c) => {
          got += c;
          if (got === 'ping') resolve('echoed');
        });
        socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
        socket.on('close', () => resolve(got === '' ? 'closed' : got));
      });
      socket.write('ping');
      return { socket, outcome };
    };
    const first = open();
    expect(await first.outcome).toBe('echoed');
    const second = open();
    expect(await second.outcome).toBe('ECONNRESET');
    await waitFor('the refusal recorded', () =>
      lab.logs.find(
        (l) =>
          l.msg === 'connection' && l.dst_service === 'db' && l.close_reason === 'circuit_open',
      ),
    );
    first.socket.destroy();
    await waitFor('a new connection admitted once the first closed', async () => {
      const next = open();
      const outcome = await next.outcome;
      next.socket.destroy();
      return outcome === 'echoed';
    });
    expect(await rejections('db', 'max_connections')).toBeGreaterThanOrEqual(1);
  });

  it('maxPendingRequests: requests waiting for a tunnel session beyond it fail fast', async () => {
    const port = await lab.capture(VIP.slow, 80);
    // node-x's handshake hangs: the first request waits for its session.
    const first = get(port, '/wait');
    await waitFor('the handshake to node-x started', () => lab.silent.size > 0);
    const second = await get(port, '/over');
    expect(second.status).toBe(503);
    expect(second.headers['weft-reason']).toBe('circuit_open');
    expect(second.body).toMatch(
      /waiting for a tunnel session \(circuitBreaker\.maxPendingRequests\)/,
    );
    expect(await rejections('slow', 'max_pending_requests')).toBe(1);
    // node-x goes away: the waiting request fails, and the next one is no longer refused.
    await lab.closeSilent();
    expect((await first).headers['weft-reason']).toBe('no_healthy_endpoint');
    expect((await get(port, '/after')).headers['weft-reason']).toBe('no_healthy_endpoint');
    expect(await rejections('slow', 'max_pending_requests')).toBe(1);
  });
});

describe('outlier detection', () => {
  it('ejects at consecutiveFailures, probes with exactly one request, and brings it back', async () => {
    const port = await lab.capture(VIP.od, 80);
    lab.modes.set('node-b:8081', '503');
    const fromB = () => lab.arrivals.filter((a) => a === 'node-b:8081').length;
    const ejected = () =>
      lab.logs.find((l) => l.msg === 'endpoint ejected' && l.endpoint === 'node-b-od-8081');
    const failures: number[] = [];
    for (let i = 0; i < 20 && !ejected(); i++) {
      const r = await get(port, `/od/${i}`);
      if (r.status !== 200) failures.push(r.status);
    }
    expect(ejected()).toBeTruthy();
    // Ejected by its third 503 in a row (round robin: node-c's answers come between).
    expect(failures).toEqual([503, 503, 503]);
    expect(fromB()).toBe(3);

    // Half-open after 2 s: the probe is held at node-b; everything else goes to node-c. (A probe
    // without an outcome lets another through after one more ejection, 2 s: the ten requests
    // below are answered well within it on loopback.)
    lab.modes.set('node-b:8081', 'hold');
    const heldOnce = new Promise((resolve) => lab.events.once('held', resolve));
    let probe: Promise<Res> | undefined;
    while (probe === undefined) {
      const r = get(port, '/od/until-probe');
      const won = await Promise.race([r, heldOnce.then(() => 'held' as const)]);
      if (won === 'held') probe = r;
      else expect(won.headers['x-node']).toBe('node-c');
    }
    expect(fromB()).toBe(4);
    for (let i = 0; i < 10; i++) {
      expect((await get(port, `/od/while-probing/${i}`)).headers['x-node']).toBe('node-c');
    }
    expect(fromB()).toBe(4); // exactly one probe, while ten requests were answered

    // The probe succeeds: node-b is back in rotation.
    lab.modes.set('node-b:8081', 'ok');
    for (const h of lab.held.splice(0)) h.release();
    expect((await probe).status).toBe(200);
    const nodes = new Set<unknown>();
    for (let i = 0; i < 4; i++) nodes.add((await get(port, `/od/back/${i}`)).headers['x-node']);
    expect(nodes).toEqual(new Set(['node-b', 'node-c']));
  });

  it('maxEjectionPercent keeps enough endpoints: of two failing, one is ejected, never both', async () => {
    const port = await lab.capture(VIP.odAll, 80);
    lab.modes.set('node-b:8082', '503');
    lab.modes.set('node-c:8082', '503');
    const answers: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await get(port, `/all/${i}`);
      answers.push(String(r.headers['x-node'] ?? r.headers['weft-reason']));
    }
    const ejections = lab.logs.filter(
      (l) => l.msg === 'endpoint ejected' && String(l.endpoint).endsWith('-od-all-8082'),
    );
    expect(ejections).toHaveLength(1);
    // Every request reached an app (no "no healthy endpoint" from the agent); after the
    // ejection, all of them the one left.
    expect(answers.every((a) => a === 'node-b' || a === 'node-c')).toBe(true);
    const kept = ejections[0]!.endpoint === 'node-b-od-all-8082' ? 'node-c' : 'node-b';
    expect(answers.slice(-10)).toEqual(Array(10).fill(kept));
  });

  it("a peer agent's shed (503 overloaded) is load: never an endpoint failure, never retried", async () => {
    const port = await lab.capture(VIP.odShed, 80);
    lab.modes.set('node-b:8087', 'overloaded');
    const fromB = () => lab.arrivals.filter((a) => a === 'node-b:8087').length;
    const ejected = () =>
      lab.logs.find((l) => l.msg === 'endpoint ejected' && l.endpoint === 'node-b-od-shed-8087');
    const sheds: unknown[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await get(port, `/shed/${i}`);
      if (r.status !== 200) sheds.push(r.headers['weft-reason']);
    }
    // Round robin: every other request reached node-b and was shed; none was retried (on 5xx)
    // elsewhere, and five in a row (threshold 2) did not eject node-b.
    expect(sheds).toEqual(Array(5).fill('overloaded'));
    expect(fromB()).toBe(5);
    expect(ejected()).toBeUndefined();
    // Sentinel: the same endpoint's real 503s eject it at the threshold.
    lab.modes.set('node-b:8087', '503');
    for (let i = 0; i < 10 && !ejected(); i++) await get(port, `/after/${i}`);
    expect(ejected()).toBeTruthy();
  });

  it('a retried 5xx counts once, against the endpoint that gave it', async () => {
    const port = await lab.capture(VIP.odRetry, 80);
    lab.modes.set('node-b:8086', '503');
    lab.modes.set('node-c:8086', '503');
    const tries = () => lab.arrivals.filter((a) => a.endsWith(':8086')).length;
    const ejections = () =>
      lab.logs.filter(
        (l) => l.msg === 'endpoint ejected' && String(l.endpoint).endsWith('-od-retry-8086'),
      );
    // One request, two tries: one 503 from each endpoint, one failure each of the two that
    // eject. Counted twice (by the try and again by the retry decision), the first would go.
    expect((await get(port, '/retry/1')).status).toBe(503);
    expect(tries()).toBe(2);
    expect(ejections()).toHaveLength(0);
    // The next request's first try is its endpoint's second failure: ejected now (the other,
    // the last usable one, stays).
    expect((await get(port, '/retry/2')).status).toBe(503);
    expect(tries()).toBe(4);
    expect(ejections()).toHaveLength(1);
  });
});
