// The resilience state MeshState keeps per service, read from the EFFECTIVE TrafficPolicy: a
// Mesh policy's circuitBreaker, outlierDetection and rateLimit reach every service without its
// own; a Service policy overrides them field by field and inherits the rest.
import { describe, expect, it } from 'vitest';
import { MeshState } from '../../src/proxy/mesh-state.js';
import { DEFAULT_BREAKER_LIMITS } from '../../src/proxy/resilience/breaker.js';
import { computedTraffic } from '../../src/proxy/traffic-policies.js';
import { serviceDoc, viewOf, workloadDoc } from '../helpers/mesh-views.js';

const http = [{ port: 80, targetPort: 8080, protocol: 'http' }];

function trafficPolicy(name: string, targetRef: Record<string, unknown>, spec: object) {
  return {
    apiVersion: 'weft/v1',
    kind: 'TrafficPolicy',
    metadata: { name },
    spec: { targetRef, ...spec },
  };
}

const docs = [
  serviceDoc('plain', '240.240.3.1', http),
  serviceDoc('own', '240.240.3.2', http),
  workloadDoc('node1', 'plain', '10.0.0.1', 8080),
  workloadDoc('node1', 'own', '10.0.0.1', 8080),
  trafficPolicy(
    'defaults',
    { kind: 'Mesh' },
    {
      circuitBreaker: { maxRequests: 7, maxConnections: 9 },
      outlierDetection: { consecutiveFailures: 2, baseEjectionTime: '5s' },
      rateLimit: { maxTokens: 10, tokensPerFill: 10, fillInterval: '1s' },
    },
  ),
  trafficPolicy(
    'own-tp',
    { name: 'own' },
    {
      circuitBreaker: { maxRequests: 3 },
      outlierDetection: { consecutiveFailures: 4 },
      // Valid on its own: a rateLimit names all three fields.
      rateLimit: { maxTokens: 1, tokensPerFill: 1, fillInterval: '1h' },
    },
  ),
];

function stateOf(): MeshState {
  const state = new MeshState('node1', computedTraffic(), () => 0);
  state.update(viewOf(docs));
  return state;
}

describe('resilience state from the effective TrafficPolicy', () => {
  const state = stateOf();

  it('a service without a policy of its own gets the Mesh policy', () => {
    expect(state.breaker('plain').limits).toEqual({
      ...DEFAULT_BREAKER_LIMITS,
      maxRequests: 7,
      maxConnections: 9,
    });
    expect(state.pool('plain', 80)!.outlier).toMatchObject({
      consecutiveFailures: 2,
      baseEjectionMs: 5_000,
    });
    expect(state.rateLimit('plain')?.spec).toEqual({
      maxTokens: 10,
      tokensPerFill: 10,
      fillIntervalMs: 1_000,
    });
  });

  it("a Service policy overrides what it sets and inherits the rest from the Mesh's", () => {
    expect(state.breaker('own').limits).toEqual({
      ...DEFAULT_BREAKER_LIMITS,
      maxRequests: 3,
      maxConnections: 9,
    });
    expect(state.pool('own', 80)!.outlier).toMatchObject({
      consecutiveFailures: 4,
      baseEjectionMs: 5_000,
    });
    expect(state.rateLimit('own')?.spec).toEqual({
      maxTokens: 1,
      tokensPerFill: 1,
      fillIntervalMs: 3_600_000,
    });
  });
});
