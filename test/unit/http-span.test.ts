// What a request's span says (OTel HTTP semantic conventions), and the agent config's
// telemetry.tracing section: what it accepts and what it refuses, naming the field.
import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../src/agent/config.js';
import { httpSpan, spanOutcome } from '../../src/telemetry/http-span.js';

const services = { src: 'web', dst: 'orders' };

describe('httpSpan', () => {
  it('names the span by its method and records the semconv attributes', () => {
    expect(
      httpSpan(
        'client',
        {
          method: 'GET',
          authority: 'orders.mesh:8080',
          path: '/v1/orders?token=secret',
          version: '1.1',
        },
        services,
      ),
    ).toEqual({
      name: 'GET',
      kind: 'client',
      attributes: {
        'http.request.method': 'GET',
        'url.scheme': 'http',
        'url.path': '/v1/orders',
        'network.protocol.name': 'http',
        'network.protocol.version': '1.1',
        'server.address': 'orders.mesh',
        'server.port': 8080,
        'weft.src.service': 'web',
        'weft.dst.service': 'orders',
      },
    });
  });

  it.each([
    ['orders.mesh', { 'server.address': 'orders.mesh' }],
    ['10.0.0.7:80', { 'server.address': '10.0.0.7', 'server.port': 80 }],
    ['[fd00::7]:8443', { 'server.address': 'fd00::7', 'server.port': 8443 }],
    ['[fd00::7]', { 'server.address': 'fd00::7' }],
    ['host:99999', { 'server.address': 'host' }],
    ['', {}],
  ])('authority %j', (authority, expected) => {
    const { attributes } = httpSpan(
      'server',
      { method: 'POST', authority, path: '/', version: '2' },
      services,
    );
    const server = Object.fromEntries(
      Object.entries(attributes).filter(([k]) => k.startsWith('server.')),
    );
    expect(server).toEqual(expected);
  });

  it('records an unknown method as _OTHER with the original, named HTTP', () => {
    const span = httpSpan(
      'server',
      { method: 'FROBNICATE', authority: 'a', path: '/', version: '2' },
      services,
    );
    expect(span.name).toBe('HTTP');
    expect(span.attributes['http.request.method']).toBe('_OTHER');
    expect(span.attributes['http.request.method_original']).toBe('FROBNICATE');
  });
});

describe('spanOutcome', () => {
  it.each([
    ['client', { status: 200 }, undefined],
    ['server', { status: 200 }, undefined],
    ['client', { status: 404 }, '404'],
    ['server', { status: 404 }, undefined],
    ['client', { status: 503 }, '503'],
    ['server', { status: 500 }, '500'],
    ['client', { status: 0 }, 'no_response'],
    ['server', { status: 503, error: 'no_healthy_endpoint' }, 'no_healthy_endpoint'],
    ['client', { status: 200, grpcStatus: 0 }, undefined],
    ['client', { status: 200, grpcStatus: 5 }, '5'],
    ['server', { status: 200, grpcStatus: 5 }, undefined],
    ['server', { status: 200, grpcStatus: 14 }, '14'],
    ['server', { status: 200, grpcStatus: 4 }, '4'],
  ] as const)('%s %j: error %s', (kind, result, errorType) => {
    const outcome = spanOutcome(kind, result);
    expect(outcome.errorType).toBe(errorType);
    expect(outcome.attributes['error.type']).toBe(errorType);
    if (result.status > 0)
      expect(outcome.attributes['http.response.status_code']).toBe(result.status);
    else expect(outcome.attributes).not.toHaveProperty('http.response.status_code');
    if ('grpcStatus' in result)
      expect(outcome.attributes).toMatchObject({
        'rpc.system': 'grpc',
        'rpc.grpc.status_code': result.grpcStatus,
      });
  });
});

describe('agent.yaml telemetry.tracing', () => {
  const parse = (tracing: unknown) =>
    parseAgentConfig(JSON.stringify({ telemetry: { tracing } }), 'agent.yaml').telemetry.tracing;

  it('is off by default (propagation only)', () => {
    expect(parseAgentConfig('{}', 'agent.yaml').telemetry.tracing).toEqual({});
  });

  it.each([
    [{ otlpEndpoint: 'http://127.0.0.1:4318/v1/traces' }],
    [{ otlpEndpoint: 'https://collector.example:4318/v1/traces', sampleRatio: 0.25 }],
    [{ otlpEndpoint: 'http://[::1]:4318/otlp/v1/traces', sampleRatio: 0 }],
  ])('accepts %j', (tracing) => {
    expect(parse(tracing)).toEqual(tracing);
  });

  it.each([
    [
      { otlpEndpoint: 'collector:4318' },
      'telemetry.tracing.otlpEndpoint: must be http:// or https://',
    ],
    [{ otlpEndpoint: 'not a url' }, 'telemetry.tracing.otlpEndpoint: not a URL'],
    [
      { otlpEndpoint: 'grpc://c:4317' },
      'telemetry.tracing.otlpEndpoint: must be http:// or https://',
    ],
    [
      { otlpEndpoint: 'http://127.0.0.1:4318' },
      'telemetry.tracing.otlpEndpoint: needs the traces path: http://127.0.0.1:4318/v1/traces',
    ],
    [{ otlpEndpoint: 'http://u:p@c:4318/v1/traces' }, 'otlpEndpoint: must not carry credentials'],
    [{ otlpEndpoint: 'http://c:4318/v1/traces#x' }, 'otlpEndpoint: must not have a #fragment'],
    [{ otlpEndpoint: 42 }, 'telemetry.tracing.otlpEndpoint: '],
    [{ sampleRatio: 0.5 }, 'telemetry.tracing.sampleRatio: only applies with otlpEndpoint'],
    [{ otlpEndpoint: 'http://c:4318/v1/traces', sampleRatio: 1.5 }, 'sampleRatio: must be 0-1'],
    [{ otlpEndpoint: 'http://c:4318/v1/traces', sampleRatio: -1 }, 'sampleRatio: must be 0-1'],
    [{ otlpEndpont: 'http://c:4318/v1/traces' }, 'telemetry.tracing: '],
  ])('refuses %j', (tracing, message) => {
    expect(() => parse(tracing)).toThrow(message);
  });

  it('refuses unknown fields of telemetry', () => {
    expect(() =>
      parseAgentConfig(JSON.stringify({ telemetry: { metrics: {} } }), 'agent.yaml'),
    ).toThrow('agent.yaml: telemetry: ');
  });
});
