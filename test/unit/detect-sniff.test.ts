// Protocol detection's pure decisions: which first bytes are an HTTP/1.x request line, the
// HTTP/2 preface, a TLS ClientHello (and its server name), or opaque, and which are too few
// to tell yet ('more').
import { beforeAll, describe, expect, it } from 'vitest';
import {
  HTTP2_PREFACE,
  MAX_CLIENT_HELLO_BYTES,
  MAX_REQUEST_LINE_BYTES,
  parseSni,
  sniffHttpVersion,
  sniffProtocol,
} from '../../src/proxy/outbound/detect-sniff.js';
import { captureClientHello } from '../helpers/client-hello.js';

const b = (text: string) => Buffer.from(text, 'latin1');
const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');
const PREFACE = HTTP2_PREFACE.toString('latin1');

describe('sniffProtocol', () => {
  it.each([
    // nothing yet
    ['', 'more'],
    // the HTTP/2 preface, whole or in part
    [PREFACE, 'http2'],
    [`${PREFACE}\x00\x00\x12\x04\x00\x00\x00\x00\x00`, 'http2'],
    ['P', 'more'],
    ['PRI * HTTP/2.0\r\n', 'more'],
    [PREFACE.slice(0, -1), 'more'],
    ['PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n', 'opaque'],
    ['PRI * HTTP/1.1\r\n', 'http1'],
    // HTTP/1.x request lines: every form of request-target, any token method
    ['GET / HTTP/1.1\r\n', 'http1'],
    ['GET / HTTP/1.1\r\nHost: a\r\n\r\n', 'http1'],
    ['POST /orders?id=7&x=%20 HTTP/1.0\r\n', 'http1'],
    ['GET http://orders.mesh/a HTTP/1.1\r\n', 'http1'],
    ['CONNECT db.example:5432 HTTP/1.1\r\n', 'http1'],
    ['OPTIONS * HTTP/1.1\r\n', 'http1'],
    ['PURGE /cache HTTP/1.1\r\n', 'http1'],
    ['M-SEARCH * HTTP/1.1\r\n', 'http1'],
    ['GET /caf\xc3\xa9 HTTP/1.1\r\n', 'http1'],
    // prefixes of one: wait
    ['G', 'more'],
    ['GET', 'more'],
    ['GET ', 'more'],
    ['GET /ind', 'more'],
    ['GET / ', 'more'],
    ['GET / HTTP/1.', 'more'],
    ['GET / HTTP/1.1', 'more'],
    ['GET / HTTP/1.1\r', 'more'],
    // not a request line
    ['GET / HTTP/2.0\r\n', 'opaque'],
    ['GET / HTTP/1.1\n', 'opaque'],
    ['GET / HTTP/1.x\r\n', 'opaque'],
    ['get / http/1.1\r\n', 'opaque'],
    ['GET  / HTTP/1.1\r\n', 'opaque'],
    [' GET / HTTP/1.1\r\n', 'opaque'],
    ['GET /\t HTTP/1.1\r\n', 'opaque'],
    ['GET /a\x7f HTTP/1.1\r\n', 'opaque'],
    ['GET / HTTP/1.1 \r\n', 'opaque'],
    ['GET /\r\n', 'opaque'],
    ['G(ET / HTTP/1.1\r\n', 'opaque'],
    // other client-speaks-first protocols
    ['*1\r\n$4\r\nPING\r\n', 'opaque'], // redis
    ['PING\r\n', 'opaque'], // redis inline
    ['get foo\r\n', 'opaque'], // memcached
    ['SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n', 'opaque'],
    ['\x00\x00\x00\x08\x04\xd2\x16\x2f', 'opaque'], // postgres SSLRequest
    ['\x17\x03\x03\x00\x10', 'opaque'], // TLS application data
  ])('%j -> %s', (text, expected) => {
    expect(sniffProtocol(b(text))).toBe(expected);
  });

  it('waits for a request line up to its bound, then gives up', () => {
    const start = 'GET /';
    const within = b(start + 'a'.repeat(MAX_REQUEST_LINE_BYTES - start.length - 1));
    const over = b(start + 'a'.repeat(MAX_REQUEST_LINE_BYTES - start.length));
    expect(sniffProtocol(within)).toBe('more');
    expect(sniffProtocol(over)).toBe('opaque');
    expect(sniffProtocol(b('A'.repeat(MAX_REQUEST_LINE_BYTES)))).toBe('opaque');
    const longButWhole = b(`GET /${'a'.repeat(MAX_REQUEST_LINE_BYTES - 30)} HTTP/1.1\r\n`);
    expect(sniffProtocol(longButWhole)).toBe('http1');
  });

  it.each([
    ['16', 'more'],
    ['1603', 'more'],
    ['160301', 'more'],
    ['16030100', 'more'],
    ['160301016b', 'more'],
    ['160301016b01', 'tls'],
    ['160300002001', 'tls'],
    ['160304002001', 'tls'],
    ['160305002001', 'opaque'], // record version past TLS 1.3
    ['160201002001', 'opaque'], // not a 3.x record
    ['160301016b02', 'opaque'], // a ServerHello
    ['160301000001', 'opaque'], // an empty record
    ['160301400101', 'opaque'], // longer than 2^14
  ])('TLS record header %s -> %s', (bytes, expected) => {
    expect(sniffProtocol(hex(bytes))).toBe(expected);
  });
});

describe('sniffHttpVersion (ports declared http)', () => {
  it.each([
    ['', 'more'],
    ['PRI * HTTP/2', 'more'],
    [PREFACE, 'http2'],
    ['GET / HTTP/1.1\r\n', 'http1'],
    ['G', 'http1'],
    ['PRI * HTTP/1.1\r\n', 'http1'],
    ['\x16\x03\x01', 'http1'], // TLS to an HTTP port: its server answers 400
  ])('%j -> %s', (text, expected) => {
    expect(sniffHttpVersion(b(text))).toBe(expected);
  });
});

describe('parseSni, on ClientHellos from tls.connect', () => {
  let named: Buffer;
  let unnamed: Buffer;
  beforeAll(async () => {
    named = await captureClientHello('db.example');
    unnamed = await captureClientHello('');
  });

  it('finds the server name of a whole ClientHello, which sniffs as tls', () => {
    expect(sniffProtocol(named)).toBe('tls');
    expect(parseSni(named)).toEqual({ kind: 'done', sni: 'db.example' });
  });

  it('asks for more on every proper prefix', () => {
    for (let n = 0; n < named.length; n++) {
      expect(parseSni(named.subarray(0, n)), `first ${n} bytes`).toEqual({ kind: 'more' });
    }
  });

  it('ignores what follows the hello (early data, the next record)', () => {
    const next = Buffer.concat([named, hex('1703030005'), b('hello')]);
    expect(parseSni(next)).toEqual({ kind: 'done', sni: 'db.example' });
  });

  it('is done with no name when the client sends none', () => {
    expect(parseSni(unnamed)).toEqual({ kind: 'done' });
  });

  it('lower-cases the name (names are case-insensitive)', async () => {
    const upper = await captureClientHello('DB.Example');
    expect(parseSni(upper)).toEqual({ kind: 'done', sni: 'db.example' });
  });

  it('reassembles a hello fragmented over several records', () => {
    const message = named.subarray(5);
    for (const sizes of [[1], [4, 40], [100, 1]]) {
      const records: Buffer[] = [];
      let at = 0;
      for (let i = 0; at < message.length; i++) {
        const size = Math.min(sizes[i % sizes.length]!, message.length - at);
        records.push(
          hex(`160301${size.toString(16).padStart(4, '0')}`),
          message.subarray(at, at + size),
        );
        at += size;
      }
      const wire = Buffer.concat(records);
      if (wire.length <= MAX_CLIENT_HELLO_BYTES) {
        expect(parseSni(wire), `records of ${sizes}`).toEqual({ kind: 'done', sni: 'db.example' });
      } else {
        expect(parseSni(wire), `records of ${sizes}`).toEqual({ kind: 'done' });
      }
      expect(parseSni(wire.subarray(0, wire.length - 1))).toEqual(
        wire.length <= MAX_CLIENT_HELLO_BYTES ? { kind: 'more' } : { kind: 'done' },
      );
    }
  });

  it('records no name it would not print: control characters, a trailing dot', () => {
    const at = named.indexOf('db.example');
    for (const bad of ['db\nexample', 'db.exampl.', 'db example', 'db.exa\x00ple']) {
      const forged = Buffer.from(named);
      forged.write(bad, at, 'latin1');
      expect(parseSni(forged), JSON.stringify(bad)).toEqual({ kind: 'done' });
    }
  });

  it('is done with no name on malformed or oversized hellos, never throws', () => {
    const lengthAt = named.indexOf('db.example') - 2; // the HostName's own length
    const overrun = Buffer.from(named);
    overrun.writeUInt16BE(0xffff, lengthAt);
    expect(parseSni(overrun)).toEqual({ kind: 'done' });
    const notHello = Buffer.from(named);
    notHello[5] = 0x02;
    expect(parseSni(notHello)).toEqual({ kind: 'done' });
    const notHandshake = Buffer.from(named);
    notHandshake[0] = 0x17;
    expect(parseSni(notHandshake)).toEqual({ kind: 'done' });
    // a handshake message declared longer than the bound: not waited for
    const huge = Buffer.from(named);
    huge.writeUIntBE(MAX_CLIENT_HELLO_BYTES, 6, 3);
    expect(parseSni(huge)).toEqual({ kind: 'done' });
    for (let seed = 1; seed <= 200; seed++) {
      const noisy = Buffer.from(named);
      const at = 9 + ((seed * 7919) % (noisy.length - 9));
      noisy[at] = noisy[at]! ^ seed;
      expect(() => parseSni(noisy)).not.toThrow();
    }
  });
});
