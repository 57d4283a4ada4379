// The denial answers the inbound stack writes: HTTP 403, and gRPC's trailers-only
// PERMISSION_DENIED with a percent-encoded grpc-message; both carry weft-reason.
import { describe, expect, it } from 'vitest';
import {
  denialKindOf,
  denialResponse,
  grpcMessageEncode,
} from '../../src/proxy/inbound/authorize-response.js';

const denied = {
  allow: false as const,
  reason: 'denied by AuthorizationPolicy deny-admin',
  policy: 'deny-admin',
};

describe('denialResponse', () => {
  it('answers HTTP with 403 and the reason', () => {
    expect(denialResponse('http', denied)).toEqual({
      status: 403,
      headers: { 'weft-reason': 'denied by AuthorizationPolicy deny-admin' },
    });
  });

  it('answers gRPC with HTTP 200, grpc-status 7 and the message in the one headers frame', () => {
    expect(denialResponse('grpc', denied)).toEqual({
      status: 200,
      headers: {
        'content-type': 'application/grpc',
        'grpc-status': '7',
        'grpc-message': 'denied by AuthorizationPolicy deny-admin',
        'weft-reason': 'denied by AuthorizationPolicy deny-admin',
      },
    });
  });

  it('keeps header values to one line of visible ASCII', () => {
    const reason = 'no AuthorizationPolicy allows x to GET /a\r\nset-cookie: y';
    const { headers } = denialResponse('grpc', { allow: false, reason });
    expect(headers['weft-reason']).toBe('no AuthorizationPolicy allows x to GET /a  set-cookie: y');
    expect(headers['grpc-message']).toBe(
      'no AuthorizationPolicy allows x to GET /a%0D%0Aset-cookie: y',
    );
  });
});

describe('grpcMessageEncode (gRPC over HTTP/2: Percent-Encoded)', () => {
  const table: Array<[string, string]> = [
    ['plain text stays', 'plain text stays'],
    ['100% sure', '100%25 sure'],
    ['café', 'caf%C3%A9'],
    ['tab\there', 'tab%09here'],
    ['~ is 0x7e, DEL is \x7f', '~ is 0x7e, DEL is %7F'],
  ];
  it.each(table)('%j', (input, encoded) => {
    expect(grpcMessageEncode(input)).toBe(encoded);
    expect(decodeURIComponent(encoded)).toBe(input);
  });
});

describe('denialKindOf', () => {
  const table: Array<[string | string[] | undefined, 'http' | 'grpc']> = [
    ['application/grpc', 'grpc'],
    ['application/grpc+proto', 'grpc'],
    ['Application/GRPC-web+proto', 'grpc'],
    [['application/grpc'], 'grpc'],
    ['application/json', 'http'],
    [undefined, 'http'],
  ];
  it.each(table)('%j -> %s', (contentType, kind) => expect(denialKindOf(contentType)).toBe(kind));
});
