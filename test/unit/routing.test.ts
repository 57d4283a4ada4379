// Where connections go, as pure decisions over one snapshot: the outbound route of an original
// destination, the balancer pool of each service port (only workloads on its targetPort), and
// which CONNECT targets the receiving side serves (registered workloads of this host only).
import { describe, expect, it } from 'vitest';
import { canonicalAddress } from '../../src/proxy/address.js';
import { inboundTarget } from '../../src/proxy/inbound/tunnel-inbound.js';
import { MeshState } from '../../src/proxy/mesh-state.js';
import { routeOutbound } from '../../src/proxy/outbound/route.js';
import { computedTraffic } from '../../src/proxy/traffic-policies.js';
import { serviceDoc, viewOf, workloadDoc } from '../helpers/mesh-views.js';

const VIP = '240.240.0.7';

// nginx as in issue 11: 80->8080 (HTTP/1.1) and 81->8081 (h2c); node2 runs both listeners,
// node3 only the 8080 one. redis declares no targetPort: it defaults to the port.
const docs = [
  serviceDoc('nginx', VIP, [
    { port: 80, targetPort: 8080, protocol: 'http' },
    { port: 81, targetPort: 8081, protocol: 'http2' },
  ]),
  serviceDoc('redis', '240.240.0.8', [{ port: 6379, protocol: 'tcp' }]),
  workloadDoc('node2', 'nginx', '10.0.0.2', 8080),
  workloadDoc('node2', 'nginx', '10.0.0.2', 8081),
  workloadDoc('node3', 'nginx', '10.0.0.3', 8080),
  workloadDoc('node3', 'redis', '10.0.0.3', 6379),
];

function stateOf(node: string, extra: Record<string, unknown>[] = []): MeshState {
  const state = new MeshState(node, computedTraffic());
  state.update(viewOf([...docs, ...extra]));
  return state;
}

describe('outbound route', () => {
  const state = stateOf('node1');
  const route = (address: string, port: number) =>
    routeOutbound(state.view!, state.endpointIndex, { address, port, family: 4 });

  it.each([
    [VIP, 80, 'nginx', 80, 'vip'],
    [VIP, 81, 'nginx', 81, 'vip'],
    ['10.0.0.2', 8080, 'nginx', 80, 'endpoint'],
    ['10.0.0.2', 8081, 'nginx', 81, 'endpoint'],
    ['10.0.0.3', 6379, 'redis', 6379, 'endpoint'],
  ])('%s:%i is service %s port %i (by %s)', (address, port, service, servicePort, via) => {
    expect(route(address, port)).toMatchObject({
      kind: 'service',
      service: { name: service },
      port: { port: servicePort },
      via,
    });
  });

  it('a port the VIP does not declare is no_such_port, naming the service and its ports', () => {
    expect(route(VIP, 82)).toEqual({
      kind: 'no_such_port',
      service: expect.objectContaining({ name: 'nginx' }),
      reason: 'service nginx has no port 82 (it declares 80, 81)',
    });
  });

  it('anything else passes through, or is refused when the outbound policy says so', () => {
    expect(route('10.0.0.2', 9999)).toEqual({ kind: 'passthrough' });
    const refusing = stateOf('node1', [
      {
        apiVersion: 'weft/v1',
        kind: 'Mesh',
        metadata: { name: 'default' },
        spec: { outboundPolicy: 'refuse' },
      },
    ]);
    expect(
      routeOutbound(refusing.view!, refusing.endpointIndex, {
        address: '10.9.9.9',
        port: 80,
        family: 4,
      }),
    ).toMatchObject({ kind: 'refuse' });
  });
});

describe('balancer pools, one per service port', () => {
  const picks = (state: MeshState, service: string, port: number, n = 12) =>
    Array.from({ length: n }, () => state.pool(service, port)?.pick()?.key);

  it('a service port balances only over the workloads on its targetPort', () => {
    const state = stateOf('node1');
    expect(new Set(picks(state, 'nginx', 80))).toEqual(
      new Set(['node2-nginx-8080', 'node3-nginx-8080']),
    );
    expect(new Set(picks(state, 'nginx', 81))).toEqual(new Set(['node2-nginx-8081']));
    expect(new Set(picks(state, 'redis', 6379))).toEqual(new Set(['node3-redis-6379']));
  });

  it('a port with no workload on its targetPort has an empty pool: nothing to pick', () => {
    const state = new MeshState('node1', computedTraffic());
    state.update(viewOf([docs[0]!, workloadDoc('node2', 'nginx', '10.0.0.2', 8080)]));
    expect(state.pool('nginx', 81)?.size).toBe(0);
    expect(state.pool('nginx', 81)?.pick()).toBeUndefined();
    expect(state.pool('nginx', 80)?.size).toBe(1);
  });

  it('no pool for a port the service does not declare', () => {
    expect(stateOf('node1').pool('nginx', 8080)).toBeUndefined();
  });

  it('each pool keeps its counters across snapshot versions', () => {
    const state = stateOf('node1');
    const chosen = state.pool('nginx', 81)!.pick()!;
    chosen.active = 3;
    state.update(viewOf([...docs, workloadDoc('node4', 'nginx', '10.0.0.4', 8081)], 2));
    expect(state.pool('nginx', 81)!.size).toBe(2);
    expect(state.pool('nginx', 81)!.find((s) => s.key === 'node2-nginx-8081')?.active).toBe(3);
  });

  it('lists every pool with its service port, for the balancer gauge', () => {
    const pools = [...stateOf('node1').allPools()].map((p) => [p.service, p.port, p.pool.size]);
    expect(pools).toEqual([
      ['nginx', 80, 2],
      ['nginx', 81, 1],
      ['redis', 6379, 1],
    ]);
  });
});

describe('CONNECT targets on the receiving side', () => {
  const v6 = workloadDoc('node2', 'api', 'fd00::2', 9000);

  it.each([
    ['10.0.0.2', 8080, 'node2-nginx-8080'],
    ['10.0.0.2', 8081, 'node2-nginx-8081'],
    ['::ffff:10.0.0.2', 8080, 'node2-nginx-8080'],
    ['fd00:0:0:0:0:0:0:2', 9000, 'node2-api-9000'],
    ['FD00::2', 9000, 'node2-api-9000'],
  ])('%s:%i is the registered workload %s', (address, port, workload) => {
    const where = inboundTarget(stateOf('node2', [v6]), { address, port });
    expect(where).toMatchObject({ kind: 'workload', endpoint: { workload } });
  });

  it.each([
    ['127.0.0.1', 8080, "a workload's port on loopback"],
    ['10.0.0.2', 9999, 'a port no workload is registered on'],
    ['10.0.0.3', 8080, "another host's workload"],
    ['10.0.0.2', 6379, "a port another host's workload uses"],
  ])('%s:%i is refused (%s)', (address, port) => {
    const where = inboundTarget(stateOf('node2', [v6]), { address, port });
    expect(where).toEqual({
      kind: 'not_a_workload',
      reason: `${address}:${port} is not a workload of this host (node2): a CONNECT must name the address and port a workload is registered at`,
    });
  });
});

describe('address spelling', () => {
  it.each([
    ['10.0.0.2', '10.0.0.2'],
    ['::1', '::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['FD00:0::2', 'fd00::2'],
    ['::ffff:10.0.0.2', '10.0.0.2'],
    ['::FFFF:a00:2', '10.0.0.2'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
  ])('%s is %s', (given, canonical) => {
    expect(canonicalAddress(given)).toBe(canonical);
  });
});
