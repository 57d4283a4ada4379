// Hedging (an HTTPRoute rule's `hedging`) on the outbound HTTP path, on loopback through the
// real tunnel: the first try of each test's key is slow at whichever endpoint gets it; after the
// rule's 50 ms a hedge goes to the other endpoint, whose answer the client gets, and the slow
// try is cancelled (its stream reset at the backend). A POST is never hedged, and a hedge the
// budget cannot pay for is not sent. A GRPCRoute rule's hedging covers its calls (the lab's
// first gRPC call is answered UNAVAILABLE after 300 ms; the hedge's is not).
import { request as httpRequest } from 'node:http';
import grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sumSeries } from '../helpers/metrics-text.js';
import { waitFor } from '../helpers/wait.js';
import { type ResilienceLab, resilienceLab } from './outbound-resilience-fixture.js';
import { meshPki } from './tunnel-fixture.js';

/** The slow first try: far longer than a hedge takes, even on a loaded machine. */
const SLOW_MS = 8_000;

const route = (name: string, parent: string, hedging: Record<string, unknown>) => ({
  apiVersion: 'weft/v1',
  kind: 'HTTPRoute',
  metadata: { name },
  spec: { parentRefs: [{ name: parent }], rules: [{ hedging }] },
});

let lab: ResilienceLab;
const ports: Record<string, number> = {};

beforeAll(async () => {
  lab = await resilienceLab(
    await meshPki(),
    [
      {
        name: 'hedged',
        vip: '240.240.4.1',
        // One failure ejects: a cancelled try charged as a failure would show at once.
        policy: { outlierDetection: { consecutiveFailures: 1, maxEjectionPercent: 100 } },
      },
      { name: 'echo-grpc', vip: '240.240.4.3', protocol: 'grpc' },
      { name: 'p95', vip: '240.240.4.4' },
      {
        name: 'broke',
        vip: '240.240.4.2',
        // A budget of nothing: no retry, and no hedge, is ever paid for.
        policy: {
          retries: { attempts: 1, on: ['5xx'], budget: { percent: 0, minPerSecond: 0 } },
        },
      },
    ],
    undefined,
    [
      route('hedged-route', 'hedged', { delay: '50ms' }),
      route('broke-route', 'broke', { delay: '50ms' }),
      route('p95-route', 'p95', { delay: 'p95' }),
      {
        apiVersion: 'weft/v1',
        kind: 'GRPCRoute',
        metadata: { name: 'grpc-hedged' },
        spec: { parentRefs: [{ name: 'echo-grpc' }], rules: [{ hedging: { delay: '50ms' } }] },
      },
    ],
  );
  ports.hedged = await lab.port('hedged');
  ports.broke = await lab.port('broke');
  ports.p95 = await lab.port('p95');
  ports['echo-grpc'] = await lab.port('echo-grpc');
});

afterAll(async () => {
  await lab?.close();
});

interface Got {
  status: number;
  node: string;
}

function call(service: string, method: string, path: string, body?: string): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port: ports[service], method, path, headers: { host: service } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          resolve({
            status: res.statusCode ?? 0,
            node: text.startsWith('{') ? String(JSON.parse(text).node) : text,
          });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const triesOf = (path: string) => lab.tries.filter((t) => t.path === path);

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

describe('hedging', () => {
  it('a GET gets the hedge’s answer from the other endpoint; the slow try is cancelled', async () => {
    const path = `/first-slow/get/${SLOW_MS}/x`;
    const r = await call('hedged', 'GET', path);
    expect(r.status).toBe(200);
    const tries = triesOf(path);
    expect(tries).toHaveLength(2);
    const [slow, hedge] = tries as [(typeof tries)[0], (typeof tries)[0]];
    expect(hedge.node).not.toBe(slow.node);
    expect(r.node).toBe(hedge.node);
    await waitFor('the slow try reset at its backend', () => slow.reset);
    expect(hedge.reset).toBe(false);
    const labels = { dst_service: 'hedged', route: 'hedged-route' };
    expect(await metric('weft_http_hedges_total', { ...labels, outcome: 'won' })).toBe(1);
    expect(await metric('weft_http_hedges_total', { ...labels, outcome: 'lost' })).toBe(0);
    // The cancel is not the slow endpoint's failure (the reset above came after it).
    expect(lab.logs.filter((l) => l.msg === 'endpoint ejected')).toEqual([]);
  });

  it('a PUT with a small body is hedged with the same body', async () => {
    const path = `/first-slow/put/${SLOW_MS}/x`;
    const r = await call('hedged', 'PUT', path, 'hello hedge');
    expect(r.status).toBe(200);
    const tries = triesOf(path);
    expect(tries).toHaveLength(2);
    expect(r.node).toBe(tries[1]!.node);
    expect(tries.map((t) => t.bodyBytes)).toEqual([11, 11]);
    await waitFor('the slow try reset at its backend', () => tries[0]!.reset);
  });

  it('delay p95: no hedge before the rule has seen enough answers, then one after its p95', async () => {
    // The estimator needs 20 answers: until then, the slow first try is waited for.
    const early = `/first-slow/p95-early/300/x`;
    const r1 = await call('p95', 'GET', early);
    expect(triesOf(early)).toHaveLength(1);
    expect(r1.node).toBe(triesOf(early)[0]!.node);
    for (let i = 0; i < 20; i++) expect((await call('p95', 'GET', `/ok/${i}`)).status).toBe(200);
    const path = `/first-slow/p95/${SLOW_MS}/x`;
    const r = await call('p95', 'GET', path);
    const tries = triesOf(path);
    expect(tries).toHaveLength(2);
    expect(r.node).toBe(tries[1]!.node);
    await waitFor('the slow try reset at its backend', () => tries[0]!.reset);
    expect(
      await metric('weft_http_hedges_total', {
        dst_service: 'p95',
        route: 'p95-route',
        outcome: 'won',
      }),
    ).toBe(1);
  });

  it('a POST is never hedged: one try, answered by the slow endpoint', async () => {
    const before = await metric('weft_http_hedges_total', { dst_service: 'hedged' });
    const path = '/first-slow/post/300/x';
    const r = await call('hedged', 'POST', path, 'once');
    expect(r.status).toBe(200);
    const tries = triesOf(path);
    expect(tries).toHaveLength(1);
    expect(r.node).toBe(tries[0]!.node);
    expect(await metric('weft_http_hedges_total', { dst_service: 'hedged' })).toBe(before);
  });

  it('no hedge when the budget is spent: one try, and the hedge counted as denied', async () => {
    const path = '/first-slow/broke/300/x';
    const r = await call('broke', 'GET', path);
    expect(r.status).toBe(200);
    const tries = triesOf(path);
    expect(tries).toHaveLength(1);
    expect(r.node).toBe(tries[0]!.node);
    const labels = { dst_service: 'broke', route: 'broke-route' };
    expect(await metric('weft_http_hedges_total', { ...labels, outcome: 'denied' })).toBe(1);
    expect(await metric('weft_http_hedges_total', { ...labels, outcome: 'won' })).toBe(0);
  });
});

type UnaryCall = (
  req: unknown,
  opts: { deadline: number },
  cb: (err: Error | null, reply: { node: string }) => void,
) => void;

describe('hedging a GRPCRoute rule', () => {
  it("a call is hedged: the client gets the hedge's reply, the slow try is cancelled", async () => {
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
    const client = new Client(`127.0.0.1:${ports['echo-grpc']}`, grpc.credentials.createInsecure());
    const reply = await new Promise<{ node: string }>((resolve, reject) =>
      (client as unknown as { unary: UnaryCall }).unary(
        { text: 'hi' },
        { deadline: Date.now() + 10_000 },
        (err, r) => (err ? reject(err) : resolve(r)),
      ),
    );
    client.close();
    const tries = triesOf('/weft.test.Echo/Unary');
    expect(tries).toHaveLength(2);
    expect(reply.node).toBe(tries[1]!.node);
    expect(tries[1]!.node).not.toBe(tries[0]!.node);
    await waitFor('the slow try reset at its backend', () => tries[0]!.reset);
    expect(
      await metric('weft_http_hedges_total', {
        dst_service: 'echo-grpc',
        route: 'grpc-hedged',
        outcome: 'won',
      }),
    ).toBe(1);
  });
});
