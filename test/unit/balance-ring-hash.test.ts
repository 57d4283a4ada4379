// Consistent hashing (ringHash): the same key keeps its endpoint, a change of the endpoint set
// moves only the keys it must, weights hold, and the key comes from the request per hashOn.
import { describe, expect, it } from 'vitest';
import type { HashOn } from '../../src/proxy/balance/balancer.js';
import { EndpointPool } from '../../src/proxy/balance/endpoint-pool.js';
import type { EndpointState } from '../../src/proxy/balance/endpoint-state.js';
import type { HashSource } from '../../src/proxy/balance/hash-key.js';
import { MeshState } from '../../src/proxy/mesh-state.js';
import { computedTraffic } from '../../src/proxy/traffic-policies.js';
import { ep, outlier, seededRandom } from '../helpers/balance.js';
import { serviceDoc, viewOf, workloadDoc } from '../helpers/mesh-views.js';

const KEYS = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);
const names = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `ep-${from + i}`);

function ringPool(endpoints: string[], weights: Record<string, number> = {}): EndpointPool {
  const pool = new EndpointPool('echo', 'ringHash', undefined, () => 0, seededRandom(1));
  pool.update(
    endpoints.map((n) => ep(n, { weight: weights[n] ?? 1 })),
    'ringHash',
  );
  return pool;
}

function mapKeys(
  pool: EndpointPool,
  exclude?: ReadonlySet<EndpointState>,
  keys = KEYS,
): Map<string, string> {
  return new Map(keys.map((k) => [k, pool.pick(exclude, { request: true, hashKey: k })!.key]));
}

function moved(before: Map<string, string>, after: Map<string, string>): string[] {
  return KEYS.filter((k) => before.get(k) !== after.get(k));
}

describe('ringHash', () => {
  it('maps the same key to the same endpoint, in this pool and in another agent’s', () => {
    const one = ringPool(names(5));
    const other = ringPool(names(5));
    const first = mapKeys(one);
    // Asked again, in another order, by another pool: the same answers.
    expect(mapKeys(one, undefined, [...KEYS].reverse())).toEqual(first);
    other.pick(undefined, { request: true, hashKey: 'one more' });
    expect(mapKeys(other, undefined, KEYS.slice(1))).toEqual(
      new Map([...first].filter(([k]) => k !== KEYS[0])),
    );
    expect(new Set(first.values())).toEqual(new Set(names(5)));
  });

  it.each([3, 5, 10])(
    'removing one of %s endpoints moves about 1/N of the keys, and only its own',
    (n) => {
      const before = mapKeys(ringPool(names(n)));
      for (const gone of names(n)) {
        const pool = ringPool(names(n).filter((e) => e !== gone));
        const m = moved(before, mapKeys(pool));
        expect(m.length / KEYS.length).toBeLessThan(1 / n + 0.05);
        expect(m.every((k) => before.get(k) === gone)).toBe(true);
        expect(KEYS.filter((k) => before.get(k) === gone)).toEqual(m);
      }
    },
  );

  it.each([3, 5, 10])('adding one to %s endpoints moves about 1/(N+1), all to it', (n) => {
    const before = mapKeys(ringPool(names(n)));
    const after = mapKeys(ringPool(names(n + 1)));
    const m = moved(before, after);
    expect(m.length / KEYS.length).toBeLessThan(1 / (n + 1) + 0.05);
    expect(m.length / KEYS.length).toBeGreaterThan(1 / (n + 1) - 0.05);
    expect(m.every((k) => after.get(k) === `ep-${n}`)).toBe(true);
  });

  it('sends the keys of an excluded or ejected endpoint to the next point, moving no other key', () => {
    let now = 0;
    const pool = new EndpointPool('echo', 'ringHash', outlier(), () => now, seededRandom(1));
    pool.update(
      names(5).map((n) => ep(n)),
      'ringHash',
    );
    const before = mapKeys(pool);
    const ep2 = pool.find((s) => s.key === 'ep-2')!;
    // Excluded (already tried for this request):
    const excluded = mapKeys(pool, new Set([ep2]));
    expect(moved(before, excluded)).toEqual(KEYS.filter((k) => before.get(k) === 'ep-2'));
    // Ejected: the same keys move, to the same places; unhealthy likewise.
    ep2.failed(now);
    expect(mapKeys(pool)).toEqual(excluded);
    now = 1000;
    pool.find((s) => s === ep2); // its probe
    ep2.succeeded();
    expect(mapKeys(pool)).toEqual(before);
    pool.update(
      names(5).map((n) => ep(n, n === 'ep-2' ? { health: 'unhealthy' } : {})),
      'ringHash',
    );
    expect(mapKeys(pool)).toEqual(excluded);
  });

  it.each([
    { weights: { 'ep-0': 3, 'ep-1': 1 }, heavy: 'ep-0', expected: 0.75 },
    { weights: { 'ep-0': 1, 'ep-1': 4 }, heavy: 'ep-1', expected: 0.8 },
    { weights: { 'ep-0': 500, 'ep-1': 1000 }, heavy: 'ep-1', expected: 2 / 3 },
  ])('respects weights $weights', ({ weights, heavy, expected }) => {
    const mapping = mapKeys(ringPool(names(2), weights));
    const got = [...mapping.values()].filter((k) => k === heavy).length / KEYS.length;
    expect(got).toBeGreaterThan(expected - 0.05);
    expect(got).toBeLessThan(expected + 0.05);
  });

  it('picks at random when the request has no key', () => {
    const pool = ringPool(names(3));
    for (const hashKey of [undefined, '']) {
      const seen = new Set<string>();
      for (let i = 0; i < 100; i++) seen.add(pool.pick(undefined, { request: true, hashKey })!.key);
      expect(seen).toEqual(new Set(names(3)));
    }
  });
});

describe('the ring-hash key of a request (hashOn)', () => {
  const headers = { 'x-user': 'alice', cookie: 'theme=dark; session=s-42' };
  it.each<{ hashOn: HashOn | undefined; source: HashSource; key: string | undefined }>([
    { hashOn: undefined, source: { headers, sourceIp: '10.1.0.7' }, key: '10.1.0.7' },
    { hashOn: {}, source: { headers, sourceIp: '::ffff:10.1.0.7' }, key: '10.1.0.7' },
    { hashOn: { sourceIp: true }, source: { headers, sourceIp: '10.1.0.7' }, key: '10.1.0.7' },
    { hashOn: { header: 'x-user' }, source: { headers, sourceIp: '10.1.0.7' }, key: 'alice' },
    { hashOn: { header: 'X-User' }, source: { headers, sourceIp: '10.1.0.7' }, key: 'alice' },
    { hashOn: { header: 'x-user' }, source: { headers: {}, sourceIp: '10.1.0.7' }, key: undefined },
    {
      hashOn: { header: 'x-user', sourceIp: true },
      source: { headers: {}, sourceIp: '10.1.0.7' },
      key: '10.1.0.7',
    },
    {
      hashOn: { header: 'Host' },
      source: { headers, authority: 'echo.mesh:80' },
      key: 'echo.mesh:80',
    },
    { hashOn: { header: 'x-multi' }, source: { headers: { 'x-multi': ['a', 'b'] } }, key: 'a,b' },
    { hashOn: { cookie: 'session' }, source: { headers, sourceIp: '10.1.0.7' }, key: 's-42' },
    {
      hashOn: { cookie: 'session' },
      source: { headers: { cookie: ['a=1', 'session="q 1"'] } },
      key: 'q 1',
    },
    { hashOn: { cookie: 'missing' }, source: { headers, sourceIp: '10.1.0.7' }, key: undefined },
    { hashOn: { cookie: 'session' }, source: { sourceIp: '10.1.0.7' }, key: undefined },
    {
      hashOn: { header: 'x-none', cookie: 'session' },
      source: { headers, sourceIp: '10.1.0.7' },
      key: 's-42',
    },
  ])('hashOn $hashOn gives $key', ({ hashOn, source, key }) => {
    const pool = new EndpointPool('echo', { type: 'ringHash', hashOn });
    expect(pool.hashKey(source)).toBe(key);
  });

  it('is not computed for other balancers', () => {
    const pool = new EndpointPool('echo', 'p2cEwma');
    expect(pool.hashKey({ headers: {}, sourceIp: '10.1.0.7' })).toBeUndefined();
  });

  it("reaches the pool from the service's TrafficPolicy", () => {
    const state = new MeshState('node1', computedTraffic());
    state.update(
      viewOf([
        serviceDoc('echo', '240.240.0.2', [{ port: 80, targetPort: 8080 }]),
        workloadDoc('node1', 'echo', '10.0.0.1', 8080),
        workloadDoc('node2', 'echo', '10.0.0.2', 8080),
        {
          apiVersion: 'weft/v1',
          kind: 'TrafficPolicy',
          metadata: { name: 'tp' },
          spec: {
            targetRef: { name: 'echo' },
            balancer: { type: 'ringHash', hashOn: { header: 'x-user' } },
          },
        },
      ]),
    );
    const pool = state.pool('echo', 80)!;
    const key = pool.hashKey({ headers: { 'x-user': 'bob' }, sourceIp: '10.9.9.9' });
    expect(key).toBe('bob');
    const first = pool.pick(undefined, { request: true, hashKey: key })!.key;
    for (let i = 0; i < 20; i++) {
      expect(pool.pick(undefined, { request: true, hashKey: key })!.key).toBe(first);
    }
  });
});
