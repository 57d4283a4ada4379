// The outbound HTTP stack's pure pieces, table-style: the wire headers of a request riding the
// tunnel, the agent's own answers (HTTP and gRPC trailers-only), trailers and gRPC status
// handling, the replayed head of an Upgrade, and which caller addresses are sent to peers.
import { describe, expect, it } from 'vitest';
import { responseStatus } from '../../src/proxy/http/outbound-upgrade.js';
import {
  acceptsTrailers,
  grpcStatusOf,
  isGrpc,
  rawRequestHead,
  tunnelRequestHeaders,
} from '../../src/proxy/http/outbound-wire.js';
import { endToEnd } from '../../src/proxy/http/wire-headers.js';
import { clientOf } from '../../src/proxy/outbound/opaque.js';

describe('the wire headers of a request riding the tunnel', () => {
  const base = {
    method: 'POST',
    authority: 'orders.mesh',
    path: '/v1/orders?x=1',
    headers: endToEnd({
      'content-type': 'application/json',
      connection: 'keep-alive, x-hop',
      'x-hop': 'gone',
      'keep-alive': 'timeout=5',
      'transfer-encoding': 'chunked',
      'weft-target': '10.9.9.9:1',
      'weft-client-addr': '10.9.9.9:2',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    }),
  };

  it('HTTP/1.1 from the app: the target, the original protocol and the client; the app cannot steer them', () => {
    expect(
      tunnelRequestHeaders(
        { ...base, version: '1.1' },
        { address: '10.0.0.3', port: 8080 },
        { address: '10.0.0.1', port: 40000 },
      ),
    ).toEqual({
      ':method': 'POST',
      ':scheme': 'http',
      ':authority': 'orders.mesh',
      ':path': '/v1/orders?x=1',
      'content-type': 'application/json',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      'weft-target': '10.0.0.3:8080',
      'weft-orig-proto': 'HTTP/1.1',
      'weft-client-addr': '10.0.0.1:40000',
    });
  });

  it('HTTP/2 from the app: no orig-proto; an IPv6 target in brackets; no client when unknown', () => {
    const h = tunnelRequestHeaders(
      { ...base, version: '2' },
      { address: 'fd00::3', port: 8080 },
      undefined,
    );
    expect(h['weft-target']).toBe('[fd00::3]:8080');
    expect(h).not.toHaveProperty('weft-orig-proto');
    expect(h).not.toHaveProperty('weft-client-addr');
  });
});

describe('gRPC and trailers', () => {
  it.each([
    ['application/grpc', true],
    ['application/grpc+proto', true],
    ['application/grpc;charset=utf-8', true],
    ['APPLICATION/GRPC', true],
    ['application/grpc-web', false],
    ['application/json', false],
    [undefined, false],
  ])('content-type %s is gRPC: %s', (ct, grpc) => {
    expect(isGrpc(ct)).toBe(grpc);
  });

  it.each([
    [{}, { 'grpc-status': '0' }, 0],
    [{ 'grpc-status': '7' }, undefined, 7],
    [{ 'grpc-status': '7' }, { 'grpc-status': '14' }, 14],
    [{}, undefined, undefined],
    [{}, { 'grpc-status': 'x' }, undefined],
  ])('headers %j, trailers %j: grpc status %s', (headers, trailers, status) => {
    expect(grpcStatusOf(headers, trailers)).toBe(status);
  });

  it.each([
    ['trailers', true],
    ['gzip, Trailers', true],
    ['gzip', false],
    [undefined, false],
  ])('TE %s accepts trailers: %s', (te, ok) => {
    expect(acceptsTrailers(te)).toBe(ok);
  });
});

describe('the replayed head of an Upgrade or CONNECT', () => {
  it('keeps the raw lines in order, Upgrade included, and drops weft-* fields', () => {
    expect(
      rawRequestHead('GET', '/chat', '1.1', [
        'Host',
        'web.mesh',
        'Connection',
        'Upgrade',
        'Upgrade',
        'websocket',
        'Weft-Target',
        '10.9.9.9:1',
        'Sec-WebSocket-Key',
        'dGhlIHNhbXBsZSBub25jZQ==',
      ]),
    ).toBe(
      'GET /chat HTTP/1.1\r\nHost: web.mesh\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
  });
});

describe("the caller's address sent to peers (weft-client-addr)", () => {
  it.each([
    ['10.0.0.1', 40000, { address: '10.0.0.1', port: 40000 }],
    ['::ffff:10.0.0.1', 40000, { address: '10.0.0.1', port: 40000 }],
    ['fd00::1', 40000, { address: 'fd00::1', port: 40000 }],
    ['127.0.0.1', 40000, undefined],
    ['::1', 40000, undefined],
    [undefined, undefined, undefined],
  ])('%s:%s -> %j', (remoteAddress, remotePort, sent) => {
    expect(clientOf({ remoteAddress, remotePort })).toEqual(sent);
  });
});

describe("an Upgrade's status, read from the endpoint's first line", () => {
  it.each([
    ['HTTP/1.1 101 Switching Protocols\r\n', 101],
    ['HTTP/1.1 200 Connection established\r\n', 200],
    ['HTTP/1.0 404 Not Found\r\n', 404],
    ['HTTP/1.1 426\r\n', 426],
    ['HTTP/1.1 10', undefined], // not all there yet
    ['SSH-2.0-OpenSSH\r\n', undefined], // not HTTP at all
    ['HTTP/2 200\r\n', undefined],
  ])('%j: %j', (head, status) => {
    expect(responseStatus(head)).toBe(status);
  });
});
