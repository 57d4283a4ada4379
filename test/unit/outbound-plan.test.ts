// The outbound path's decisions, table-style: what a routed destination means (refuse,
// passthrough, a mesh port served opaque or after detection), which stack a detected protocol
// goes to, and how a chosen endpoint is reached.
import { describe, expect, it } from 'vitest';
import { MeshState } from '../../src/proxy/mesh-state.js';
import type { Detected } from '../../src/proxy/outbound/detect.js';
import {
  chooseStack,
  peerNodeIdentity,
  planEndpoint,
  planOutbound,
} from '../../src/proxy/outbound/plan.js';
import { routeOutbound } from '../../src/proxy/outbound/route.js';
import { computedTraffic } from '../../src/proxy/traffic-policies.js';
import { serviceDoc, viewOf, workloadDoc } from '../helpers/mesh-views.js';

const VIP = '240.240.0.9';
const state = new MeshState('node1', computedTraffic());
state.update(
  viewOf([
    serviceDoc('shop', VIP, [
      { port: 80, targetPort: 8080, protocol: 'http' },
      { port: 81, protocol: 'http2' },
      { port: 82, protocol: 'grpc' },
      { port: 83, protocol: 'auto' },
      { port: 84, protocol: 'tcp' },
      { port: 85 },
    ]),
    workloadDoc('node2', 'shop', '10.0.0.2', 8080),
  ]),
);
const plan = (address: string, port: number) =>
  planOutbound(routeOutbound(state.view!, state.endpointIndex, { address, port, family: 4 }));

describe('the outbound plan of a routed destination', () => {
  it.each([
    [80, 'http', 'detect'],
    [81, 'http2', 'detect'],
    [82, 'grpc', 'detect'],
    [83, 'auto', 'detect'],
    [85, 'auto', 'detect'],
    [84, 'tcp', 'opaque'],
  ])('VIP port %i (protocol %s) is served %s', (port, protocol, how) => {
    expect(plan(VIP, port)).toMatchObject({
      kind: 'mesh',
      service: { name: 'shop' },
      port: { port, protocol },
      via: 'vip',
      protocol: how,
    });
  });

  it('an endpoint address is its service port, reached via the endpoint', () => {
    expect(plan('10.0.0.2', 8080)).toMatchObject({
      kind: 'mesh',
      port: { port: 80 },
      via: 'endpoint',
      protocol: 'detect',
    });
  });

  it('a VIP port the service does not declare is refused under the service', () => {
    expect(plan(VIP, 99)).toEqual({
      kind: 'refuse',
      dst_service: 'shop',
      close_reason: 'no_such_port',
      error: 'service shop has no port 99 (it declares 80, 81, 82, 83, 84, 85)',
    });
  });

  it('an external destination passes through, or is refused as external', () => {
    expect(plan('10.9.9.9', 80)).toEqual({ kind: 'passthrough' });
    expect(planOutbound({ kind: 'refuse', reason: 'outbound policy is refuse' })).toEqual({
      kind: 'refuse',
      dst_service: 'external',
      close_reason: 'refused',
      error: 'outbound policy is refuse',
    });
  });
});

describe('the stack a detected protocol goes to', () => {
  it.each<[Detected, ReturnType<typeof chooseStack>]>([
    [{ kind: 'http1' }, { stack: 'http', version: 'http1' }],
    [{ kind: 'http2' }, { stack: 'http', version: 'http2' }],
    [
      { kind: 'tls', sni: 'db.example' },
      { stack: 'opaque', why: 'tls', sni: 'db.example' },
    ],
    [{ kind: 'tls' }, { stack: 'opaque', why: 'tls' }],
    [
      { kind: 'opaque', why: 'no bytes within 100 ms' },
      { stack: 'opaque', why: 'no bytes within 100 ms' },
    ],
  ])('%j -> %j', (detected, stack) => {
    expect(chooseStack(detected)).toEqual(stack);
  });
});

describe('how a chosen endpoint is reached', () => {
  const svc = 'spiffe://weft.local/svc/web';
  it.each([
    ['node1', svc, true, { kind: 'local' }],
    ['node1', undefined, false, { kind: 'local' }],
    ['node2', svc, true, { kind: 'tunnel', expectedSpiffeId: 'spiffe://weft.local/node/node2' }],
    [
      'node2',
      undefined,
      true,
      {
        kind: 'no_identity',
        reason: 'this host has no certificate yet: it has not joined the control plane',
      },
    ],
    ['node2', svc, false, { kind: 'no_identity' }],
  ])('endpoint on %s, source %s, tunnels %s: %j', (node, source, tunnels, expected) => {
    expect(
      planEndpoint({
        endpointNode: node,
        thisNode: 'node1',
        sourceSpiffeId: source,
        tunnels,
      }),
    ).toMatchObject(expected);
  });

  it('the peer agent must hold the node identity of the endpoint host, in our trust domain', () => {
    expect(peerNodeIdentity('spiffe://corp.test/node/a', 'b')).toBe('spiffe://corp.test/node/b');
    expect(peerNodeIdentity('not a spiffe id', 'b')).toBeUndefined();
  });

  it('answers the same when asked again (memoized), per source and node', () => {
    for (let round = 0; round < 2; round++) {
      expect(peerNodeIdentity('spiffe://corp.test/svc/web', 'b')).toBe('spiffe://corp.test/node/b');
      expect(peerNodeIdentity('spiffe://other.test/svc/web', 'b')).toBe(
        'spiffe://other.test/node/b',
      );
      expect(peerNodeIdentity('spiffe://corp.test/svc/web', 'c')).toBe('spiffe://corp.test/node/c');
      expect(() => peerNodeIdentity('spiffe://corp.test/svc/web', 'Not_A_Label')).toThrow(
        /DNS label/,
      );
    }
  });
});
