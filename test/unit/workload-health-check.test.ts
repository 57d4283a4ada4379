// Which check a local workload gets (agent config, else the service's TrafficPolicy, else the
// quiet listening check), how results move its health through the thresholds, and the
// validation of both places a check is configured.
import { describe, expect, it } from 'vitest';
import { parseAgentConfig, workloadHealthSchema } from '../../src/agent/config.js';
import { parseResources } from '../../src/api/resources/index.js';
import {
  type CheckState,
  describeCheck,
  type HealthCheck,
  INITIAL_STATE,
  nextState,
  type PolicyHealthCheck,
  policyHealthChecks,
  resolveHealthCheck,
  statusPasses,
} from '../../src/controlplane-client/health-check.js';

const local = (input: Record<string, unknown>) => workloadHealthSchema.parse(input);
const policy = (spec: Record<string, unknown>, name = 'db'): PolicyHealthCheck => {
  const doc = { spec: { targetRef: { name: 'mariadb' }, healthCheck: spec } };
  return policyHealthChecks([{ name, doc }]).get('mariadb')!;
};

describe('resolveHealthCheck', () => {
  const table: Array<
    [string, Record<string, unknown>, PolicyHealthCheck | undefined, HealthCheck]
  > = [
    [
      'nothing configured: the quiet listening check',
      {},
      undefined,
      {
        kind: 'listening',
        source: 'default',
        intervalMs: 5_000,
        unhealthyThreshold: 1,
        healthyThreshold: 1,
      },
    ],
    [
      'the agent config sets the interval of the default',
      { intervalMs: 1_000 },
      undefined,
      {
        kind: 'listening',
        source: 'default',
        intervalMs: 1_000,
        unhealthyThreshold: 1,
        healthyThreshold: 1,
      },
    ],
    [
      'a TrafficPolicy healthCheck: a TCP connect with its figures',
      { intervalMs: 1_000 },
      policy({ interval: '2s', timeout: '500ms', unhealthyThreshold: 2 }),
      {
        kind: 'tcp',
        source: 'TrafficPolicy/db',
        intervalMs: 2_000,
        timeoutMs: 500,
        unhealthyThreshold: 2,
        healthyThreshold: 1,
      },
    ],
    [
      'a TrafficPolicy healthCheck with http: a GET',
      {},
      policy({ http: { path: '/healthz', expectedStatuses: [204] } }),
      {
        kind: 'http',
        source: 'TrafficPolicy/db',
        intervalMs: 5_000,
        timeoutMs: 1_000,
        unhealthyThreshold: 3,
        healthyThreshold: 1,
        path: '/healthz',
        expectedStatuses: [204],
      },
    ],
    [
      "the agent config's check wins over the policy",
      { check: 'listening', intervalMs: 1_000 },
      policy({ http: { path: '/healthz' } }),
      {
        kind: 'listening',
        source: 'agent config',
        intervalMs: 1_000,
        unhealthyThreshold: 1,
        healthyThreshold: 1,
      },
    ],
    [
      'httpPath alone in the agent config means an http check (as before)',
      { httpPath: '/ready', timeoutMs: 300 },
      undefined,
      {
        kind: 'http',
        source: 'agent config',
        intervalMs: 5_000,
        timeoutMs: 300,
        unhealthyThreshold: 1,
        healthyThreshold: 1,
        path: '/ready',
        expectedStatuses: undefined,
      },
    ],
    [
      'a tcp check from the agent config',
      { check: 'tcp', unhealthyThreshold: 3 },
      undefined,
      {
        kind: 'tcp',
        source: 'agent config',
        intervalMs: 5_000,
        timeoutMs: 1_000,
        unhealthyThreshold: 3,
        healthyThreshold: 1,
      },
    ],
  ];
  for (const [name, config, p, expected] of table) {
    it(name, () => expect(resolveHealthCheck(local(config), p)).toEqual(expected));
  }

  it('describes checks for status and metrics', () => {
    expect(describeCheck(resolveHealthCheck(local({}), undefined))).toBe('listening');
    expect(describeCheck(resolveHealthCheck(local({ httpPath: '/ready' }), undefined))).toBe(
      'http GET /ready',
    );
  });
});

describe('policyHealthChecks', () => {
  it('takes the first policy by name per service, and skips policies without a check', () => {
    const doc = (service: string, healthCheck?: unknown) => ({
      spec: { targetRef: { name: service }, ...(healthCheck ? { healthCheck } : {}) },
    });
    const out = policyHealthChecks([
      { name: 'b', doc: doc('mariadb', { interval: '9s' }) },
      { name: 'a', doc: doc('mariadb', { interval: '3s' }) },
      { name: 'c', doc: doc('web') },
    ]);
    expect(out.get('web')).toBeUndefined();
    expect(out.get('mariadb')).toMatchObject({ policies: ['a'], spec: { interval: '3s' } });
  });
});

describe('policyHealthChecks: the effective policy of each service', () => {
  const doc = (targetRef: unknown, healthCheck?: unknown) => ({
    spec: { targetRef, ...(healthCheck ? { healthCheck } : {}) },
  });
  const checks = policyHealthChecks([
    {
      name: 'defaults',
      doc: doc({ kind: 'Mesh' }, { http: { path: '/health' }, interval: '10s' }),
    },
    { name: 'db', doc: doc({ name: 'mariadb' }, { interval: '2s' }) },
    { name: 'web-tp', doc: doc({ name: 'web' }) },
    { name: 'cache-tp', doc: { spec: { targetRef: { name: 'cache' }, healthCheck: null } } },
  ]);

  it("a service without a policy of its own gets the Mesh's check", () => {
    expect(resolveHealthCheck(local({}), checks.get('orders'))).toMatchObject({
      kind: 'http',
      path: '/health',
      intervalMs: 10_000,
      source: 'TrafficPolicy/defaults',
    });
  });

  it("a Service's policy overrides the interval and keeps the Mesh's HTTP check", () => {
    expect(resolveHealthCheck(local({}), checks.get('mariadb'))).toMatchObject({
      kind: 'http',
      path: '/health',
      intervalMs: 2_000,
      source: 'TrafficPolicy/db over TrafficPolicy/defaults',
    });
  });

  it("a Service's policy that sets no check inherits it; null removes it", () => {
    expect(checks.get('web')?.policies).toEqual(['defaults']);
    expect(resolveHealthCheck(local({}), checks.get('cache'))).toMatchObject({
      kind: 'listening',
      source: 'default',
    });
  });
});

describe('nextState', () => {
  const check = { unhealthyThreshold: 3, healthyThreshold: 2 };
  const run = (results: Array<boolean | undefined>): CheckState['health'][] => {
    let state = INITIAL_STATE;
    return results.map((r) => {
      state = nextState(state, r, check);
      return state.health;
    });
  };
  const table: Array<[string, Array<boolean | undefined>, CheckState['health'][]]> = [
    ['the first result decides from unknown: pass', [true], ['healthy']],
    ['the first result decides from unknown: fail', [false], ['unhealthy']],
    [
      'healthy needs 3 failures in a row to turn',
      [true, false, false, true, false, false, false],
      ['healthy', 'healthy', 'healthy', 'healthy', 'healthy', 'healthy', 'unhealthy'],
    ],
    [
      'unhealthy needs 2 passes in a row to turn',
      [false, true, false, true, true],
      ['unhealthy', 'unhealthy', 'unhealthy', 'unhealthy', 'healthy'],
    ],
    [
      'a check that cannot run makes the health unknown, and the next result decides',
      [true, undefined, false],
      ['healthy', 'unknown', 'unhealthy'],
    ],
  ];
  for (const [name, results, healths] of table) {
    it(name, () => expect(run(results)).toEqual(healths));
  }
});

describe('statusPasses', () => {
  it('takes any 2xx or 3xx by default, else exactly the expected statuses', () => {
    expect([200, 204, 302, 399, 400, 500, 101].map((s) => statusPasses(s, undefined))).toEqual([
      true,
      true,
      true,
      true,
      false,
      false,
      false,
    ]);
    expect([200, 204, 503].map((s) => statusPasses(s, [204, 503]))).toEqual([false, true, true]);
  });
});

describe('validation', () => {
  const agentErrors: Array<[string, Record<string, unknown>, string]> = [
    [
      'check http without a path',
      { check: 'http' },
      'health.httpPath: required when check is http',
    ],
    [
      'a path with another check',
      { check: 'tcp', httpPath: '/x' },
      'health.httpPath: only applies to check: http (check is tcp)',
    ],
    [
      'expected statuses without http',
      { expectedStatuses: [200] },
      'health.expectedStatuses: only applies to check: http',
    ],
    [
      'a timeout for the listening check, which cannot time out',
      { timeoutMs: 500 },
      "health.timeoutMs: only applies to check: tcp or http (the listening check reads the kernel's table of listening sockets and cannot time out)",
    ],
    ['an unknown check', { check: 'ping' }, 'health.check'],
  ];
  for (const [name, health, message] of agentErrors) {
    it(`the agent config refuses ${name}`, () => {
      const yaml = JSON.stringify({ workloads: [{ service: 'mariadb', port: 3306, health }] });
      expect(() => parseAgentConfig(yaml, 'agent.yaml')).toThrow(
        `agent.yaml: workloads[0].${message}`,
      );
    });
  }

  const policyDoc = (healthCheck: string) =>
    `apiVersion: weft/v1\nkind: TrafficPolicy\nmetadata: {name: db}\nspec:\n  targetRef: {name: mariadb}\n  healthCheck: ${healthCheck}\n`;
  const policyErrors: Array<[string, string, string]> = [
    [
      'a timeout as long as the interval',
      '{interval: 1s, timeout: 1s}',
      'spec.healthCheck.timeout: must be shorter than interval (1s): a check must end before the next one starts',
    ],
    [
      'a threshold of 0',
      '{unhealthyThreshold: 0}',
      'spec.healthCheck.unhealthyThreshold: must be 1-100',
    ],
    [
      'an empty list of statuses',
      '{http: {path: /h, expectedStatuses: []}}',
      'spec.healthCheck.http.expectedStatuses: must list at least one status',
    ],
    ['a field no agent enforces', '{grpc: {service: x}}', 'spec.healthCheck'],
  ];
  for (const [name, healthCheck, message] of policyErrors) {
    it(`weft apply refuses a TrafficPolicy healthCheck with ${name}`, () => {
      expect(() => parseResources(policyDoc(healthCheck), 'db.yaml')).toThrow(
        `db.yaml: document 1 (TrafficPolicy/db): ${message}`,
      );
    });
  }

  it('weft apply takes a full healthCheck, with defaults filled in', () => {
    const [r] = parseResources(policyDoc('{http: {path: /healthz}}'), 'db.yaml');
    expect((r!.resource as { spec: { healthCheck: unknown } }).spec.healthCheck).toEqual({
      interval: '5s',
      timeout: '1s',
      unhealthyThreshold: 3,
      healthyThreshold: 1,
      http: { path: '/healthz' },
    });
  });
});
