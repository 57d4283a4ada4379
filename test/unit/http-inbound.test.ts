// The inbound HTTP stack's pure decisions: what a tunnel request stream asks for (weft's
// headers, strictly parsed), whether it is served and in which version, and the answers the
// agent makes itself (HTTP status or gRPC trailers-only).
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isGrpc } from '../../src/proxy/http/agent-answer.js';
import { appVersion, authorizeAtL4, decideInbound } from '../../src/proxy/http/inbound-decision.js';
import { parseTunnelRequest } from '../../src/proxy/http/inbound-request.js';
import type { InboundCall } from '../../src/proxy/http/types.js';
import { MeshState } from '../../src/proxy/mesh-state.js';
import { computedTraffic } from '../../src/proxy/traffic-policies.js';
import { serviceDoc, viewOf, workloadDoc } from '../helpers/mesh-views.js';

const PEER = '10.0.0.7';
const base = {
  ':method': 'GET',
  ':path': '/orders?id=1',
  ':authority': 'orders.mesh',
  ':scheme': 'http',
  'weft-target': '10.0.0.9:8080',
};

describe('parseTunnelRequest', () => {
  it.each([
    ['HTTP/2 caller', {}, { version: '2', target: { address: '10.0.0.9', port: 8080 } }],
    ['HTTP/1.1 caller', { 'weft-orig-proto': 'HTTP/1.1' }, { version: '1.1' }],
    [
      'IPv6 target',
      { 'weft-target': '[fd00::9]:80' },
      { target: { address: 'fd00::9', port: 80 } },
    ],
    [
      'client vouched by its own host',
      { 'weft-client-addr': '10.0.0.7:41000' },
      { client: { address: '10.0.0.7', port: 41000 }, clientUnverified: undefined },
    ],
    [
      'client claimed from another host: kept aside, not used',
      { 'weft-client-addr': '10.9.9.9:41000' },
      { client: undefined, clientUnverified: { address: '10.9.9.9', port: 41000 } },
    ],
  ])('%s', (_name, extra, expected) => {
    const head = parseTunnelRequest({ ...base, ...extra }, PEER);
    expect(head).toMatchObject({ ok: true, method: 'GET', path: '/orders?id=1', ...expected });
  });

  it.each([
    ['no weft-target', { 'weft-target': undefined }, /weft-target is missing/],
    ['a name', { 'weft-target': 'orders.mesh:80' }, /"orders\.mesh:80" is not ip:port/],
    ['no port', { 'weft-target': '10.0.0.9' }, /is not ip:port/],
    ['port out of range', { 'weft-target': '10.0.0.9:70000' }, /is not ip:port/],
    ['unknown orig-proto', { 'weft-orig-proto': 'HTTP/1.0' }, /weft-orig-proto "HTTP\/1\.0"/],
    ['loopback client', { 'weft-client-addr': '127.0.0.1:9' }, /weft-client-addr .* loopback/],
    ['no :authority', { ':authority': undefined }, /:authority/],
  ])('refuses %s', (_name, extra, reason) => {
    const headers = { ...base, ...extra } as Record<string, string | undefined>;
    for (const k of Object.keys(headers)) if (headers[k] === undefined) delete headers[k];
    const head = parseTunnelRequest(headers, PEER);
    expect(head.ok).toBe(false);
    if (!head.ok) expect(head.reason).toMatch(reason);
  });

  it('takes an HTTP/1.1 Host when :authority is absent', () => {
    const { ':authority': _, ...rest } = base;
    expect(parseTunnelRequest({ ...rest, host: 'orders.mesh' }, PEER)).toMatchObject({
      ok: true,
      authority: 'orders.mesh',
    });
  });
});

describe('appVersion', () => {
  const ports = [
    { targetPort: 8080, protocol: 'http' as const },
    { targetPort: 9090, protocol: 'grpc' as const },
    { targetPort: 9091, protocol: 'http2' as const },
    { targetPort: 7070, protocol: 'auto' as const },
  ];
  it.each([
    ['1.1', 8080, '1.1'],
    ['2', 8080, '2'],
    ['1.1', 9090, '2'],
    ['1.1', 9091, '2'],
    ['1.1', 7070, '1.1'],
    ['2', 7070, '2'],
    ['1.1', 1234, '1.1'],
  ] as const)('caller %s to workload port %d -> %s', (caller, port, expected) => {
    expect(appVersion(caller, ports, port)).toBe(expected);
  });
});

describe('decideInbound', () => {
  const state = new MeshState('node-b', computedTraffic());
  state.update(
    viewOf([
      serviceDoc('orders', '240.240.0.10', [{ port: 80, targetPort: 8080, protocol: 'grpc' }]),
      workloadDoc('node-b', 'orders', '10.0.0.9', 8080),
      workloadDoc('node-c', 'orders', '10.0.0.10', 8080),
      {
        apiVersion: 'weft/v1',
        kind: 'AuthorizationPolicy',
        metadata: { name: 'only-web' },
        spec: {
          targetRef: { name: 'orders' },
          action: 'ALLOW',
          rules: [{ from: [{ principals: ['spiffe://weft.local/svc/web'] }] }],
        },
      },
    ]),
  );
  const call = (target: string, spiffeId: string): InboundCall => {
    const [address, port] = target.split(':');
    return {
      peer: { spiffeId, address: PEER, port: 1 },
      target: { address: address as string, port: Number(port) },
      client: undefined,
      request: {
        method: 'GET',
        authority: 'orders.mesh',
        path: '/',
        headers: {},
        body: Readable.from([]),
        version: '1.1',
        signal: new AbortController().signal,
      },
    };
  };
  it.each([
    [
      'allowed caller, h2c forced by the grpc port',
      '10.0.0.9:8080',
      'spiffe://weft.local/svc/web',
      { kind: 'serve', service: 'orders', version: '2', policy: 'only-web' },
    ],
    [
      'caller no policy allows',
      '10.0.0.9:8080',
      'spiffe://weft.local/svc/other',
      { kind: 'deny', service: 'orders', reason: expect.stringMatching(/no AuthorizationPolicy/) },
    ],
    [
      "another host's workload",
      '10.0.0.10:8080',
      'spiffe://weft.local/svc/web',
      { kind: 'deny', service: 'unknown', reason: expect.stringMatching(/not a workload/) },
    ],
  ])('%s', (_name, target, principal, expected) => {
    expect(decideInbound(state, call(target, principal), false, authorizeAtL4)).toMatchObject(
      expected,
    );
  });
});

describe('agent answers', () => {
  it.each([
    ['application/grpc', true],
    ['application/grpc+proto', true],
    ['application/grpc-web', false],
    ['application/json', false],
    [undefined, false],
  ])('isGrpc(%s) = %s', (ct, expected) => {
    expect(isGrpc(ct === undefined ? {} : { 'content-type': ct })).toBe(expected);
  });
});
