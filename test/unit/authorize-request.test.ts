// L7 authorization decisions (HTTP and gRPC requests), table-driven: methods, exact and prefix
// paths, DENY first, gRPC service and method, and the path forms that could reach another
// path in a normalizing app, which are refused.
import { describe, expect, it } from 'vitest';
import type { AuthorizationPolicySpec } from '../../src/api/resources/index.js';
import {
  authorizeRequest,
  grpcCallOf,
  type NamedPolicy,
} from '../../src/proxy/inbound/authorize.js';

const web = 'spiffe://weft.local/svc/web';
const batch = 'spiffe://weft.local/svc/batch';

const policy = (
  name: string,
  action: 'ALLOW' | 'DENY',
  rules: AuthorizationPolicySpec['rules'],
): NamedPolicy => ({
  name,
  spec: { targetRef: { kind: 'Service', name: 'echo' }, action, rules },
});

const webReadsPublic = policy('web-reads-public', 'ALLOW', [
  { from: [{ principals: [web] }], to: [{ methods: ['GET', 'HEAD'], paths: ['/public*'] }] },
]);
const exactHealth = policy('health', 'ALLOW', [{ to: [{ paths: ['/healthz'] }] }]);
const adminTree = policy('admin-tree', 'ALLOW', [{ to: [{ paths: ['/admin/*'] }] }]);
const adminPrefix = policy('admin-prefix', 'ALLOW', [{ to: [{ paths: ['/admin*'] }] }]);
const denyBatchWrites = policy('deny-batch-writes', 'DENY', [
  { from: [{ principals: [batch] }], to: [{ methods: ['POST', 'PUT', 'DELETE'] }] },
]);
const anyoneAnything = policy('anyone', 'ALLOW', [{ from: [{ principals: ['*'] }] }]);
const denyAdmin = policy('deny-admin', 'DENY', [{ to: [{ paths: ['/admin*'] }] }]);
const onPort8080 = policy('on-8080', 'ALLOW', [{ to: [{ ports: [8080], methods: ['GET'] }] }]);
const ordersService = policy('orders-any', 'ALLOW', [
  { to: [{ grpc: [{ service: 'pkg.Orders' }] }] },
]);
const ordersGet = policy('orders-get', 'ALLOW', [
  { to: [{ grpc: [{ service: 'pkg.Orders', method: 'Get' }] }] },
]);
const denyOrdersDelete = policy('no-delete', 'DENY', [
  { to: [{ grpc: [{ service: 'pkg.Orders', method: 'Delete' }] }] },
]);
const principalsOnly = policy('web-only', 'ALLOW', [{ from: [{ principals: [web] }] }]);

type Case = [
  name: string,
  policies: NamedPolicy[],
  principal: string | undefined,
  method: string,
  path: string,
  allowed: boolean,
];

describe('authorizeRequest', () => {
  const cases: Case[] = [
    ['no policy allows everything', [], undefined, 'DELETE', '/a/../b', true],
    ['GET /public allowed', [webReadsPublic], web, 'GET', '/public', true],
    ['POST /admin denied for the same caller', [webReadsPublic], web, 'POST', '/admin', false],
    ['another caller denied', [webReadsPublic], batch, 'GET', '/public', false],
    ['plaintext denied', [webReadsPublic], undefined, 'GET', '/public', false],
    ['method outside the list', [webReadsPublic], web, 'POST', '/public', false],
    ['second method of the list', [webReadsPublic], web, 'HEAD', '/public/x', true],
    ['query is not part of the path', [exactHealth], web, 'GET', '/healthz?full=1', true],
    ['exact path: longer path', [exactHealth], web, 'GET', '/healthz/x', false],
    ['exact path: trailing slash', [exactHealth], web, 'GET', '/healthz/', false],
    ['exact path is case-sensitive', [exactHealth], web, 'GET', '/HEALTHZ', false],
    ['"/admin/*" matches /admin/x', [adminTree], web, 'GET', '/admin/x', true],
    ['"/admin/*" matches /admin/', [adminTree], web, 'GET', '/admin/', true],
    ['"/admin/*" does not match /admin', [adminTree], web, 'GET', '/admin', false],
    ['"/admin*" matches /admin', [adminPrefix], web, 'GET', '/admin', true],
    ['"/admin*" matches /administrator', [adminPrefix], web, 'GET', '/administrator', true],
    ['"/admin*" matches /admin/x', [adminPrefix], web, 'GET', '/admin/x', true],
    ['"/admin*" does not match /adm', [adminPrefix], web, 'GET', '/adm', false],
    ['DENY wins over ALLOW', [anyoneAnything, denyBatchWrites], batch, 'POST', '/x', false],
    [
      'DENY lets other methods through',
      [anyoneAnything, denyBatchWrites],
      batch,
      'GET',
      '/x',
      true,
    ],
    ['DENY lets other callers through', [anyoneAnything, denyBatchWrites], web, 'POST', '/x', true],
    ['DENY alone admits the rest', [denyAdmin], web, 'GET', '/public', true],
    ['DENY path prefix', [denyAdmin], web, 'GET', '/admin/users', false],
    ['port in the rule', [onPort8080], web, 'GET', '/', true],
    ['gRPC service-only: any method', [ordersService], web, 'POST', '/pkg.Orders/List', true],
    ['gRPC service-only: other service', [ordersService], web, 'POST', '/pkg.Users/List', false],
    [
      'gRPC service-only: a package prefix is not the service',
      [ordersService],
      web,
      'POST',
      '/pkg.OrdersAdmin/List',
      false,
    ],
    ['gRPC service+method', [ordersGet], web, 'POST', '/pkg.Orders/Get', true],
    ['gRPC service+method: other method', [ordersGet], web, 'POST', '/pkg.Orders/Delete', false],
    ['gRPC: not a call path', [ordersService], web, 'POST', '/pkg.Orders/Get/x', false],
    ['gRPC: service alone is no call', [ordersService], web, 'POST', '/pkg.Orders', false],
    [
      'gRPC DENY of one method',
      [anyoneAnything, denyOrdersDelete],
      web,
      'POST',
      '/pkg.Orders/Delete',
      false,
    ],
    [
      'gRPC DENY lets other methods through',
      [anyoneAnything, denyOrdersDelete],
      web,
      'POST',
      '/pkg.Orders/Get',
      true,
    ],
    ['principal-only policy: any path form', [principalsOnly], web, 'GET', '/a/../b', true],
    ['principal-only policy: any method case', [principalsOnly], web, 'get', '/', true],
  ];
  it.each(cases)('%s', (_name, policies, principal, method, path, allowed) => {
    expect(authorizeRequest(policies, { principal, port: 8080, method, path }).allow).toBe(allowed);
  });

  it('port outside the rule', () => {
    expect(
      authorizeRequest([onPort8080], { principal: web, port: 9090, method: 'GET', path: '/' }),
    ).toEqual({ allow: false, reason: `no AuthorizationPolicy allows ${web} to GET /` });
  });

  it('names the policy that allowed and the one that denied', () => {
    const req = { principal: batch, port: 8080, path: '/x?y=1' };
    expect(authorizeRequest([anyoneAnything, denyBatchWrites], { ...req, method: 'GET' })).toEqual({
      allow: true,
      policy: 'anyone',
    });
    expect(authorizeRequest([anyoneAnything, denyBatchWrites], { ...req, method: 'PUT' })).toEqual({
      allow: false,
      reason: 'denied by AuthorizationPolicy deny-batch-writes',
      policy: 'deny-batch-writes',
    });
  });

  it('says what no policy allowed, without the query', () => {
    expect(
      authorizeRequest([webReadsPublic], {
        principal: web,
        port: 8080,
        method: 'POST',
        path: '/admin?x=1',
      }),
    ).toEqual({ allow: false, reason: `no AuthorizationPolicy allows ${web} to POST /admin` });
  });
});

describe('methods must be upper case where policies match on them', () => {
  // RFC 9110 methods are case-sensitive, but frameworks such as Express lower-case them
  // before routing: a DENY of POST must not be passed with "post".
  const cases: Case[] = [
    ['lower case against a DENY', [anyoneAnything, denyBatchWrites], batch, 'post', '/x', false],
    ['mixed case against a DENY', [anyoneAnything, denyBatchWrites], batch, 'Post', '/x', false],
    ['lower case against an ALLOW', [webReadsPublic], web, 'get', '/public', false],
    [
      'an unknown upper-case method is judged by the rules',
      [denyBatchWrites],
      batch,
      'PURGE',
      '/x',
      true,
    ],
  ];
  it.each(cases)('%s', (_name, policies, principal, method, path, allowed) => {
    expect(authorizeRequest(policies, { principal, port: 8080, method, path }).allow).toBe(allowed);
  });

  it('says why', () => {
    const d = authorizeRequest([denyBatchWrites], {
      principal: batch,
      port: 80,
      method: 'post',
      path: '/',
    });
    expect(d).toEqual({
      allow: false,
      reason:
        'method "post" is refused: an AuthorizationPolicy of this service matches on methods, and they must be upper-case letters',
    });
  });
});

describe('paths not in normal form are refused where policies match on paths', () => {
  // Each would reach /admin (or escape /public) in an app that normalizes its paths.
  const attacks: Array<[path: string, problem: string]> = [
    ['/public/../admin', 'it has a ".." segment'],
    ['/public/./../admin', 'it has a "." segment'],
    ['/public/..', 'it has a ".." segment'],
    ['/public/%2e%2e/admin', 'it has an encoded "." (%2e) that should be sent as is'],
    ['/public/.%2E/admin', 'it has an encoded "." (%2E) that should be sent as is'],
    ['/public%2f..%2fadmin', 'it has an encoded "/" (%2f)'],
    ['/public%2F..%2Fadmin', 'it has an encoded "/" (%2F)'],
    ['/public%5c..%5cadmin', 'it has an encoded "\\" (%5c)'],
    ['/public\\..\\admin', 'it has a "\\"'],
    ['/%61dmin', 'it has an encoded "a" (%61) that should be sent as is'],
    ['//admin', 'it has an empty segment ("//")'],
    ['/public//../admin', 'it has an empty segment ("//")'],
    ['/public/..;/admin', 'it has a ";" (path parameters)'],
    ['/admin;jsessionid=1', 'it has a ";" (path parameters)'],
    ['/admin%00', 'it has an encoded control character (%00)'],
    ['/admin%zz', 'it has a "%" that does not start a %XX escape'],
    ['/admin%', 'it has a "%" that does not start a %XX escape'],
    ['/admin#x', 'it has a "#"'],
    ['/admin\tx', 'it has a character outside visible ASCII'],
    ['/ädmin', 'it has a character outside visible ASCII'],
    ['*', 'it does not start with "/"'],
    ['http://echo/admin', 'it does not start with "/"'],
  ];
  // An ALLOW of /public* must not let these through, and a DENY of /admin* must not miss them.
  const publicOnly = policy('public', 'ALLOW', [{ to: [{ paths: ['/public*'] }] }]);
  it.each(attacks)('%s', (path, problem) => {
    for (const policies of [[publicOnly], [anyoneAnything, denyAdmin]]) {
      expect(authorizeRequest(policies, { principal: web, port: 80, method: 'GET', path })).toEqual(
        {
          allow: false,
          reason: `path is refused: an AuthorizationPolicy of this service matches on paths, and this path is not in normal form (${problem}); send it normalized`,
        },
      );
    }
  });

  it('also for policies that match on gRPC calls', () => {
    const d = authorizeRequest([anyoneAnything, denyOrdersDelete], {
      principal: web,
      port: 80,
      method: 'POST',
      path: '/pkg.Orders/x/../Delete',
    });
    expect(d.allow).toBe(false);
  });

  const fine = [
    '/',
    '/public/',
    '/public/a%20b',
    '/public/%C3%A4',
    '/public/a%3Fb',
    '/public/a.b/..c/...',
    '/public/x?next=/../admin',
    "/public/-._~!$&'()*+,=:@",
  ];
  it.each(fine)('accepts %s', (path) => {
    const publicOnly2 = policy('public', 'ALLOW', [{ to: [{ paths: ['/*'] }] }]);
    expect(
      authorizeRequest([publicOnly2], { principal: web, port: 80, method: 'GET', path }).allow,
    ).toBe(true);
  });
});

describe('grpcCallOf', () => {
  const table: Array<[string, { service: string; method: string } | undefined]> = [
    ['/pkg.Orders/Get', { service: 'pkg.Orders', method: 'Get' }],
    ['/Orders/Get', { service: 'Orders', method: 'Get' }],
    ['/pkg.Orders/', undefined],
    ['//Get', undefined],
    ['/pkg.Orders/Get/', undefined],
    ['pkg.Orders/Get', undefined],
  ];
  it.each(table)('%s', (path, call) => expect(grpcCallOf(path)).toEqual(call));
});
