// HTTPRoute rules[].timeouts on the outbound HTTP path, on loopback through the real tunnel: a
// route's backendRequest bounds each try and its request the whole request, over the backend
// Service's TrafficPolicy (whose own timeouts are far longer here), and the retries and
// timeouts of a routed request are counted under the route's name.
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sumSeries } from '../helpers/metrics-text.js';
import { waitFor } from '../helpers/wait.js';
import { type ResilienceLab, resilienceLab } from './outbound-resilience-fixture.js';
import { meshPki } from './tunnel-fixture.js';

/**
 * Timers fire on a shared, loaded 2-core machine: a timeout must never fire before its value,
 * and is allowed this much after it (scheduling, TLS and the tunnel between), as in
 * outbound-resilience.test.ts.
 */
const LATE_TOLERANCE_MS = 1_500;

const ROUTE = 'routed-timeouts';

/**
 * The TrafficPolicy's timeouts are long (10 s the request, 5 s a try): only the route's can
 * fire within the tolerance. Backoffs of 1-5 ms keep the tests quick.
 */
const POLICY = {
  timeouts: { request: '10s' },
  retries: {
    attempts: 1,
    perTryTimeout: '5s',
    on: ['5xx', 'reset'],
    backoff: { base: '1ms', max: '5ms' },
    budget: { percent: 100, minPerSecond: 100 },
  },
};

const HTTP_ROUTE = {
  apiVersion: 'weft/v1',
  kind: 'HTTPRoute',
  metadata: { name: ROUTE },
  spec: {
    parentRefs: [{ name: 'routed' }],
    rules: [
      {
        matches: [{ path: { type: 'PathPrefix', value: '/slow' } }],
        timeouts: { request: '10s', backendRequest: '300ms' },
      },
      {
        matches: [
          {
            path: { type: 'PathPrefix', value: '/slow' },
            headers: [{ name: 'x-timeout', value: 'request' }],
          },
        ],
        timeouts: { request: '400ms' },
      },
      { matches: [{ path: { type: 'PathPrefix', value: '/fail' } }] },
    ],
  },
};

let lab: ResilienceLab;
let port: number;

beforeAll(async () => {
  lab = await resilienceLab(
    await meshPki(),
    [{ name: 'routed', vip: '240.240.2.1', policy: POLICY }],
    undefined,
    [HTTP_ROUTE],
  );
  port = await lab.port('routed');
});

afterAll(async () => {
  await lab?.close();
});

interface Got {
  status: number;
  headers: Record<string, unknown>;
  ms: number;
}

function call(path: string, headers: Record<string, string> = {}): Promise<Got> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path, headers: { host: 'routed.mesh', ...headers } },
      (res) => {
        res.resume();
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            ms: performance.now() - started,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const triesOf = (path: string) => lab.tries.filter((t) => t.path === path);

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

const logLine = (path: string) =>
  waitFor(`the request log line of ${path}`, () =>
    lab.logs.find((l) => l.msg === 'request' && l.path === path),
  );

describe("a route's timeouts", () => {
  it('backendRequest cuts each try at its value, then the retry, then answers 504', async () => {
    const r = await call('/slow/5000/a');
    expect(r.status).toBe(504);
    expect(r.headers['weft-reason']).toBe('per_try_timeout');
    // Two tries of 300 ms each (attempts: 1), and a backoff of at most 5 ms between.
    expect(r.ms).toBeGreaterThanOrEqual(600);
    expect(r.ms).toBeLessThan(600 + 5 + LATE_TOLERANCE_MS);
    const tries = triesOf('/slow/5000/a');
    expect(tries).toHaveLength(2);
    await waitFor('both tries reset at the backend', () => tries.every((t) => t.reset));
    const labels = { dst_service: 'routed', route: ROUTE };
    expect(await metric('weft_http_timeouts_total', { ...labels, kind: 'per_try_timeout' })).toBe(
      2,
    );
    expect(await metric('weft_http_retries_total', { ...labels, reason: 'per_try_timeout' })).toBe(
      1,
    );
    expect(await logLine('/slow/5000/a')).toMatchObject({
      route: ROUTE,
      status: 504,
      close_reason: 'per_try_timeout',
    });
  });

  it('request answers 504 at its value, retries included', async () => {
    const r = await call('/slow/5000/b', { 'x-timeout': 'request' });
    expect(r.status).toBe(504);
    expect(r.headers['weft-reason']).toBe('request_timeout');
    expect(r.ms).toBeGreaterThanOrEqual(400);
    expect(r.ms).toBeLessThan(400 + LATE_TOLERANCE_MS);
    // The try was cut by the deadline, and no retry started after it.
    expect(triesOf('/slow/5000/b')).toHaveLength(1);
    expect(
      await metric('weft_http_timeouts_total', {
        dst_service: 'routed',
        route: ROUTE,
        kind: 'request_timeout',
      }),
    ).toBe(1);
    expect(await logLine('/slow/5000/b')).toMatchObject({
      route: ROUTE,
      status: 504,
      close_reason: 'request_timeout',
    });
  });

  it('a rule without timeouts keeps the policy: its retries are counted under the route', async () => {
    const r = await call('/fail/c');
    expect(r.status).toBe(503);
    expect(triesOf('/fail/c')).toHaveLength(2);
    expect(
      await metric('weft_http_retries_total', {
        dst_service: 'routed',
        route: ROUTE,
        reason: 'http_status',
      }),
    ).toBe(1);
    expect(await metric('weft_http_retries_total', { route: 'default' })).toBe(0);
  });
});
