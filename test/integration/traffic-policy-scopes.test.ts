// TrafficPolicy scopes on the data path, on loopback through the real tunnel: a Mesh policy's
// retries apply to a service without a policy of its own, and a Service policy that sets only
// retries.attempts gets its own count of tries while the rest (which failures are retried)
// still comes from the Mesh policy, not from the schema's defaults.
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ResilienceLab, resilienceLab } from './outbound-resilience-fixture.js';
import { meshPki } from './tunnel-fixture.js';

let lab: ResilienceLab;
beforeAll(async () => {
  lab = await resilienceLab(
    await meshPki(),
    [
      { name: 'inherits', vip: '240.240.2.1' },
      { name: 'narrows', vip: '240.240.2.2', policy: { retries: { attempts: 1 } } },
    ],
    // 5xx, which the default `on` does not cover (it retries 502-504 only); quick backoffs
    // and a budget that never denies, so the counts below are the policies' own.
    {
      retries: {
        attempts: 3,
        on: ['5xx'],
        backoff: { base: '1ms', max: '5ms' },
        budget: { percent: 100, minPerSecond: 100 },
      },
    },
  );
});

afterAll(async () => {
  await lab?.close();
});

function status(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path, headers: { host: 'svc.mesh' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const triesOf = (path: string) => lab.tries.filter((t) => t.path === path).length;

describe('a Mesh TrafficPolicy and a Service one', () => {
  it('the Mesh policy applies to a service without its own: 1 + 3 tries of a failing GET', async () => {
    const port = await lab.port('inherits');
    expect(await status(port, '/fail/inherits')).toBe(503);
    expect(triesOf('/fail/inherits')).toBe(4);
  });

  it('the Service policy overrides attempts (1 + 1 tries) and inherits `on` from the Mesh', async () => {
    const port = await lab.port('narrows');
    expect(await status(port, '/fail/narrows')).toBe(503);
    expect(triesOf('/fail/narrows')).toBe(2);
    // A 500 is retried: the Mesh's `on` (5xx) holds; the default one (gateway-error, reset,
    // connect-failure, refused-stream) would not retry it.
    expect(await status(port, '/status/500/narrows')).toBe(500);
    expect(triesOf('/status/500/narrows')).toBe(2);
  });
});
