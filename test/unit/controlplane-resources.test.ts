// Resource validation as a user meets it: `weft apply` errors name the file, the document and
// the field, every problem is listed, and valid documents come back with defaults filled in.
import { describe, expect, it } from 'vitest';
import { parseResources, parseResourceTexts, resolveKind } from '../../src/api/resources/index.js';
import { isWeftError } from '../../src/errors.js';

function errorOf(yaml: string, source = 'echo.yaml'): string {
  try {
    parseResources(yaml, source);
  } catch (err) {
    if (isWeftError(err, 'WEFT_E_CONFIG')) return err.message;
    throw err;
  }
  throw new Error('expected a validation error');
}

const service = (spec: string, name = 'echo'): string => `apiVersion: weft/v1
kind: Service
metadata:
  name: ${name}
spec:
${spec}`;

const valid = service(`  ports:
    - port: 80`);

describe('resource validation messages', () => {
  const cases: Array<{ name: string; yaml: string; message: string }> = [
    {
      name: 'port out of range, in the second document',
      yaml: `${valid}\n---\n${service('  ports:\n    - port: 70000')}`,
      message: 'echo.yaml: document 2 (Service/echo): spec.ports[0].port: must be 1-65535',
    },
    {
      name: 'port of the wrong type',
      yaml: service('  ports:\n    - port: eighty'),
      message:
        'echo.yaml: document 1 (Service/echo): spec.ports[0].port: must be a port number 1-65535',
    },
    {
      name: 'unknown protocol',
      yaml: service('  ports:\n    - port: 80\n      protocol: udp'),
      message:
        'echo.yaml: document 1 (Service/echo): spec.ports[0].protocol: must be one of http, http2, grpc, tcp, auto',
    },
    {
      name: 'unknown field',
      yaml: service('  ports:\n    - port: 80\n      tagetPort: 8080'),
      message: 'echo.yaml: document 1 (Service/echo): spec.ports[0].tagetPort: unknown field',
    },
    {
      name: 'no ports',
      yaml: service('  ports: []'),
      message:
        'echo.yaml: document 1 (Service/echo): spec.ports: a Service needs at least one port',
    },
    {
      name: 'duplicate port',
      yaml: service('  ports:\n    - port: 80\n    - port: 80'),
      message:
        'echo.yaml: document 1 (Service/echo): spec.ports[1].port: duplicate port 80 (also ports[0])',
    },
    {
      name: 'service name not a DNS label',
      yaml: service('  ports:\n    - port: 80', 'Echo_1'),
      message:
        'echo.yaml: document 1 (Service/Echo_1): metadata.name: must be a DNS label: lowercase letters, digits and "-", at most 63, starting and ending alphanumeric',
    },
    {
      name: 'missing spec',
      yaml: 'apiVersion: weft/v1\nkind: Service\nmetadata:\n  name: echo\n',
      message: 'echo.yaml: document 1 (Service/echo): spec: required',
    },
    {
      name: 'unknown kind',
      yaml: 'apiVersion: weft/v1\nkind: Gateway\nmetadata:\n  name: gw\nspec: {}\n',
      message:
        'echo.yaml: document 1 (Gateway/gw): kind: unknown kind "Gateway"; expected one of Mesh, Service, TrafficPolicy, HTTPRoute, GRPCRoute, AuthorizationPolicy',
    },
    {
      name: 'wrong apiVersion',
      yaml: 'apiVersion: v1\nkind: Service\nmetadata:\n  name: echo\nspec: {ports: [{port: 80}]}\n',
      message: 'echo.yaml: document 1 (Service/echo): apiVersion: must be weft/v1',
    },
    {
      name: 'a Workload (agents register them)',
      yaml: 'apiVersion: weft/v1\nkind: Workload\nmetadata:\n  name: w\nspec: {}\n',
      message:
        'echo.yaml: document 1 (Workload/w): kind: Workload resources are registered by agents and cannot be applied',
    },
    {
      name: 'a document that is not a mapping',
      yaml: '- just\n- a list\n',
      message:
        'echo.yaml: document 1: must be a mapping with apiVersion, kind, metadata and spec, not a list',
    },
    {
      name: 'YAML syntax error in the third document',
      yaml: `${valid}\n---\n${valid.replace('echo', 'two')}\n---\nspec: [unclosed\n`,
      message: 'echo.yaml: document 3: not valid YAML:',
    },
    {
      name: 'traffic policy duration',
      yaml: 'apiVersion: weft/v1\nkind: TrafficPolicy\nmetadata:\n  name: tp\nspec:\n  targetRef: {name: echo}\n  timeouts: {request: 5 seconds}\n',
      message:
        'echo.yaml: document 1 (TrafficPolicy/tp): spec.timeouts.request: must be a duration like "500ms", "90s", "5m" or "24h", greater than zero',
    },
    {
      name: 'traffic policy balancer',
      yaml: 'apiVersion: weft/v1\nkind: TrafficPolicy\nmetadata:\n  name: tp\nspec:\n  targetRef: {name: echo}\n  balancer: {type: random}\n',
      message:
        'echo.yaml: document 1 (TrafficPolicy/tp): spec.balancer.type: must be one of roundRobin, leastConnections, p2cEwma, ringHash',
    },
    {
      name: 'traffic policy ringHash on nothing',
      yaml: 'apiVersion: weft/v1\nkind: TrafficPolicy\nmetadata:\n  name: tp\nspec:\n  targetRef: {name: echo}\n  balancer: {type: ringHash, hashOn: {sourceIp: false}}\n',
      message:
        'echo.yaml: document 1 (TrafficPolicy/tp): spec.balancer.hashOn: names nothing to hash on: set header, cookie or sourceIp: true (or leave hashOn out to hash on the source IP)',
    },
    {
      name: 'traffic policy ringHash on a header that cannot exist',
      yaml: 'apiVersion: weft/v1\nkind: TrafficPolicy\nmetadata:\n  name: tp\nspec:\n  targetRef: {name: echo}\n  balancer: {type: ringHash, hashOn: {header: "x user"}}\n',
      message:
        "echo.yaml: document 1 (TrafficPolicy/tp): spec.balancer.hashOn.header: must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)",
    },
    {
      name: 'traffic policy retries',
      yaml: 'apiVersion: weft/v1\nkind: TrafficPolicy\nmetadata:\n  name: tp\nspec:\n  targetRef: {name: echo}\n  retries: {attempts: 11}\n',
      message: 'echo.yaml: document 1 (TrafficPolicy/tp): spec.retries.attempts: must be 0-10',
    },
    {
      name: 'route path not starting with /',
      yaml: 'apiVersion: weft/v1\nkind: HTTPRoute\nmetadata:\n  name: r\nspec:\n  parentRefs: [{name: echo}]\n  rules:\n    - matches: [{path: {type: Exact, value: api}}]\n',
      message:
        'echo.yaml: document 1 (HTTPRoute/r): spec.rules[0].matches[0].path.value: must start with "/"',
    },
    {
      name: 'route regular expression that does not compile',
      yaml: 'apiVersion: weft/v1\nkind: HTTPRoute\nmetadata:\n  name: r\nspec:\n  parentRefs: [{name: echo}]\n  rules:\n    - matches: [{headers: [{type: RegularExpression, name: x-v, value: "(a"}]}]\n',
      message:
        'echo.yaml: document 1 (HTTPRoute/r): spec.rules[0].matches[0].headers[0].value: is not a valid regular expression',
    },
    {
      name: 'route without parentRefs',
      yaml: 'apiVersion: weft/v1\nkind: HTTPRoute\nmetadata:\n  name: r\nspec:\n  parentRefs: []\n  rules: [{}]\n',
      message:
        'echo.yaml: document 1 (HTTPRoute/r): spec.parentRefs: an HTTPRoute needs at least one parentRef (the Service it routes)',
    },
    {
      name: 'route backend weight',
      yaml: 'apiVersion: weft/v1\nkind: HTTPRoute\nmetadata:\n  name: r\nspec:\n  parentRefs: [{name: echo}]\n  rules:\n    - backendRefs: [{name: echo-v2, weight: -1}]\n',
      message:
        'echo.yaml: document 1 (HTTPRoute/r): spec.rules[0].backendRefs[0].weight: must be 0-1000000',
    },
    {
      name: 'authorization action',
      yaml: 'apiVersion: weft/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: a\nspec:\n  targetRef: {name: echo}\n  action: AUDIT\n',
      message:
        'echo.yaml: document 1 (AuthorizationPolicy/a): spec.action: must be one of ALLOW, DENY',
    },
    {
      name: 'authorization principal',
      yaml: 'apiVersion: weft/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: a\nspec:\n  targetRef: {name: echo}\n  rules:\n    - from: [{principals: [orders]}]\n',
      message:
        'echo.yaml: document 1 (AuthorizationPolicy/a): spec.rules[0].from[0].principals[0]: must be a SPIFFE ID (spiffe://...), optionally ending in "*", or "*"',
    },
    {
      name: 'authorization path with "*" inside',
      yaml: 'apiVersion: weft/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: a\nspec:\n  targetRef: {name: echo}\n  rules:\n    - to: [{paths: [/api/*/x]}]\n',
      message:
        'echo.yaml: document 1 (AuthorizationPolicy/a): spec.rules[0].to[0].paths[0]: may have "*" only at the end (a prefix: "/admin*", "/admin/*")',
    },
    {
      name: 'authorization path with a query',
      yaml: 'apiVersion: weft/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: a\nspec:\n  targetRef: {name: echo}\n  rules:\n    - to: [{paths: ["/api?x=1"]}]\n',
      message:
        'echo.yaml: document 1 (AuthorizationPolicy/a): spec.rules[0].to[0].paths[0]: must not have a query ("?"): paths are matched without the query',
    },
    {
      name: 'authorization path not in normal form',
      yaml: 'apiVersion: weft/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: a\nspec:\n  targetRef: {name: echo}\n  rules:\n    - to: [{paths: [/public/../admin*]}]\n',
      message:
        'echo.yaml: document 1 (AuthorizationPolicy/a): spec.rules[0].to[0].paths[0]: is not in normal form (it has a ".." segment): requests with such paths are refused, so it would never match',
    },
    {
      name: 'authorization gRPC service name',
      yaml: 'apiVersion: weft/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: a\nspec:\n  targetRef: {name: echo}\n  rules:\n    - to: [{grpc: [{service: /pkg.Orders/Get}]}]\n',
      message:
        'echo.yaml: document 1 (AuthorizationPolicy/a): spec.rules[0].to[0].grpc[0].service: must be a protobuf service name such as pkg.Orders',
    },
    {
      name: 'authorization gRPC method name',
      yaml: 'apiVersion: weft/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: a\nspec:\n  targetRef: {name: echo}\n  rules:\n    - to: [{grpc: [{service: pkg.Orders, method: "Get*"}]}]\n',
      message:
        'echo.yaml: document 1 (AuthorizationPolicy/a): spec.rules[0].to[0].grpc[0].method: must be a method name such as GetOrder',
    },
    {
      name: 'authorization gRPC with methods in one entry',
      yaml: 'apiVersion: weft/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: a\nspec:\n  targetRef: {name: echo}\n  rules:\n    - to: [{methods: [GET], grpc: [{service: pkg.Orders}]}]\n',
      message:
        'echo.yaml: document 1 (AuthorizationPolicy/a): spec.rules[0].to[0].grpc: cannot be combined with methods or paths in one entry (a gRPC call is a POST to /<service>/<method>): put them in separate entries of to',
    },
    {
      name: 'mesh mtls mode',
      yaml: 'apiVersion: weft/v1\nkind: Mesh\nmetadata:\n  name: default\nspec:\n  mtls: {mode: sometimes}\n',
      message:
        'echo.yaml: document 1 (Mesh/default): spec.mtls.mode: must be one of strict, permissive',
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const message = errorOf(c.yaml);
      expect(message.split('\n')[0]!.startsWith(c.message), `got: ${message}`).toBe(true);
    });
  }

  it('lists every problem of every document, one per line', () => {
    const yaml = `${service('  ports:\n    - port: 0\n      protocol: x')}\n---\n${valid}\n---\nkind: Nope\n`;
    expect(errorOf(yaml).split('\n')).toEqual([
      'echo.yaml: document 1 (Service/echo): spec.ports[0].port: must be 1-65535',
      'echo.yaml: document 1 (Service/echo): spec.ports[0].protocol: must be one of http, http2, grpc, tcp, auto',
      'echo.yaml: document 3 (Nope): kind: unknown kind "Nope"; expected one of Mesh, Service, TrafficPolicy, HTTPRoute, GRPCRoute, AuthorizationPolicy',
    ]);
  });

  it('refuses the same resource twice, across files', () => {
    expect(() =>
      parseResourceTexts([
        { text: valid, source: 'a.yaml' },
        { text: valid, source: 'b.yaml' },
      ]),
    ).toThrow('b.yaml: document 1 (Service/echo): defined twice (also in a.yaml: document 1)');
  });
});

describe('valid resources', () => {
  it('fills in defaults and keeps what the user wrote', () => {
    const [parsed] = parseResources(`${valid}\n`, 'echo.yaml');
    expect(parsed!.source).toBe('echo.yaml: document 1');
    expect(parsed!.resource).toEqual({
      apiVersion: 'weft/v1',
      kind: 'Service',
      metadata: { name: 'echo' },
      spec: { ports: [{ port: 80, targetPort: 80, protocol: 'auto' }] },
    });
  });

  it('skips empty documents but counts them', () => {
    const out = parseResources(`---\n---\n${valid}\n---\n`, 'echo.yaml');
    expect(out.map((r) => r.source)).toEqual(['echo.yaml: document 2']);
  });

  it('accepts every kind in its full shape', () => {
    const yaml = `
apiVersion: weft/v1
kind: Mesh
metadata: {name: default}
spec: {mtls: {mode: strict}, outboundPolicy: refuse}
---
apiVersion: weft/v1
kind: TrafficPolicy
metadata: {name: echo}
spec:
  targetRef: {kind: Service, name: echo}
  balancer: {type: ringHash, hashOn: {header: x-user}}
  timeouts: {connect: 1s, request: 10s, idle: 5m}
  retries: {attempts: 3, perTryTimeout: 2s, on: [5xx, reset]}
  circuitBreaker: {maxConnections: 100}
  outlierDetection: {consecutiveFailures: 7}
  rateLimit: {maxTokens: 100, fillInterval: 1s}
  healthCheck: {http: {path: /health}}
---
apiVersion: weft/v1
kind: HTTPRoute
metadata: {name: echo-canary}
spec:
  parentRefs: [{name: echo, port: 80}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: x-canary, value: "1"}], method: GET}]
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-route, value: canary}]}}]
      backendRefs: [{name: echo-v2, weight: 90}, {name: echo, weight: 10}]
---
apiVersion: weft/v1
kind: AuthorizationPolicy
metadata: {name: echo-allow}
spec:
  targetRef: {name: echo}
  action: ALLOW
  rules:
    - from: [{principals: ["spiffe://weft.local/svc/orders"]}]
      to: [{ports: [80], methods: [GET], paths: [/api/*]}, {grpc: [{service: pkg.Orders, method: Get}]}]
`;
    const out = parseResources(yaml, 'all.yaml');
    expect(out.map((r) => `${r.resource.kind}/${r.resource.metadata.name}`)).toEqual([
      'Mesh/default',
      'TrafficPolicy/echo',
      'HTTPRoute/echo-canary',
      'AuthorizationPolicy/echo-allow',
    ]);
    const tp = out[1]!.resource as { spec: { retries: unknown; circuitBreaker: unknown } };
    expect(tp.spec.retries).toEqual({
      attempts: 3,
      perTryTimeout: '2s',
      on: ['5xx', 'reset'],
      backoff: { base: '25ms', max: '250ms' },
      budget: { percent: 20, minPerSecond: 10 },
    });
    expect(tp.spec.circuitBreaker).toEqual({
      maxConnections: 100,
      maxPendingRequests: 1024,
      maxRequests: 1024,
    });
  });
});

describe('kind names on the command line', () => {
  const table: Array<[string, string | undefined]> = [
    ['service', 'Service'],
    ['Services', 'Service'],
    ['svc', 'Service'],
    ['SVC', 'Service'],
    ['mesh', 'Mesh'],
    ['trafficpolicies', 'TrafficPolicy'],
    ['tp', 'TrafficPolicy'],
    ['HTTPRoute', 'HTTPRoute'],
    ['httproutes', 'HTTPRoute'],
    ['grpcroutes', 'GRPCRoute'],
    ['authz', 'AuthorizationPolicy'],
    ['workloads', 'Workload'],
    ['gateway', undefined],
  ];
  for (const [input, kind] of table) {
    it(`${input} -> ${kind}`, () => expect(resolveKind(input)).toBe(kind));
  }
});
