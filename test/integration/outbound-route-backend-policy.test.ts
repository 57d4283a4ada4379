// Whose TrafficPolicy a routed request meets (GAMMA: a policy attached to a Service applies to
// the traffic sent to it as a backend): an HTTPRoute on `front` sends requests on to `back`
// (no policy) or `back-retry` (retries on 5xx). front's own retries do not follow its requests
// to another backend; the backend's do, counted under the backend and the route's name.
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sumSeries } from '../helpers/metrics-text.js';
import { type ResilienceLab, resilienceLab } from './outbound-resilience-fixture.js';
import { meshPki } from './tunnel-fixture.js';

const RETRY = {
  retries: {
    attempts: 1,
    on: ['5xx'],
    backoff: { base: '1ms', max: '5ms' },
    budget: { percent: 100, minPerSecond: 100 },
  },
};

const ROUTE = {
  apiVersion: 'weft/v1',
  kind: 'HTTPRoute',
  metadata: { name: 'front-route' },
  spec: {
    parentRefs: [{ name: 'front' }],
    rules: [
      {
        matches: [{ headers: [{ name: 'x-to', value: 'back' }] }],
        backendRefs: [{ name: 'back' }],
      },
      {
        matches: [{ headers: [{ name: 'x-to', value: 'back-retry' }] }],
        backendRefs: [{ name: 'back-retry' }],
      },
    ],
  },
};

let lab: ResilienceLab;
let port: number;

beforeAll(async () => {
  lab = await resilienceLab(
    await meshPki(),
    [
      { name: 'front', vip: '240.240.5.1', policy: RETRY },
      { name: 'back', vip: '240.240.5.2' },
      { name: 'back-retry', vip: '240.240.5.3', policy: RETRY },
    ],
    undefined,
    [ROUTE],
  );
  port = await lab.port('front');
});

afterAll(async () => {
  await lab?.close();
});

function call(path: string, to: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path, headers: { host: 'front', 'x-to': to } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

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

describe("a routed request meets its backend's TrafficPolicy", () => {
  it("the parent's retries do not follow it to a backend without them", async () => {
    expect(await call('/fail/to-back', 'back')).toBe(503);
    expect(lab.tries.filter((t) => t.path === '/fail/to-back')).toHaveLength(1);
  });

  it("the backend's retries apply, counted under the backend and the route", async () => {
    expect(await call('/fail/to-retry', 'back-retry')).toBe(503);
    expect(lab.tries.filter((t) => t.path === '/fail/to-retry')).toHaveLength(2);
    expect(
      await metric('weft_http_retries_total', { dst_service: 'back-retry', route: 'front-route' }),
    ).toBe(1);
    expect(await metric('weft_http_retries_total', { dst_service: 'front' })).toBe(0);
  });
});
