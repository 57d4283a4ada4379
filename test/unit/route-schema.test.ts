// What `weft apply` accepts of HTTPRoute and GRPCRoute, table-style: every field the data path
// enforces is accepted (route timeouts included), and what cannot work (a redirect with
// backends, a prefix rewrite on an exact match, a try longer than the whole request) is refused
// with a message.
import { describe, expect, it } from 'vitest';
import { validateResource } from '../../src/api/resources/index.js';

const http = (rule: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'weft/v1',
  kind: 'HTTPRoute',
  metadata: { name: 'r' },
  spec: { parentRefs: [{ name: 'web' }], rules: [rule], ...extra },
});
const grpc = (rule: Record<string, unknown>) => ({
  apiVersion: 'weft/v1',
  kind: 'GRPCRoute',
  metadata: { name: 'g' },
  spec: { parentRefs: [{ name: 'web' }], rules: [rule] },
});
const filter = (type: string, field: string, value: unknown) => ({ type, [field]: value });

function problems(doc: unknown): string[] {
  const r = validateResource(doc);
  return r.ok ? [] : r.problems;
}

describe('accepted', () => {
  const table: Array<[string, unknown]> = [
    [
      'matches on path, headers, query parameters and method',
      http({
        matches: [
          {
            path: { type: 'RegularExpression', value: '/items/[0-9]+' },
            headers: [{ name: 'x-canary', value: '1' }],
            queryParams: [{ type: 'RegularExpression', name: 'v', value: '2|3' }],
            method: 'GET',
          },
        ],
      }),
    ],
    [
      'hostnames, exact and wildcard',
      http({}, { hostnames: ['api.example.com', '*.example.com'] }),
    ],
    [
      'every filter',
      http({
        matches: [{ path: { type: 'PathPrefix', value: '/api' } }],
        filters: [
          filter('RequestHeaderModifier', 'requestHeaderModifier', {
            set: [{ name: 'x-a', value: '1' }],
          }),
          filter('ResponseHeaderModifier', 'responseHeaderModifier', { remove: ['server'] }),
          filter('URLRewrite', 'urlRewrite', {
            hostname: 'web2.mesh',
            path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2' },
          }),
          filter('RequestMirror', 'requestMirror', { backendRef: { name: 'shadow' } }),
          filter('RequestMirror', 'requestMirror', { backendRef: { name: 'shadow2', port: 81 } }),
          filter('Fault', 'fault', {
            delay: { fixedDelay: '100ms', percentage: 10 },
            abort: { httpStatus: 503, percentage: 5 },
          }),
        ],
      }),
    ],
    [
      'route timeouts: the whole request and each try',
      http({ timeouts: { request: '3s', backendRequest: '500ms' } }),
    ],
    ['a request timeout alone', http({ timeouts: { request: '3s' } })],
    ['hedging after a fixed delay', http({ hedging: { delay: '50ms', maxHedges: 2 } })],
    ["hedging after the rule's p95 (maxHedges defaults to 1)", http({ hedging: { delay: 'p95' } })],
    ['hedging of a GRPCRoute rule', grpc({ hedging: { delay: '20ms' } })],
    ['a per-try timeout alone', http({ timeouts: { backendRequest: '3s' } })],
    [
      'a redirect',
      http({
        filters: [
          filter('RequestRedirect', 'requestRedirect', {
            scheme: 'https',
            port: 8443,
            statusCode: 301,
          }),
        ],
      }),
    ],
    [
      'a GRPCRoute with service/method matches, a split and a gRPC abort',
      grpc({
        matches: [
          {
            method: { service: 'pkg.Greeter', method: 'Hello' },
            headers: [{ name: 'x-a', value: '1' }],
          },
        ],
        backendRefs: [
          { name: 'web', weight: 9 },
          { name: 'web-v2', weight: 1 },
        ],
        filters: [filter('Fault', 'fault', { abort: { grpcStatus: 14, percentage: 50 } })],
      }),
    ],
  ];
  for (const [what, doc] of table) {
    it(what, () => expect(problems(doc)).toEqual([]));
  }
});

describe('refused, with a message naming the field', () => {
  const table: Array<[string, unknown, string]> = [
    [
      'a hedging delay that is neither a duration nor p95',
      http({ hedging: { delay: 'p99' } }),
      'spec.rules[0].hedging.delay: must be "p95" or a duration like "500ms", "90s", "5m" or "24h", greater than zero',
    ],
    [
      'more hedges than 3',
      http({ hedging: { delay: '10ms', maxHedges: 4 } }),
      'spec.rules[0].hedging.maxHedges: must be a whole number 1-3',
    ],
    [
      'hedging without a delay',
      http({ hedging: { maxHedges: 1 } }),
      'spec.rules[0].hedging.delay: must be "p95" or a duration like "500ms", "90s", "5m" or "24h"',
    ],
    [
      'hedging a redirect',
      http({
        hedging: { delay: '10ms' },
        filters: [filter('RequestRedirect', 'requestRedirect', {})],
      }),
      'spec.rules[0].hedging: a RequestRedirect rule is answered by the mesh and sends nothing to a backend: remove hedging',
    ],
    [
      'a try longer than the whole request',
      http({ timeouts: { request: '1s', backendRequest: '2s' } }),
      'spec.rules[0].timeouts.backendRequest: must not be longer than timeouts.request',
    ],
    [
      'a timeout without its unit',
      http({ timeouts: { request: '3' } }),
      'spec.rules[0].timeouts.request: must be a duration like "500ms", "90s", "5m" or "24h", greater than zero',
    ],
    [
      'a redirect with backendRefs',
      http({
        backendRefs: [{ name: 'web' }],
        filters: [filter('RequestRedirect', 'requestRedirect', {})],
      }),
      'spec.rules[0].backendRefs: a RequestRedirect rule is answered by the mesh and sends nothing to a backend: remove backendRefs',
    ],
    [
      'a redirect and a rewrite in one rule',
      http({
        filters: [
          filter('RequestRedirect', 'requestRedirect', {}),
          filter('URLRewrite', 'urlRewrite', { hostname: 'a.mesh' }),
        ],
      }),
      'spec.rules[0].filters[1]: a rule cannot both redirect and rewrite: keep one',
    ],
    [
      'ReplacePrefixMatch on an Exact match',
      http({
        matches: [{ path: { type: 'Exact', value: '/a' } }],
        filters: [
          filter('URLRewrite', 'urlRewrite', {
            path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/b' },
          }),
        ],
      }),
      'spec.rules[0].filters[0]: ReplacePrefixMatch needs every match of the rule to be a PathPrefix path match',
    ],
    [
      'a filter type without its field',
      http({ filters: [{ type: 'URLRewrite' }] }),
      'spec.rules[0].filters[0].urlRewrite: required with type URLRewrite',
    ],
    [
      'one filter type twice',
      http({
        filters: [
          filter('RequestHeaderModifier', 'requestHeaderModifier', { remove: ['a'] }),
          filter('RequestHeaderModifier', 'requestHeaderModifier', { remove: ['b'] }),
        ],
      }),
      'spec.rules[0].filters[1].type: RequestHeaderModifier appears twice in this rule; merge them into one',
    ],
    [
      "setting weft's own header",
      http({
        filters: [
          filter('RequestHeaderModifier', 'requestHeaderModifier', {
            set: [{ name: 'weft-target', value: 'x' }],
          }),
        ],
      }),
      "spec.rules[0].filters[0].requestHeaderModifier.set[0].name: weft-* fields are the mesh's own and cannot be set",
    ],
    [
      'a redirect status that is not a redirect',
      http({ filters: [filter('RequestRedirect', 'requestRedirect', { statusCode: 200 })] }),
      'spec.rules[0].filters[0].requestRedirect.statusCode: must be 301, 302, 303, 307 or 308',
    ],
    [
      'an abort with both statuses',
      http({ filters: [filter('Fault', 'fault', { abort: { httpStatus: 503, grpcStatus: 14 } })] }),
      'spec.rules[0].filters[0].fault.abort: needs exactly one of httpStatus or grpcStatus',
    ],
    [
      'a percentage over 100',
      http({
        filters: [filter('Fault', 'fault', { delay: { fixedDelay: '1s', percentage: 101 } })],
      }),
      'spec.rules[0].filters[0].fault.delay.percentage: must be 0-100',
    ],
    [
      'a hostname with a port',
      http({}, { hostnames: ['web.mesh:80'] }),
      'spec.hostnames[0]: must be a lowercase DNS name, optionally starting with "*." (an IP address is not a hostname)',
    ],
    [
      'a query regex that does not compile',
      http({ matches: [{ queryParams: [{ type: 'RegularExpression', name: 'v', value: '(' }] }] }),
      'spec.rules[0].matches[0].queryParams[0].value: is not a valid regular expression',
    ],
    [
      'a gRPC method match naming nothing',
      grpc({ matches: [{ method: { type: 'Exact' } }] }),
      'spec.rules[0].matches[0].method: needs service, method or both',
    ],
    [
      'a URLRewrite in a GRPCRoute',
      grpc({ filters: [filter('URLRewrite', 'urlRewrite', { hostname: 'a.mesh' })] }),
      'spec.rules[0].filters[0].type: must be one of RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, Fault',
    ],
    [
      'filters on a backendRef (not supported)',
      http({ backendRefs: [{ name: 'web', filters: [] }] }),
      'spec.rules[0].backendRefs[0].filters: unknown field',
    ],
  ];
  for (const [what, doc, message] of table) {
    it(what, () => expect(problems(doc)).toContain(message));
  }
});
