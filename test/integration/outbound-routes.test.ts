// HTTPRoute and GRPCRoute on the outbound HTTP path, on loopback through the whole outbound
// handler and the real tunnel: header and path matches pick the backend Service, a 90/10 split
// of real requests, a redirect and a rewrite, header modifiers both ways, a mirror that gets
// copies while its failure or silence changes nothing for the caller, fault abort and delay,
// GRPCRoute service/method matches, and the `route` label of each request record.
import { Agent, request as httpRequest } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceDoc, workloadDoc } from '../helpers/mesh-views.js';
import { sumSeries } from '../helpers/metrics-text.js';
import { seeded } from '../helpers/seeded-random.js';
import { waitFor } from '../helpers/wait.js';
import {
  H2_VIP,
  type OutboundLab,
  outboundLab,
  type Seen,
  STUCK_PORT,
  WEB_VIP,
} from './outbound-http-fixture.js';
import { meshPki } from './tunnel-fixture.js';

/** Where each backend Service's one endpoint is (web itself: node-b and node-c on 8080). */
const V2 = '127.0.0.2:8082';
const SHADOW = '127.0.0.1:8083';
const H2_V2 = '127.0.0.2:8085';

const filter = (type: string, field: string, value: unknown) => ({ type, [field]: value });
const prefix = (value: string) => [{ path: { type: 'PathPrefix', value } }];

const DOCS = [
  serviceDoc('web-v2', '240.240.0.20', [{ port: 80, targetPort: 8082, protocol: 'http' }]),
  workloadDoc('node-c', 'web-v2', '127.0.0.2', 8082),
  serviceDoc('shadow', '240.240.0.21', [{ port: 80, targetPort: 8083, protocol: 'http' }]),
  workloadDoc('node-b', 'shadow', '127.0.0.1', 8083),
  // node-d runs no agent: every copy to it fails.
  serviceDoc('shadow-down', '240.240.0.22', [{ port: 80, targetPort: 8084, protocol: 'http' }]),
  workloadDoc('node-d', 'shadow-down', '127.0.0.4', 8084),
  // Its endpoint takes requests and never answers.
  serviceDoc('shadow-stuck', '240.240.0.23', [
    { port: 80, targetPort: STUCK_PORT, protocol: 'http' },
  ]),
  workloadDoc('node-c', 'shadow-stuck', '127.0.0.2', STUCK_PORT),
  serviceDoc('h2-v2', '240.240.0.24', [{ port: 80, targetPort: 8085, protocol: 'grpc' }]),
  workloadDoc('node-c', 'h2-v2', '127.0.0.2', 8085),
  {
    apiVersion: 'weft/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'web-routes' },
    spec: {
      parentRefs: [{ name: 'web' }],
      rules: [
        {
          matches: [{ headers: [{ name: 'x-canary', value: '1' }] }],
          backendRefs: [{ name: 'web-v2' }],
        },
        {
          matches: prefix('/v2'),
          filters: [
            filter('URLRewrite', 'urlRewrite', {
              hostname: 'web-v2.mesh',
              path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' },
            }),
          ],
          backendRefs: [{ name: 'web-v2' }],
        },
        {
          matches: [{ path: { type: 'Exact', value: '/old' } }],
          filters: [
            filter('RequestRedirect', 'requestRedirect', {
              path: { type: 'ReplaceFullPath', replaceFullPath: '/new' },
              statusCode: 301,
            }),
          ],
        },
        {
          matches: prefix('/hdr'),
          filters: [
            filter('RequestHeaderModifier', 'requestHeaderModifier', {
              set: [{ name: 'x-added', value: 'yes' }],
              add: [{ name: 'x-multi', value: 'two' }],
              remove: ['x-drop'],
            }),
            filter('ResponseHeaderModifier', 'responseHeaderModifier', {
              set: [{ name: 'x-resp', value: 'added' }],
              remove: ['content-type'],
            }),
          ],
        },
        {
          matches: prefix('/mirror'),
          filters: ['shadow', 'shadow-down', 'shadow-stuck'].map((name) =>
            filter('RequestMirror', 'requestMirror', { backendRef: { name } }),
          ),
        },
        {
          matches: prefix('/fault-abort'),
          filters: [filter('Fault', 'fault', { abort: { httpStatus: 503 } })],
        },
        {
          matches: prefix('/fault-delay'),
          filters: [filter('Fault', 'fault', { delay: { fixedDelay: '1h' } })],
        },
        {
          matches: prefix('/split'),
          backendRefs: [
            { name: 'web', weight: 90 },
            { name: 'web-v2', weight: 10 },
          ],
        },
      ],
    },
  },
  {
    apiVersion: 'weft/v1',
    kind: 'GRPCRoute',
    metadata: { name: 'greeter' },
    spec: {
      parentRefs: [{ name: 'h2' }],
      rules: [
        {
          matches: [{ method: { service: 'pkg.Greeter', method: 'Hello' } }],
          backendRefs: [{ name: 'h2-v2' }],
        },
        {
          matches: [{ method: { service: 'pkg.Greeter', method: 'Fail' } }],
          filters: [filter('Fault', 'fault', { abort: { grpcStatus: 14 } })],
        },
      ],
    },
  },
];

const SEED = 42;
let lab: OutboundLab;
let web: number;
let h2: number;

beforeAll(async () => {
  lab = await outboundLab(await meshPki(), {}, { docs: DOCS, random: seeded(SEED) });
  web = await lab.capture(WEB_VIP, 80);
  h2 = await lab.capture(H2_VIP, 80);
});

afterAll(async () => {
  await lab?.close();
});

interface Answer {
  status: number;
  headers: Record<string, unknown>;
  body: string;
}

function call(
  path: string,
  opts: { agent?: Agent; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port: web,
        path,
        method: opts.body ? 'POST' : 'GET',
        agent: opts.agent,
        headers: { host: 'web.mesh', ...opts.headers },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** weft_http_mirrored_total of the copies of requests to web, as a scrape shows them. */
async function mirrored(mirror: string, outcome: string): Promise<number> {
  const text = await lab.registry.getSingleMetricAsString('weft_http_mirrored_total');
  const series = `weft_http_mirrored_total{dst_service="web",mirror_service="${mirror}",outcome="${outcome}"}`;
  return sumSeries(text, new RegExp(`^${series.replace(/[{}]/g, '\\$&')} `));
}

const seenAt = (path: string, target?: string): Seen[] =>
  lab.seen.filter((s) => s.path === path && (target === undefined || s.target === target));

const logLine = (path: string) =>
  waitFor(`the request log line of ${path}`, () =>
    lab.logs.find((l) => l.msg === 'request' && l.path === path),
  );

describe('matches pick the backend', () => {
  it("a header match goes to the canary Service: its destination is the backend's, with the route", async () => {
    const r = await call('/h', { headers: { 'x-canary': '1' } });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ target: V2, node: 'node-c', path: '/h' });
    expect(await logLine('/h')).toMatchObject({ route: 'web-routes', dst_service: 'web-v2' });
  });

  it('a request no rule matches goes to the Service itself, route "default"', async () => {
    const r = await call('/nothing', { headers: { 'x-canary': '2' } });
    expect(JSON.parse(r.body).target).toMatch(/^127\.0\.0\.[12]:8080$/);
    expect(await logLine('/nothing')).toMatchObject({ route: 'default' });
    const metrics = await lab.registry.getSingleMetricAsString('weft_http_requests_total');
    expect(metrics).toMatch(/dst_service="web-v2",route="web-routes",status_code="200"/);
    expect(metrics).toMatch(/dst_service="web",route="default",status_code="200"/);
  });

  it('a path prefix match rewrites the path and the host for the backend', async () => {
    const r = await call('/v2/items?x=1');
    expect(JSON.parse(r.body)).toMatchObject({
      target: V2,
      path: '/items?x=1',
      authority: 'web-v2.mesh',
    });
  });
});

describe('a 90/10 split', () => {
  it('lands as drawn over 500 real requests (the 10,000-draw check, within 2 points, is a unit test)', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    const n = 500;
    const targets: string[] = [];
    for (let i = 0; i < n; i += 10) {
      const batch = await Promise.all(
        Array.from({ length: 10 }, (_, j) => call(`/split/${i + j}`, { agent })),
      );
      for (const r of batch) targets.push(JSON.parse(r.body).target);
    }
    agent.destroy();
    const canary = targets.filter((t) => t === V2).length;
    const stable = targets.filter((t) => /^127\.0\.0\.[12]:8080$/.test(t)).length;
    expect(canary + stable).toBe(n);
    // The stage draws from the injected seeded source, once per split request (no other rule
    // here draws): the real traffic lands exactly where those draws say...
    const draws = seeded(SEED);
    const expected = Array.from({ length: n }, () => draws() * 100 >= 90).filter(Boolean).length;
    expect(canary).toBe(expected);
    // ... which is within 3 standard deviations of 10 % over 500 (sqrt(0.09 / 500) = 1.3 points).
    expect(Math.abs((canary / n) * 100 - 10)).toBeLessThanOrEqual(4);
  });
});

describe('filters', () => {
  it('a redirect is answered by the agent; nothing reaches a backend', async () => {
    const r = await call('/old?q=1');
    expect(r.status).toBe(301);
    expect(r.headers.location).toBe('http://web.mesh/new?q=1');
    // A normal response, not an agent's error answer: no weft-reason; the record says why.
    expect(r.headers['weft-reason']).toBeUndefined();
    expect(await logLine('/old?q=1')).toMatchObject({
      status: 301,
      close_reason: 'route_redirect',
      route: 'web-routes',
    });
    expect((await logLine('/old?q=1')).endpoint).toBeUndefined();
    // Sentinel: a later request arrives, the redirected one never did.
    await call('/after-redirect');
    expect(seenAt('/after-redirect')).toHaveLength(1);
    expect(lab.seen.filter((s) => s.path.startsWith('/old'))).toEqual([]);
  });

  it('request and response headers are modified', async () => {
    const r = await call('/hdr', { headers: { 'x-drop': 'gone', 'x-multi': 'one' } });
    expect(r.status).toBe(200);
    expect(r.headers['x-resp']).toBe('added');
    expect(r.headers['content-type']).toBeUndefined();
    const seen = JSON.parse(r.body).headers;
    expect(seen['x-added']).toBe('yes');
    expect(seen['x-multi']).toBe('one, two');
    expect(seen['x-drop']).toBeUndefined();
  });

  it('a mirror receives copies; its failure and its silence change nothing for the caller', async () => {
    const r = await call('/mirror/a', { body: 'payload' });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ path: '/mirror/a', body: 'payload' });
    expect(JSON.parse(r.body).target).toMatch(/:8080$/);
    const copy = await waitFor('the mirror copy', () => seenAt('/mirror/a', SHADOW)[0]);
    expect(copy).toMatchObject({ method: 'POST', body: 'payload' });
    // The stuck mirror got its copy and never answered; the one on node-d could not be reached.
    await waitFor('the stuck mirror copy', () => seenAt('/mirror/a', `127.0.0.2:${STUCK_PORT}`)[0]);
    // Counted in /metrics per mirror: each copy sent, the unreachable one failed.
    await waitFor(
      'the failed mirror counted',
      async () => (await mirrored('shadow-down', 'failed')) === 1,
    );
    for (const m of ['shadow', 'shadow-down', 'shadow-stuck'])
      expect(await mirrored(m, 'sent')).toBe(1);
    expect(await mirrored('shadow', 'failed')).toBe(0);
    // A bodiless request is mirrored too.
    expect((await call('/mirror/b')).status).toBe(200);
    await waitFor('the bodiless copy', () => seenAt('/mirror/b', SHADOW)[0]);
    expect(await mirrored('shadow', 'sent')).toBe(2);
  });

  it('a body over 64 KiB is forwarded whole and not mirrored', async () => {
    const sent = await mirrored('shadow', 'sent');
    const big = 'b'.repeat(100_000);
    const r = await call('/mirror/big', { body: big });
    expect(JSON.parse(r.body).body).toBe(big);
    for (const m of ['shadow', 'shadow-down', 'shadow-stuck'])
      expect(await mirrored(m, 'dropped')).toBe(1);
    expect(await mirrored('shadow', 'sent')).toBe(sent);
    // Sentinel: the next mirrored request's copy arrives; the big one's never did.
    await call('/mirror/after', { body: 'small' });
    await waitFor('the sentinel copy', () => seenAt('/mirror/after', SHADOW)[0]);
    expect(seenAt('/mirror/big', SHADOW)).toEqual([]);
  });

  it("a fault's abort is answered by the agent", async () => {
    const r = await call('/fault-abort/x');
    expect(r.status).toBe(503);
    expect(r.headers['weft-reason']).toBe('fault_abort');
    expect(r.body).toBe('weft: fault injected\n');
    expect(await logLine('/fault-abort/x')).toMatchObject({
      status: 503,
      close_reason: 'fault_abort',
    });
    await call('/after-abort');
    expect(seenAt('/after-abort')).toHaveLength(1);
    expect(seenAt('/fault-abort/x')).toEqual([]);
  });

  it("a fault's delay holds the request back", async () => {
    const req = httpRequest({
      host: '127.0.0.1',
      port: web,
      path: '/fault-delay/x',
      headers: { host: 'web.mesh' },
    });
    req.on('error', () => {});
    req.end();
    // It is in flight in the agent (the gauge counts it from its head on).
    await waitFor('the delayed request in flight', async () =>
      /dst_service="web"} 1\b/.test(
        await lab.registry.getSingleMetricAsString('weft_http_requests_in_flight'),
      ),
    );
    // Sentinel: a request sent after it arrives; the delayed one (1 h) has not.
    await call('/after-delay');
    expect(seenAt('/after-delay')).toHaveLength(1);
    expect(seenAt('/fault-delay/x')).toEqual([]);
    // A reset: a FIN alone is a half-close, after which a client still gets its answer.
    req.socket?.resetAndDestroy();
    // The client left during the delay: its record says so, and nothing went upstream.
    expect(await logLine('/fault-delay/x')).toMatchObject({ close_reason: 'client_reset' });
    expect(seenAt('/fault-delay/x')).toEqual([]);
  });
});

describe('GRPCRoute', () => {
  function grpcCall(path: string): Promise<Record<string, unknown>> {
    const session = h2connect(`http://127.0.0.1:${h2}`);
    const s = session.request({
      ':method': 'POST',
      ':path': path,
      ':authority': 'h2.mesh',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    s.end(Buffer.from([0, 0, 0, 0, 0]));
    return new Promise((resolve, reject) => {
      s.once('response', (headers) => {
        s.resume();
        s.once('close', () => {
          session.close();
          resolve(headers as Record<string, unknown>);
        });
      });
      s.once('error', reject);
    });
  }

  it('a service/method match picks the backend Service', async () => {
    const headers = await grpcCall('/pkg.Greeter/Hello');
    expect(headers[':status']).toBe(200);
    await waitFor('the call at h2-v2', () => seenAt('/pkg.Greeter/Hello', H2_V2)[0]);
    expect(await logLine('/pkg.Greeter/Hello')).toMatchObject({
      route: 'greeter',
      dst_service: 'h2-v2',
    });
  });

  it('a gRPC abort is a trailers-only status', async () => {
    const headers = await grpcCall('/pkg.Greeter/Fail');
    expect(headers['grpc-status']).toBe('14');
    expect(headers['weft-reason']).toBe('fault_abort');
  });

  it('other calls go to the Service itself', async () => {
    await grpcCall('/pkg.Greeter/Other');
    expect(seenAt('/pkg.Greeter/Other')[0]?.target).toBe('127.0.0.1:8080');
    expect(await logLine('/pkg.Greeter/Other')).toMatchObject({ route: 'default' });
  });
});
