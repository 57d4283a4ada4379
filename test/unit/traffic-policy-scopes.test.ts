// TrafficPolicy scopes: a Mesh policy's values are every service's defaults, a Service policy
// overrides them field by field (RFC 7386 merge patch of the documents as written: objects key
// by key, lists and values whole, null removes), and schema defaults are filled in only after
// the merge, so they never hide a value the Mesh's policy sets.
import { describe, expect, it } from 'vitest';
import {
  describeSource,
  effectivePolicies,
  effectivePolicy,
  mergePatch,
  parseResources,
  policyScopes,
  type ScopedPolicy,
  scopedPolicy,
} from '../../src/api/resources/index.js';
import { isWeftError } from '../../src/errors.js';
import { MeshState } from '../../src/proxy/mesh-state.js';
import { computedTraffic } from '../../src/proxy/traffic-policies.js';
import { serviceDoc, viewOf, workloadDoc } from '../helpers/mesh-views.js';

const doc = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'weft/v1',
  kind: 'TrafficPolicy',
  metadata: { name },
  spec,
});
const meshPolicy = (fields: Record<string, unknown>): ScopedPolicy =>
  scopedPolicy('defaults', doc('defaults', { targetRef: { kind: 'Mesh' }, ...fields }))!;
const servicePolicy = (fields: Record<string, unknown>): ScopedPolicy =>
  scopedPolicy('orders-tp', doc('orders-tp', { targetRef: { name: 'orders' }, ...fields }))!;

const MESH = 'Mesh (TrafficPolicy/defaults)';
const SERVICE = 'Service (TrafficPolicy/orders-tp)';

describe('mergePatch (RFC 7386)', () => {
  const table: Array<[string, unknown, unknown, unknown]> = [
    [
      'objects merge key by key',
      { a: 1, b: { c: 2, d: 3 } },
      { b: { d: 4 } },
      { a: 1, b: { c: 2, d: 4 } },
    ],
    [
      'a list replaces the list whole',
      { on: ['5xx', 'reset'] },
      { on: ['reset'] },
      { on: ['reset'] },
    ],
    ['null removes', { a: { b: 1, c: 2 } }, { a: { b: null } }, { a: { c: 2 } }],
    ['a value replaces an object', { a: { b: 1 } }, { a: 2 }, { a: 2 }],
    ['an object replaces a value', { a: 2 }, { a: { b: 1 } }, { a: { b: 1 } }],
    ['nothing to remove', {}, { a: null }, {}],
  ];
  for (const [name, target, patch, want] of table)
    it(name, () => expect(mergePatch(target, patch)).toEqual(want));

  it('changes neither input', () => {
    const target = { a: { b: 1 } };
    mergePatch(target, { a: { b: 2 } });
    expect(target).toEqual({ a: { b: 1 } });
  });
});

describe('effectivePolicy: the Service policy over the Mesh policy, then defaults', () => {
  const table: Array<{
    name: string;
    mesh?: Record<string, unknown>;
    service?: Record<string, unknown>;
    /** Values of the effective spec, by path. */
    want: Record<string, unknown>;
    /** Sources, by path. */
    from: Record<string, string>;
  }> = [
    {
      name: 'a Mesh policy alone: its values, then the defaults',
      mesh: { retries: { attempts: 3 } },
      want: { 'retries.attempts': 3, 'retries.backoff.base': '25ms', timeouts: undefined },
      from: {
        'retries.attempts': MESH,
        'retries.on': 'default',
        'retries.backoff.base': 'default',
      },
    },
    {
      name: 'the Service sets retries.attempts only: the rest of retries comes from the Mesh',
      mesh: {
        retries: { attempts: 1, on: ['5xx'], backoff: { max: '1s' }, budget: { percent: 50 } },
      },
      service: { retries: { attempts: 4 } },
      want: {
        'retries.attempts': 4,
        'retries.on': ['5xx'],
        'retries.backoff.base': '25ms',
        'retries.backoff.max': '1s',
        'retries.budget.percent': 50,
        'retries.budget.minPerSecond': 10,
      },
      from: {
        'retries.attempts': SERVICE,
        'retries.on': MESH,
        'retries.backoff.base': 'default',
        'retries.backoff.max': MESH,
        'retries.budget.percent': MESH,
        'retries.budget.minPerSecond': 'default',
      },
    },
    {
      name: "a default filled in for the Service's retries never overrides the Mesh's value",
      mesh: { retries: { on: ['reset'] }, circuitBreaker: { maxRequests: 10 } },
      service: { retries: { perTryTimeout: '2s' }, circuitBreaker: { maxConnections: 5 } },
      want: {
        'retries.on': ['reset'],
        'retries.attempts': 1,
        'retries.perTryTimeout': '2s',
        'circuitBreaker.maxRequests': 10,
        'circuitBreaker.maxConnections': 5,
        'circuitBreaker.maxPendingRequests': 1024,
      },
      from: {
        'retries.on': MESH,
        'retries.attempts': 'default',
        'retries.perTryTimeout': SERVICE,
        'circuitBreaker.maxRequests': MESH,
        'circuitBreaker.maxConnections': SERVICE,
        'circuitBreaker.maxPendingRequests': 'default',
      },
    },
    {
      name: 'a list is replaced whole, not merged',
      mesh: { retries: { on: ['5xx', 'reset'] } },
      service: { retries: { on: ['gateway-error'] } },
      want: { 'retries.on': ['gateway-error'] },
      from: { 'retries.on': SERVICE },
    },
    {
      name: 'sections set by one scope each are all kept',
      mesh: { timeouts: { request: '5s' }, balancer: { type: 'leastConnections' } },
      service: { timeouts: { connect: '1s' }, healthCheck: {} },
      want: {
        'timeouts.request': '5s',
        'timeouts.connect': '1s',
        'balancer.type': 'leastConnections',
        'healthCheck.interval': '5s',
      },
      from: {
        'timeouts.request': MESH,
        'timeouts.connect': SERVICE,
        'balancer.type': MESH,
        'healthCheck.interval': 'default',
      },
    },
    {
      name: "null removes an inherited value: a Mesh's ringHash hashOn under a Service's roundRobin",
      mesh: { balancer: { type: 'ringHash', hashOn: { header: 'x-user' } } },
      service: { balancer: { type: 'roundRobin', hashOn: null } },
      want: { balancer: { type: 'roundRobin' } },
      from: { 'balancer.type': SERVICE },
    },
    {
      name: 'null removes a whole section: no health check for this service (and HTTP -> TCP check)',
      mesh: { healthCheck: { http: { path: '/health' } }, timeouts: { idle: '1m' } },
      service: { healthCheck: null },
      want: { healthCheck: undefined, 'timeouts.idle': '1m' },
      from: { 'timeouts.idle': MESH },
    },
    {
      name: "nested objects merge too: the Service's http path, the Mesh's expected statuses",
      mesh: {
        healthCheck: { interval: '10s', http: { path: '/health', expectedStatuses: [200] } },
      },
      service: { healthCheck: { http: { path: '/ready' } } },
      want: {
        'healthCheck.interval': '10s',
        'healthCheck.http.path': '/ready',
        'healthCheck.http.expectedStatuses': [200],
      },
      from: {
        'healthCheck.interval': MESH,
        'healthCheck.http.path': SERVICE,
        'healthCheck.http.expectedStatuses': MESH,
      },
    },
    {
      name: "adaptiveConcurrency: the Service overrides one field and its qos relies on the Mesh's limit",
      mesh: { adaptiveConcurrency: { maxConcurrency: 200, minRtt: { interval: '30s' } } },
      service: {
        adaptiveConcurrency: { minConcurrency: 5 },
        qos: { classes: { critical: ['checkout'] } },
      },
      want: {
        'adaptiveConcurrency.minConcurrency': 5,
        'adaptiveConcurrency.maxConcurrency': 200,
        'adaptiveConcurrency.sampleWindow': '100ms',
        'adaptiveConcurrency.minRtt.interval': '30s',
        'adaptiveConcurrency.minRtt.requests': 50,
        'qos.classes.critical': ['checkout'],
        'qos.limitPercent.standard': 80,
      },
      from: {
        'adaptiveConcurrency.minConcurrency': SERVICE,
        'adaptiveConcurrency.maxConcurrency': MESH,
        'adaptiveConcurrency.sampleWindow': 'default',
        'adaptiveConcurrency.minRtt.interval': MESH,
        'adaptiveConcurrency.minRtt.requests': 'default',
        'qos.classes.critical': SERVICE,
        'qos.limitPercent.standard': 'default',
      },
    },
    {
      name: "adaptiveConcurrency: null in the Service's policy removes the Mesh's",
      mesh: { adaptiveConcurrency: { maxConcurrency: 200 }, timeouts: { request: '2s' } },
      service: { adaptiveConcurrency: null },
      want: { adaptiveConcurrency: undefined, 'timeouts.request': '2s' },
      from: { 'timeouts.request': MESH },
    },
    {
      name: 'a Service policy without a Mesh policy: its values and the defaults',
      service: { retries: { attempts: 2 } },
      want: {
        'retries.attempts': 2,
        'retries.on': ['connect-failure', 'refused-stream', 'reset', 'gateway-error'],
      },
      from: { 'retries.attempts': SERVICE, 'retries.on': 'default' },
    },
  ];
  for (const c of table) {
    it(c.name, () => {
      const mesh = c.mesh && meshPolicy(c.mesh);
      const service = c.service && servicePolicy(c.service);
      const result = effectivePolicy(mesh, service);
      if (!result.ok) throw new Error(result.problems.join('\n'));
      const at = (path: string) =>
        path
          .split('.')
          .reduce<unknown>((v, k) => (v as Record<string, unknown>)?.[k], result.policy.spec);
      for (const [path, value] of Object.entries(c.want)) expect(at(path), path).toEqual(value);
      const from = Object.fromEntries(
        Object.entries(result.policy.from).map(([k, s]) => [k, describeSource(s)]),
      );
      expect(from).toMatchObject(c.from);
      // Every value of the effective spec has a source, and nothing else does.
      expect(Object.keys(result.policy.from).every((k) => at(k) !== undefined)).toBe(true);
      expect(result.policy.spec.targetRef).toEqual(service?.target ?? { kind: 'Mesh' });
    });
  }

  it("a Service's qos without adaptiveConcurrency, here or in the Mesh's policy, is not ok", () => {
    const service = servicePolicy({ qos: { classes: { sheddable: ['batch'] } } });
    const result = effectivePolicy(meshPolicy({ timeouts: { request: '2s' } }), service);
    expect(result.ok).toBe(false);
    expect(result.ok ? [] : result.problems).toEqual([
      "spec.qos: classes act only on adaptiveConcurrency's limit: set adaptiveConcurrency too (here or in the Mesh's policy), or remove qos",
    ]);
    expect(effectivePolicy(undefined, service).ok).toBe(false);
  });

  it('a merge that does not hold is not ok, naming the field', () => {
    const mesh = meshPolicy({
      retries: { on: ['retriable-status-codes'], retriableStatusCodes: [503] },
    });
    const service = servicePolicy({ retries: { on: ['5xx'] } });
    const result = effectivePolicy(mesh, service);
    expect(result).toEqual({
      ok: false,
      problems: [
        'spec.retries.retriableStatusCodes: does nothing unless `on` lists retriable-status-codes: add it there, or remove this field',
      ],
    });
    // The fix the message points to: null removes the inherited statuses.
    const fixed = servicePolicy({ retries: { on: ['5xx'], retriableStatusCodes: null } });
    expect(effectivePolicy(mesh, fixed).ok).toBe(true);
  });
});

describe('policyScopes and effectivePolicies', () => {
  const docs = [
    {
      name: 'b-orders',
      doc: doc('b-orders', { targetRef: { name: 'orders' }, timeouts: { request: '9s' } }),
    },
    {
      name: 'a-orders',
      doc: doc('a-orders', { targetRef: { name: 'orders' }, timeouts: { request: '3s' } }),
    },
    { name: 'mesh', doc: doc('mesh', { targetRef: { kind: 'Mesh' }, timeouts: { idle: '1m' } }) },
    { name: 'z-mesh', doc: doc('z-mesh', { targetRef: { kind: 'Mesh', name: 'default' } }) },
  ];

  it('one policy per target, the first by name; the others are shadowed', () => {
    const scopes = policyScopes(docs);
    expect(scopes.mesh?.name).toBe('mesh');
    expect([...scopes.services].map(([s, p]) => [s, p.name])).toEqual([['orders', 'a-orders']]);
    expect([...scopes.shadowed]).toEqual([
      ['b-orders', 'a-orders'],
      ['z-mesh', 'mesh'],
    ]);
  });

  it('the same documents keep their effective policies (objects); a changed one is merged again', () => {
    const first = effectivePolicies(policyScopes(docs));
    expect(first.mesh?.spec.timeouts).toEqual({ idle: '1m' });
    expect(first.services.get('orders')?.spec.timeouts).toEqual({ request: '3s', idle: '1m' });
    const again = effectivePolicies(policyScopes(docs), first);
    expect(again.mesh).toBe(first.mesh);
    expect(again.services.get('orders')).toBe(first.services.get('orders'));
    const meshChanged = docs.map((d) =>
      d.name === 'mesh' ? { name: 'mesh', doc: doc('mesh', { targetRef: { kind: 'Mesh' } }) } : d,
    );
    const changed = effectivePolicies(policyScopes(meshChanged), again);
    expect(changed.mesh).not.toBe(first.mesh);
    expect(changed.services.get('orders')?.spec.timeouts).toEqual({ request: '3s' });
  });

  it('a merge that does not hold (stored before apply checked it) falls back to the Service policy alone', () => {
    const bad = [
      {
        name: 'm',
        doc: doc('m', {
          targetRef: { kind: 'Mesh' },
          retries: { on: ['retriable-status-codes'], retriableStatusCodes: [503] },
        }),
      },
      { name: 's', doc: doc('s', { targetRef: { name: 'orders' }, retries: { on: ['5xx'] } }) },
    ];
    const out = effectivePolicies(policyScopes(bad));
    expect(out.services.get('orders')?.spec.retries?.on).toEqual(['5xx']);
    expect(out.services.get('orders')?.spec.retries?.retriableStatusCodes).toBeUndefined();
  });
});

describe('MeshState.trafficPolicy: the effective policy', () => {
  const state = new MeshState('node-a', computedTraffic());
  state.update(
    viewOf([
      serviceDoc('orders', '240.240.0.1', [{ port: 80 }]),
      serviceDoc('users', '240.240.0.2', [{ port: 80 }]),
      workloadDoc('node-b', 'users', '10.0.0.2', 80),
      workloadDoc('node-c', 'users', '10.0.0.3', 80),
      workloadDoc('node-d', 'users', '10.0.0.4', 80),
      doc('defaults', {
        targetRef: { kind: 'Mesh' },
        balancer: { type: 'roundRobin' },
        retries: { attempts: 2, on: ['5xx'] },
      }),
      doc('orders-tp', { targetRef: { name: 'orders' }, retries: { attempts: 5 } }),
    ]),
  );

  it('a service without a policy of its own gets the Mesh policy, defaults filled in', () => {
    expect(state.trafficPolicy('users')?.retries).toMatchObject({
      attempts: 2,
      on: ['5xx'],
      budget: { percent: 20 },
    });
    // Any service name: a service known only by its endpoints too.
    expect(state.trafficPolicy('unknown')).toBe(state.trafficPolicy('users'));
  });

  it('a Service policy overrides one field and inherits the rest', () => {
    expect(state.trafficPolicy('orders')?.retries).toMatchObject({ attempts: 5, on: ['5xx'] });
    expect(state.trafficPolicy('orders')?.balancer).toEqual({ type: 'roundRobin' });
  });

  it("the balancer pools take the Mesh's balancer (roundRobin: requests go round in order)", () => {
    const pool = state.pool('users', 80)!;
    const picks = Array.from(
      { length: 12 },
      () => pool.pick(new Set(), { request: true })?.endpoint.address,
    );
    expect(new Set(picks.slice(0, 3)).size).toBe(3);
    expect(picks).toEqual([
      ...picks.slice(0, 3),
      ...picks.slice(0, 3),
      ...picks.slice(0, 3),
      ...picks.slice(0, 3),
    ]);
  });

  it('without any policy: undefined', () => {
    const empty = new MeshState('node-a', computedTraffic());
    empty.update(viewOf([serviceDoc('orders', '240.240.0.1', [{ port: 80 }])]));
    expect(empty.trafficPolicy('orders')).toBeUndefined();
  });
});

describe('weft apply: targetRef and null', () => {
  const yaml = (spec: string) =>
    `apiVersion: weft/v1\nkind: TrafficPolicy\nmetadata: {name: tp}\nspec:\n${spec}`;
  const errorOf = (text: string): string => {
    try {
      parseResources(text, 'tp.yaml');
    } catch (err) {
      if (isWeftError(err, 'WEFT_E_CONFIG')) return err.message;
      throw err;
    }
    throw new Error('expected a validation error');
  };
  const where = 'tp.yaml: document 1 (TrafficPolicy/tp): ';

  it('accepts the Mesh as a target, with or without its name', () => {
    for (const ref of ['{kind: Mesh}', '{kind: Mesh, name: default}']) {
      const [r] = parseResources(
        yaml(`  targetRef: ${ref}\n  timeouts: {request: 2s}\n`),
        'tp.yaml',
      );
      expect((r!.resource.spec as { targetRef: unknown }).targetRef).toMatchObject({
        kind: 'Mesh',
      });
    }
  });

  const refusals: Array<[string, string, string]> = [
    [
      'a Service target without a name',
      '  targetRef: {kind: Service}\n',
      'spec.targetRef.name: required: the Service it applies to',
    ],
    [
      'an unknown kind',
      '  targetRef: {kind: Namespace, name: x}\n',
      'spec.targetRef.kind: must be Service or Mesh',
    ],
    [
      'a Service name that is not a DNS label',
      '  targetRef: {name: Orders}\n',
      'spec.targetRef.name: must be a DNS label',
    ],
    [
      'null in a Mesh policy',
      '  targetRef: {kind: Mesh}\n  retries: {perTryTimeout: null}\n',
      'spec.retries.perTryTimeout: null removes a value a Service policy inherits from the Mesh policy; a Mesh policy inherits nothing: remove it',
    ],
    [
      'qos without adaptiveConcurrency in a Mesh policy (it inherits nothing)',
      '  targetRef: {kind: Mesh}\n  qos: {classes: {critical: [checkout]}}\n',
      "spec.qos: classes act only on adaptiveConcurrency's limit",
    ],
  ];
  for (const [name, spec, message] of refusals)
    it(`refuses ${name}`, () => expect(errorOf(yaml(spec))).toContain(`${where}${message}`));

  it("accepts a Service policy's qos alone: it may rely on the Mesh's adaptiveConcurrency", () => {
    const text = yaml('  targetRef: {name: orders}\n  qos: {classes: {critical: [checkout]}}\n');
    const [r] = parseResources(text, 'tp.yaml');
    expect((r!.resource.spec as { qos: unknown }).qos).toMatchObject({
      classes: { critical: ['checkout'] },
    });
  });

  it('accepts null in a Service policy, and sends the document as written', () => {
    const text = yaml(
      '  targetRef: {name: orders}\n  balancer: {type: roundRobin, hashOn: null}\n',
    );
    const [r] = parseResources(text, 'tp.yaml');
    expect((r!.resource.spec as { balancer: unknown }).balancer).toEqual({ type: 'roundRobin' });
    expect((r!.document as { spec: unknown }).spec).toEqual({
      targetRef: { name: 'orders' },
      balancer: { type: 'roundRobin', hashOn: null },
    });
  });
});
