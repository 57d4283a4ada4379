// The route stage's pure decisions, table-style: which rule a request matches (Gateway API
// precedence across routes: exact path > regex > longest prefix > method > most headers >
// most query params; ties by age, then name), hostnames, gRPC service/method matches, weighted
// splits over many seeded draws, fault shares, redirects and rewrites.
import { describe, expect, it } from 'vitest';
import { MeshState } from '../../src/proxy/mesh-state.js';
import type { ServiceTarget } from '../../src/proxy/outbound/opaque.js';
import { chance, decideRoute, type RouteDecision } from '../../src/proxy/routing/route-decision.js';
import { modifyHeaders } from '../../src/proxy/routing/route-headers.js';
import { hostOf } from '../../src/proxy/routing/route-match.js';
import { modifyPath, redirectLocation, replacePrefix } from '../../src/proxy/routing/route-path.js';
import { pickBackend } from '../../src/proxy/routing/route-split.js';
import type { PortRoutes } from '../../src/proxy/routing/route-table.js';
import { computedTraffic } from '../../src/proxy/traffic-policies.js';
import { serviceDoc, viewOf } from '../helpers/mesh-views.js';
import { seeded } from '../helpers/seeded-random.js';

const services = [
  serviceDoc('web', '240.240.0.1', [
    { port: 80, targetPort: 8080, protocol: 'http' },
    { port: 81, targetPort: 8081, protocol: 'http' },
  ]),
  serviceDoc('web-v2', '240.240.0.2', [{ port: 80, targetPort: 8080, protocol: 'http' }]),
  serviceDoc('web-v3', '240.240.0.3', [{ port: 80, targetPort: 8080, protocol: 'http' }]),
  serviceDoc('shadow', '240.240.0.4', [{ port: 80, targetPort: 8080, protocol: 'http' }]),
];

function route(name: string, spec: Record<string, unknown>, createdAt?: string) {
  return {
    apiVersion: 'weft/v1',
    kind: 'HTTPRoute',
    metadata: { name },
    spec: { parentRefs: [{ name: 'web' }], ...spec },
    ...(createdAt ? { status: { createdAt } } : {}),
  };
}

function grpcRoute(name: string, spec: Record<string, unknown>) {
  return {
    apiVersion: 'weft/v1',
    kind: 'GRPCRoute',
    metadata: { name },
    spec: { parentRefs: [{ name: 'web' }], ...spec },
  };
}

/** A rule whose backend is named after the route, so the winner can be read off the target. */
const to = (backend: string, matches: unknown[]) => ({
  matches,
  backendRefs: [{ name: backend }],
});

function tableOf(docs: Record<string, unknown>[], port = 80): PortRoutes | undefined {
  const state = new MeshState('node-a', computedTraffic());
  state.update(viewOf([...services, ...docs]));
  return state.routeTable('web')?.get(port);
}

function parentOf(state: MeshState, port = 80): ServiceTarget {
  const servicePort = state.view!.services.get('web')!.ports.find((p) => p.port === port)!;
  return { service: 'web', port: servicePort, via: 'vip' };
}

/** One snapshot per list of documents (the many-draw tests reuse it). */
const states = new WeakMap<object, MeshState>();

function decide(
  docs: Record<string, unknown>[],
  req: { method?: string; path: string; authority?: string; headers?: Record<string, string> },
  opts: { grpc?: boolean; random?: () => number; port?: number } = {},
): RouteDecision | undefined {
  let state = states.get(docs);
  if (state === undefined) {
    state = new MeshState('node-a', computedTraffic());
    state.update(viewOf([...services, ...docs]));
    states.set(docs, state);
  }
  const routes = state.routeTable('web')?.get(opts.port ?? 80);
  if (routes === undefined) return undefined;
  return decideRoute(
    routes,
    {
      method: req.method ?? 'GET',
      path: req.path,
      authority: req.authority ?? 'web.mesh',
      headers: req.headers ?? {},
    },
    opts.grpc ?? false,
    parentOf(state, opts.port ?? 80),
    opts.random ?? (() => 0.5),
  );
}

/** "route/backend" of a decision; "default" when nothing matched. */
function outcome(d: RouteDecision | undefined): string {
  if (d === undefined) return 'default';
  return d.kind === 'forward' ? `${d.route}/${d.target.service}` : `${d.route}/${d.kind}`;
}

describe('HTTPRoute matching and precedence', () => {
  const docs = [
    route('a-prefix', {
      rules: [
        to('web-v2', [{ path: { type: 'PathPrefix', value: '/api' } }]),
        to('web-v3', [{ path: { type: 'PathPrefix', value: '/api/v1/' } }]),
        to('shadow', [{ path: { type: 'Exact', value: '/api/v1/exact' } }]),
      ],
    }),
    route('b-method', {
      rules: [
        to('web-v3', [{ path: { type: 'PathPrefix', value: '/api' }, method: 'POST' }]),
        to('shadow', [
          {
            path: { type: 'PathPrefix', value: '/api' },
            headers: [{ name: 'X-Canary', value: '1' }],
          },
        ]),
        to('web-v3', [
          {
            path: { type: 'PathPrefix', value: '/api' },
            queryParams: [{ name: 'v', type: 'RegularExpression', value: '2|3' }],
          },
        ]),
        to('web-v2', [{ path: { type: 'RegularExpression', value: '/items/[0-9]+' } }]),
      ],
    }),
  ];
  const table: Array<[string, Parameters<typeof decide>[1], string]> = [
    ['no rule matches: the Service itself', { path: '/other' }, 'default'],
    ['a prefix matches whole segments only', { path: '/apiary' }, 'default'],
    ['a prefix matches itself', { path: '/api' }, 'a-prefix/web-v2'],
    ['the query is not part of the path', { path: '/api?x=1' }, 'a-prefix/web-v2'],
    [
      'the longest prefix wins (its trailing slash ignored)',
      { path: '/api/v1/x' },
      'a-prefix/web-v3',
    ],
    ['an exact path beats every prefix', { path: '/api/v1/exact' }, 'a-prefix/shadow'],
    [
      'an exact path does not match a longer one',
      { path: '/api/v1/exact/more' },
      'a-prefix/web-v3',
    ],
    [
      'a method match beats headers (same prefix)',
      { method: 'POST', path: '/api/x', headers: { 'x-canary': '1' } },
      'b-method/web-v3',
    ],
    [
      'a header match (any case of its name)',
      { path: '/api/x', headers: { 'x-canary': '1' } },
      'b-method/shadow',
    ],
    [
      'a header value must be exact',
      { path: '/api/x', headers: { 'x-canary': '10' } },
      'a-prefix/web-v2',
    ],
    ['a query match (regex, whole value)', { path: '/api/x?v=3' }, 'b-method/web-v3'],
    ['a query regex matches the whole value', { path: '/api/x?v=33' }, 'a-prefix/web-v2'],
    ['a path regex matches the whole path', { path: '/items/42' }, 'b-method/web-v2'],
    ['a path regex does not match a part', { path: '/items/42/x' }, 'default'],
  ];
  for (const [what, req, want] of table) {
    it(what, () => expect(outcome(decide(docs, req))).toBe(want));
  }

  it('an Exact path beats a regex, which beats a prefix', () => {
    const docs3 = [
      route('r', {
        rules: [
          to('web-v2', [{ path: { type: 'PathPrefix', value: '/a' } }]),
          to('web-v3', [{ path: { type: 'RegularExpression', value: '/a/.*' } }]),
          to('shadow', [{ path: { type: 'Exact', value: '/a/b' } }]),
        ],
      }),
    ];
    expect(outcome(decide(docs3, { path: '/a/b' }))).toBe('r/shadow');
    expect(outcome(decide(docs3, { path: '/a/c' }))).toBe('r/web-v3');
    expect(outcome(decide(docs3, { path: '/a' }))).toBe('r/web-v2');
  });

  it('ties go to the oldest route, then to the first name', () => {
    const same = (name: string, backend: string, createdAt?: string) =>
      route(
        name,
        { rules: [to(backend, [{ path: { type: 'PathPrefix', value: '/x' } }])] },
        createdAt,
      );
    expect(
      outcome(
        decide(
          [
            same('aaa', 'web-v2', '2025-01-02T00:00:00.000Z'),
            same('zzz', 'web-v3', '2025-01-01T00:00:00.000Z'),
          ],
          { path: '/x' },
        ),
      ),
    ).toBe('zzz/web-v3');
    expect(outcome(decide([same('zzz', 'web-v3'), same('aaa', 'web-v2')], { path: '/x' }))).toBe(
      'aaa/web-v2',
    );
  });

  it('a rule without matches takes every request; one without backendRefs goes to its parent', () => {
    const d = decide([route('all', { rules: [{}] })], { path: '/anything' });
    expect(outcome(d)).toBe('all/web');
  });

  it('parentRefs[].port restricts a route to one service port', () => {
    const docs2 = [
      {
        ...route('only-81', { rules: [to('web-v2', [])] }),
        spec: {
          parentRefs: [{ name: 'web', port: 81 }],
          rules: [{ backendRefs: [{ name: 'web-v2', port: 80 }] }],
        },
      },
    ];
    expect(tableOf(docs2, 80)).toBeUndefined();
    expect(outcome(decide(docs2, { path: '/' }, { port: 81 }))).toBe('only-81/web-v2');
  });

  it('a backend port defaults to the port the client called', () => {
    const d = decide([route('r', { rules: [to('web-v2', [])] })], { path: '/' });
    expect(d?.kind === 'forward' && d.target.port.port).toBe(80);
    // web-v2 has no port 81: that share is a 500, not a silent fallback.
    const on81 = decide([route('r', { rules: [to('web-v2', [])] })], { path: '/' }, { port: 81 });
    expect(on81?.kind).toBe('unavailable');
  });

  it('a service without routes has no table', () => {
    expect(tableOf([])).toBeUndefined();
  });
});

describe('hostnames', () => {
  const docs = [
    route('any', { rules: [to('web-v2', [])] }),
    route('wild', { hostnames: ['*.example.com'], rules: [to('web-v3', [])] }),
    route('exact', { hostnames: ['api.example.com'], rules: [to('shadow', [])] }),
  ];
  const table: Array<[string, string]> = [
    ['api.example.com', 'exact/shadow'],
    ['API.example.com:8080', 'exact/shadow'],
    ['www.example.com', 'wild/web-v3'],
    ['a.b.example.com', 'wild/web-v3'],
    ['example.com', 'any/web-v2'],
    ['web.mesh', 'any/web-v2'],
  ];
  for (const [authority, want] of table) {
    it(`${authority} -> ${want}`, () =>
      expect(outcome(decide(docs, { path: '/', authority }))).toBe(want));
  }
  it('a route whose hostnames do not match is skipped', () => {
    expect(outcome(decide([docs[2]!], { path: '/', authority: 'web.mesh' }))).toBe('default');
  });
  it('hostOf strips the port and brackets', () => {
    expect(hostOf('[::1]:80')).toBe('::1');
    expect(hostOf('Web.Mesh.:80')).toBe('web.mesh');
    expect(hostOf('web.mesh')).toBe('web.mesh');
  });
});

describe('GRPCRoute', () => {
  const docs = [
    grpcRoute('g', {
      rules: [
        { matches: [{ method: { service: 'pkg.Greeter' } }], backendRefs: [{ name: 'web-v2' }] },
        {
          matches: [{ method: { service: 'pkg.Greeter', method: 'Hello' } }],
          backendRefs: [{ name: 'web-v3' }],
        },
        {
          matches: [
            { method: { type: 'RegularExpression', service: 'pkg\\..*', method: 'Bye.*' } },
          ],
          backendRefs: [{ name: 'shadow' }],
        },
      ],
    }),
    route('h', { rules: [to('web-v2', [{ path: { type: 'PathPrefix', value: '/other.Svc' } }])] }),
  ];
  const table: Array<[string, string]> = [
    ['/pkg.Greeter/Hello', 'g/web-v3'],
    ['/pkg.Greeter/Other', 'g/web-v2'],
    ['/pkg.Other/ByeNow', 'g/shadow'],
    ['/other.Svc/Call', 'default'],
  ];
  for (const [path, want] of table) {
    it(`${path} -> ${want}`, () =>
      expect(outcome(decide(docs, { method: 'POST', path }, { grpc: true }))).toBe(want));
  }
  it('gRPC calls to a port without GRPCRoutes meet its HTTPRoutes', () => {
    expect(
      outcome(decide([docs[1]!], { method: 'POST', path: '/other.Svc/Call' }, { grpc: true })),
    ).toBe('h/web-v2');
  });
  it('non-gRPC requests never meet GRPCRoutes', () => {
    expect(outcome(decide([docs[0]!], { method: 'POST', path: '/pkg.Greeter/Hello' }))).toBe(
      'default',
    );
  });
});

describe('weighted backends', () => {
  const split = route('canary', {
    rules: [
      {
        backendRefs: [
          { name: 'web', weight: 90 },
          { name: 'web-v2', weight: 10 },
        ],
      },
    ],
  });
  it('90/10 over 10,000 seeded draws lands within 2 points', () => {
    const random = seeded(13);
    const docs = [split];
    const counts: Record<string, number> = {};
    for (let i = 0; i < 10_000; i++) {
      const d = decide(docs, { path: '/' }, { random });
      const key = outcome(d);
      counts[key] = (counts[key] ?? 0) + 1;
    }
    expect(Math.abs((counts['canary/web']! / 10_000) * 100 - 90)).toBeLessThanOrEqual(2);
    expect(Math.abs((counts['canary/web-v2']! / 10_000) * 100 - 10)).toBeLessThanOrEqual(2);
  });
  it('the split function maps draws to backends by weight', () => {
    const b = [
      { weight: 90, target: { service: 'a' } },
      { weight: 10, target: { service: 'b' } },
    ] as unknown as Parameters<typeof pickBackend>[0];
    const table: Array<[number, string]> = [
      [0, 'a'],
      [0.8999, 'a'],
      [0.9, 'b'],
      [0.99999, 'b'],
    ];
    for (const [draw, want] of table)
      expect(pickBackend(b, 100, () => draw)?.target?.service).toBe(want);
    expect(pickBackend([], 0, () => 0)).toBeUndefined();
  });
  it('weight 0 gets nothing; all weights 0 is a 500', () => {
    const zero = route('z', {
      rules: [
        {
          backendRefs: [
            { name: 'web-v2', weight: 0 },
            { name: 'web-v3', weight: 1 },
          ],
        },
      ],
    });
    for (const draw of [0, 0.5, 0.999])
      expect(outcome(decide([zero], { path: '/' }, { random: () => draw }))).toBe('z/web-v3');
    const none = route('n', { rules: [{ backendRefs: [{ name: 'web-v2', weight: 0 }] }] });
    expect(outcome(decide([none], { path: '/' }))).toBe('n/unavailable');
  });
  it('a backend that is not a Service is a 500 for its share', () => {
    const missing = route('m', { rules: [{ backendRefs: [{ name: 'nowhere' }] }] });
    const d = decide([missing], { path: '/' });
    expect(d?.kind === 'unavailable' && d.detail).toBe(
      'route m: backend nowhere:80 is not a Service port',
    );
  });
});

describe('fault injection', () => {
  const fault = (f: Record<string, unknown>) =>
    route('f', { rules: [{ filters: [{ type: 'Fault', fault: f }] }] });
  it('aborts the configured share of 10,000 seeded draws (within 2 points)', () => {
    const random = seeded(7);
    let aborted = 0;
    for (let i = 0; i < 10_000; i++) {
      const d = decide(
        [fault({ abort: { httpStatus: 503, percentage: 25 } })],
        { path: '/' },
        { random },
      );
      if (d?.kind === 'abort') aborted += 1;
    }
    expect(Math.abs(aborted / 100 - 25)).toBeLessThanOrEqual(2);
  });
  it('delays the configured share, by its fixed delay', () => {
    const random = seeded(8);
    let delayed = 0;
    for (let i = 0; i < 10_000; i++) {
      const d = decide(
        [fault({ delay: { fixedDelay: '250ms', percentage: 40 } })],
        { path: '/' },
        { random },
      );
      if (d!.delayMs === 250) delayed += 1;
      else expect(d!.delayMs).toBe(0);
    }
    expect(Math.abs(delayed / 100 - 40)).toBeLessThanOrEqual(2);
  });
  it('a gRPC abort carries its status', () => {
    const d = decide([fault({ abort: { grpcStatus: 14 } })], { path: '/' });
    expect(d).toMatchObject({ kind: 'abort', grpcStatus: 14 });
  });
  it('chance: 0 never, 100 always, no draw needed', () => {
    const never = () => {
      throw new Error('drew');
    };
    expect(chance(0, never)).toBe(false);
    expect(chance(100, never)).toBe(true);
  });
});

describe('redirects and rewrites', () => {
  const redirect = (
    r: Record<string, unknown>,
    match = { path: { type: 'PathPrefix', value: '/old' } },
  ) =>
    route('r', {
      rules: [{ matches: [match], filters: [{ type: 'RequestRedirect', requestRedirect: r }] }],
    });
  const table: Array<[string, Record<string, unknown>, string, number, string]> = [
    [
      'defaults: 302, same host, the port called',
      {},
      '/old/x?q=1',
      302,
      'http://web.mesh/old/x?q=1',
    ],
    [
      'a scheme takes its own port',
      { scheme: 'https', statusCode: 301 },
      '/old',
      301,
      'https://web.mesh/old',
    ],
    [
      'hostname and port',
      { hostname: 'new.example.com', port: 8443 },
      '/old',
      302,
      'http://new.example.com:8443/old',
    ],
    [
      'ReplacePrefixMatch',
      { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' }, statusCode: 308 },
      '/old/a/b?x=y',
      308,
      'http://web.mesh/new/a/b?x=y',
    ],
    [
      'ReplaceFullPath',
      { path: { type: 'ReplaceFullPath', replaceFullPath: '/gone' } },
      '/old/a',
      302,
      'http://web.mesh/gone',
    ],
  ];
  for (const [what, r, path, status, location] of table) {
    it(what, () => {
      expect(decide([redirect(r)], { path })).toMatchObject({ kind: 'redirect', status, location });
    });
  }
  it('the port the client called (81) is kept', () => {
    const d = decide(
      [
        {
          ...redirect({}),
          spec: { ...redirect({}).spec, parentRefs: [{ name: 'web', port: 81 }] },
        },
      ],
      { path: '/old' },
      { port: 81 },
    );
    expect(d).toMatchObject({ kind: 'redirect', location: 'http://web.mesh:81/old' });
  });
  const prefixes: Array<[string, string, string, string]> = [
    ['/foo/bar', '/foo', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo', '/', '/bar'],
    ['/foo', '/foo', '/', '/'],
    ['/foo', '/foo', '/xyz/', '/xyz/'],
    ['/foo/bar', '/foo', '/xyz/', '/xyz/bar'],
    ['/x', '/', '/pre', '/pre/x'],
  ];
  for (const [path, prefix, replacement, want] of prefixes) {
    it(`replacePrefix(${path}, ${prefix} -> ${replacement}) = ${want}`, () =>
      expect(replacePrefix(path, prefix, replacement)).toBe(want));
  }
  it('modifyPath keeps the query', () => {
    expect(
      modifyPath(
        '/foo/a?b=c',
        { type: 'ReplacePrefixMatch', value: '/v2' },
        { type: 'PathPrefix', value: '/foo' },
      ),
    ).toBe('/v2/a?b=c');
    expect(redirectLocation({ scheme: 'http', host: '::1', port: 8080, pathAndQuery: '/' })).toBe(
      'http://[::1]:8080/',
    );
  });
});

describe('header modifiers', () => {
  it('set replaces, add appends, remove drops (names without case)', () => {
    const headers = modifyHeaders(
      { 'x-a': '1', 'x-b': '2', 'x-c': '3' },
      {
        set: [['x-a', 'one']],
        add: [
          ['x-b', 'two'],
          ['x-new', 'n'],
        ],
        remove: ['x-c'],
      },
    );
    expect(headers).toEqual({ 'x-a': 'one', 'x-b': ['2', 'two'], 'x-new': 'n' });
  });
});
