// The app's HTTP/1.1 response headers (undici's raw [name, value, ...]) become the end-to-end
// map in one pass (endToEndRaw): it must give what Node's parse followed by endToEnd gives.
import { describe, expect, it } from 'vitest';
import { endToEndRaw } from '../../src/proxy/http/wire-headers.js';

const b = (s: string) => Buffer.from(s);

describe('endToEndRaw: raw HTTP/1.1 header lines to the end-to-end fields', () => {
  const cases: Array<[string, (Buffer | string)[], Record<string, string | string[]>]> = [
    [
      'names lower-cased, Buffers read',
      [b('Content-Type'), b('text/plain'), b('X-A'), b('1')],
      { 'content-type': 'text/plain', 'x-a': '1' },
    ],
    [
      'a repeated field joined with ", "',
      ['X-A', '1', 'x-a', '2', 'X-A', '3'],
      { 'x-a': '1, 2, 3' },
    ],
    [
      'set-cookie always an array',
      ['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'X', 'y'],
      { 'set-cookie': ['a=1', 'b=2'], x: 'y' },
    ],
    [
      'a field Node keeps the first of',
      ['Content-Length', '5', 'content-length', '7', 'Location', '/a', 'Location', '/b'],
      { 'content-length': '5', location: '/a' },
    ],
    [
      'hop-by-hop fields and weft-* dropped',
      [
        'Connection',
        'keep-alive',
        'Keep-Alive',
        'timeout=5',
        'Transfer-Encoding',
        'chunked',
        'Upgrade',
        'h2c',
        'Host',
        'h',
        'Weft-Reason',
        'x',
        'X-B',
        '2',
      ],
      { 'x-b': '2' },
    ],
    [
      'the fields Connection names dropped, wherever they stand',
      ['X-Before', '1', 'Connection', 'X-Before, x-after', 'X-After', '2', 'X-Kept', '3'],
      { 'x-kept': '3' },
    ],
    [
      'Connection repeated: every line counts',
      ['Connection', 'x-a', 'X-A', '1', 'X-B', '2', 'connection', ' X-B '],
      {},
    ],
    [
      'te: trailers kept, other TE values not',
      ['TE', 'gzip', 'te', 'Trailers', 'Grpc-Status', '0'],
      { 'grpc-status': '0', te: 'trailers' },
    ],
    ['te without trailers dropped', ['TE', 'gzip'], {}],
    [
      'te kept even when Connection names it',
      ['Connection', 'TE', 'TE', 'trailers'],
      { te: 'trailers' },
    ],
    ['nothing', [], {}],
  ];
  it.each(cases)('%s', (_name, raw, want) => {
    const got = endToEndRaw(raw);
    expect(got).toStrictEqual(want);
    // Key order as the old two passes gave (Object.keys of the map forwarded on the stream).
    expect(Object.keys(got)).toEqual(Object.keys(want));
  });
});
