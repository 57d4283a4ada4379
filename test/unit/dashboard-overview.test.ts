// What the dashboard page gets: services with their endpoints and readiness, nodes, and a
// one-line summary of each policy; and the helpers of its HTTP routes and of `weft dashboard`.
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import type { NodeInfo } from '../../src/api/messages.js';
import { dashboardUrl, hostOf } from '../../src/cli/commands/dashboard.js';
import { cookieValue, sameOrigin } from '../../src/controlplane/dashboard/dashboard-http.js';
import { buildOverview, type StoredDoc } from '../../src/controlplane/dashboard/overview.js';

const service = (name: string, vip: string): StoredDoc => ({
  kind: 'Service',
  metadata: { name },
  spec: { ports: [{ port: 80, targetPort: 8080, protocol: 'http' }] },
  status: { vip },
});

const workload = (
  name: string,
  svc: string,
  node: string,
  health: string,
  stale = false,
): StoredDoc => ({
  kind: 'Workload',
  metadata: { name },
  spec: { service: svc, node, address: '10.0.0.1', port: 8080, health, weight: 1 },
  status: stale ? { stale: true } : {},
});

const node = (name: string): NodeInfo => ({
  name,
  spiffeId: `spiffe://td/node/${name}`,
  addresses: ['10.0.0.1'],
  lastHeartbeatUnixMs: 5,
  ackedVersion: 7,
  state: 'connected',
  lastNack: '',
  services: ['echo'],
  agentVersion: '0.1.0',
  certNotAfterUnixMs: 99,
  lastSeenUnixMs: 6,
  joinedUnixMs: 1,
  workloads: [],
  hostFacts: null,
  hostFactsUnixMs: 0,
});

const noTraffic = {
  windowSeconds: 60,
  byService: new Map(),
  edges: [],
  denials: [],
  deniedInWindow: 0,
  errors: [],
  erroredInWindow: 0,
};

describe('buildOverview', () => {
  it('puts each workload under its service and counts the ready ones', () => {
    const o = buildOverview({
      services: [service('web', '10.96.0.2'), service('echo', '10.96.0.1')],
      workloads: [
        workload('node2-echo', 'echo', 'node2', 'healthy'),
        workload('node1-echo', 'echo', 'node1', 'healthy'),
        workload('node3-echo', 'echo', 'node3', 'healthy', true),
        workload('node3-web', 'web', 'node3', 'unhealthy'),
      ],
      policies: [],
      nodes: [node('node2'), node('node1')],
      traffic: noTraffic,
      now: 42,
    });
    expect(o.services.map((s) => [s.name, s.vip, s.ready, s.endpoints.map((e) => e.node)])).toEqual(
      [
        ['echo', '10.96.0.1', 2, ['node1', 'node2', 'node3']],
        ['web', '10.96.0.2', 0, ['node3']],
      ],
    );
    expect(o.services[0]?.ports).toEqual([{ port: 80, protocol: 'http' }]);
    expect(o.services[0]?.endpoints[2]?.stale).toBe(true);
    expect(o.nodes.map((n) => [n.name, n.syncVersion])).toEqual([
      ['node1', 7],
      ['node2', 7],
    ]);
    expect(o.generatedAtUnixMs).toBe(42);
  });

  it.each([
    [
      'AuthorizationPolicy',
      { targetRef: { kind: 'Service', name: 'echo' }, action: 'DENY', rules: [{}, {}] },
      ['echo'],
      'DENY, 2 rules',
    ],
    [
      'AuthorizationPolicy',
      { targetRef: { kind: 'Service', name: 'echo' }, rules: [{}] },
      ['echo'],
      'ALLOW, 1 rule',
    ],
    [
      'TrafficPolicy',
      { targetRef: { kind: 'Service', name: 'echo' }, retries: {}, timeouts: {} },
      ['echo'],
      'timeouts, retries',
    ],
    ['TrafficPolicy', { targetRef: { kind: 'Mesh', name: 'default' } }, ['Mesh'], 'defaults'],
    [
      'HTTPRoute',
      { parentRefs: [{ name: 'web' }, { name: 'api' }], rules: [{}] },
      ['web', 'api'],
      '1 rule',
    ],
    ['GRPCRoute', { parentRefs: [{ name: 'orders' }], rules: [] }, ['orders'], '0 rules'],
  ])('summarises a %s', (kind, spec, targets, summary) => {
    const o = buildOverview({
      services: [],
      workloads: [],
      policies: [{ kind, metadata: { name: 'p' }, spec }],
      nodes: [],
      traffic: noTraffic,
      now: 0,
    });
    expect(o.policies).toEqual([{ kind, name: 'p', targets, summary }]);
  });

  it('adds the traffic the agents reported: golden metrics per service, edges sorted', () => {
    const stats = { rps: 12.5, successRate: 0.98, p50Ms: 1.2, p99Ms: 9 };
    const o = buildOverview({
      services: [service('echo', '10.96.0.1'), service('web', '10.96.0.2')],
      workloads: [],
      policies: [],
      nodes: [],
      traffic: {
        windowSeconds: 30,
        byService: new Map([['echo', stats]]),
        edges: [
          { source: 'web', destination: 'echo', rps: 12.5, successRate: 0.98 },
          { source: 'client', destination: 'web', rps: 1, successRate: 1 },
        ],
        denials: [],
        deniedInWindow: 0,
        errors: [],
        erroredInWindow: 0,
      },
      now: 0,
    });
    expect(o.windowSeconds).toBe(30);
    expect(o.services[0]?.stats).toEqual(stats);
    expect(o.services[1]?.stats).toBeUndefined();
    expect(o.edges.map((e) => `${e.source}->${e.destination}`)).toEqual([
      'client->web',
      'web->echo',
    ]);
  });
});

describe('dashboard HTTP helpers', () => {
  it.each([
    ['weft_session=abc', 'abc'],
    ['a=1; weft_session=abc; b=2', 'abc'],
    ['weft_session_x=abc', undefined],
    ['', undefined],
    [undefined, undefined],
  ])('cookie %s -> %s', (header, value) => {
    expect(cookieValue(header, 'weft_session')).toBe(value);
  });

  const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
  it.each([
    [{ host: 'cp:15014', origin: 'http://cp:15014' }, true],
    [{ host: 'cp:15014', origin: 'https://cp:15014' }, true],
    [{ host: 'cp:15014', origin: 'http://evil.example' }, false],
    [{ host: 'cp:15014', origin: 'null' }, false],
    [{ host: 'cp:15014', origin: 'null', 'sec-fetch-site': 'same-origin' }, true],
    [{ host: 'cp:15014', origin: 'null', 'sec-fetch-site': 'cross-site' }, false],
    [{ host: 'cp:15014', 'sec-fetch-site': 'cross-site' }, false],
    [{ host: 'cp:15014', 'sec-fetch-site': 'same-origin' }, true],
    [{ host: 'cp:15014' }, true],
  ])('same origin %o -> %s', (headers, same) => {
    expect(sameOrigin(req(headers))).toBe(same);
  });

  it.each([
    ['127.0.0.1:15012', 8080, 'http://127.0.0.1:8080/login#token=T'],
    ['cp.example:15012', 15014, 'http://cp.example:15014/login#token=T'],
    ['[::1]:15012', 15014, 'http://[::1]:15014/login#token=T'],
    ['cp', 15014, 'http://cp:15014/login#token=T'],
  ])('weft dashboard via %s prints %s', (server, port, url) => {
    expect(dashboardUrl(server, port, 'T')).toBe(url);
    expect(url).toContain(hostOf(server));
  });
});
