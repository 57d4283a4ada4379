// AuthorizationPolicy HTTP rules against the Service's port protocols, table-driven: which
// entries of `to` land on tcp (opaque) ports, where their HTTP fields cannot be checked.
import { describe, expect, it } from 'vitest';
import {
  type AuthorizationPolicySpec,
  authorizationPortProblems,
  type ServiceSpec,
} from '../../src/api/resources/index.js';

type Protocol = ServiceSpec['ports'][number]['protocol'];
const service = (...ports: Array<[number, Protocol]>): ServiceSpec => ({
  ports: ports.map(([p, protocol]) => ({ port: p, targetPort: p + 8000, protocol })),
});
const policy = (
  action: 'ALLOW' | 'DENY',
  to: NonNullable<AuthorizationPolicySpec['rules'][number]['to']>,
): AuthorizationPolicySpec => ({
  targetRef: { kind: 'Service', name: 'echo' },
  action,
  rules: [{ from: [{ principals: ['*'] }] }, { to }],
});

const httpOnly = service([80, 'http']);
const tcpOnly = service([5432, 'tcp'], [5433, 'tcp']);
const mixed = service([80, 'http'], [90, 'tcp'], [91, 'grpc']);

describe('authorizationPortProblems', () => {
  const cases: Array<[string, AuthorizationPolicySpec, ServiceSpec, string[]]> = [
    ['methods on an http port', policy('ALLOW', [{ methods: ['GET'] }]), httpOnly, []],
    ['ports only, on tcp', policy('ALLOW', [{ ports: [13432] }]), tcpOnly, []],
    ['no HTTP fields, no ports, on tcp', policy('DENY', [{}]), tcpOnly, []],
    ['auto ports may carry HTTP', policy('DENY', [{ paths: ['/a'] }]), service([80, 'auto']), []],
    [
      'methods on a listed tcp port',
      policy('ALLOW', [{ ports: [8080, 8090], methods: ['GET'] }]),
      mixed,
      [
        "spec.rules[1].to[0]: methods cannot be checked on port 8090: Service echo declares it tcp (opaque), whose connections carry no HTTP requests. Take 8090 out of this entry's ports (an entry without methods may name it), or declare the port http, http2, grpc or auto",
      ],
    ],
    [
      'no ports, every port tcp',
      policy('ALLOW', [{ paths: ['/x'], methods: ['GET'] }]),
      tcpOnly,
      [
        'spec.rules[1].to[0]: methods, paths cannot be checked: this entry names no ports, so it covers every port of Service echo, and all of them (13432, 13433) are tcp (opaque), whose connections carry no HTTP requests. Declare the HTTP ports http, http2, grpc or auto, or drop methods, paths',
      ],
    ],
    [
      'ALLOW without ports on mixed ports admits HTTP requests on the HTTP ports',
      policy('ALLOW', [{ methods: ['GET'] }]),
      mixed,
      [],
    ],
    [
      'DENY without ports on mixed ports',
      policy('DENY', [{ ports: [8080], paths: ['/a'] }, { grpc: [{ service: 'pkg.Orders' }] }]),
      mixed,
      [
        'spec.rules[1].to[1]: this DENY entry names no ports, so it covers every port of Service echo, and grpc cannot be checked on its tcp (opaque) port 8090: there it would refuse every connection of the callers the rule names. List the HTTP ports it is for (ports: [8080, 8091]); deny the tcp ports in an entry without grpc if that is meant',
      ],
    ],
    [
      'a listed port is the targetPort, not the Service port',
      policy('ALLOW', [{ ports: [90], methods: ['GET'] }]),
      mixed,
      [],
    ],
  ];
  it.each(cases)('%s', (_name, spec, svc, messages) => {
    expect(
      authorizationPortProblems(spec, 'echo', svc).map((p) => `${p.field}: ${p.message}`),
    ).toEqual(messages);
  });
});
