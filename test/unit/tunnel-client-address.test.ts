// The weft-client-addr header of a CONNECT: what the sending agent writes, and what the
// receiving agent accepts from an authenticated peer (one canonical unicast ip:port, or no
// header at all) and refuses (anything else, with a reason that names the header).
import { describe, expect, it } from 'vitest';
import {
  CLIENT_ADDRESS_HEADER,
  formatClientAddress,
  parseClientAddress,
  vouchedClient,
} from '../../src/proxy/tunnel/index.js';

describe('formatClientAddress', () => {
  it.each([
    [{ address: '10.77.0.2', port: 40312 }, '10.77.0.2:40312'],
    [{ address: 'fd00:77::2', port: 1 }, '[fd00:77::2]:1'],
  ])('%o -> %s', (client, text) => {
    expect(formatClientAddress(client)).toBe(text);
    expect(parseClientAddress(text)).toEqual({ ok: true, client });
  });
});

describe('parseClientAddress', () => {
  it('is optional: a peer that does not send it has no client', () => {
    expect(parseClientAddress(undefined)).toEqual({ ok: true, client: undefined });
  });

  it.each([
    ['10.77.0.2:40312', { address: '10.77.0.2', port: 40312 }],
    ['192.0.2.1:65535', { address: '192.0.2.1', port: 65535 }],
    ['[2001:db8::1]:443', { address: '2001:db8::1', port: 443 }],
    ['[fe80::1]:22', { address: 'fe80::1', port: 22 }],
    // 0ffe:: is not multicast (ff00::/8 is).
    ['[ffe::1]:80', { address: 'ffe::1', port: 80 }],
  ])('accepts %s', (value, client) => {
    expect(parseClientAddress(value)).toEqual({ ok: true, client });
  });

  it.each([
    ['', /is not ip:port/],
    ['10.77.0.2', /is not ip:port/],
    ['10.77.0.2:', /is not ip:port/],
    ['10.77.0.2:0', /is not ip:port/],
    ['10.77.0.2:65536', /is not ip:port/],
    ['10.77.0.2:80 ', /is not ip:port/],
    ['10.77.0.2:+80', /is not ip:port/],
    ['010.77.0.2:80', /is not ip:port/],
    ['node1:80', /is not ip:port/],
    ['2001:db8::1:80', /is not ip:port/],
    ['[10.77.0.2]:80', /is not ip:port/],
    ['10.77.0.2:80, 10.77.0.3:80', /is not ip:port/], // a repeated header, joined by Node
    ['[2001:DB8::1]:80', /not in canonical form/],
    ['[2001:db8:0:0:0:0:0:1]:80', /not in canonical form/],
    ['[::ffff:10.77.0.2]:80', /not in canonical form/],
    ['[fe80::1%eth0]:80', /is not ip:port|not in canonical form/],
    ['0.0.0.0:80', /the unspecified address/],
    ['[::]:80', /the unspecified address/],
    ['127.0.0.1:80', /a loopback address/],
    ['127.9.9.9:80', /a loopback address/],
    ['[::1]:80', /a loopback address/],
    ['224.0.0.1:80', /a multicast address/],
    ['[ff02::1]:80', /a multicast address/],
    ['255.255.255.255:80', /the broadcast address/],
    [`${'1'.repeat(60)}:80`, /too long/],
  ])('refuses %j', (value, reason) => {
    const r = parseClientAddress(value);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toMatch(reason);
      expect(r.reason.startsWith(CLIENT_ADDRESS_HEADER)).toBe(true);
    }
  });

  it('refuses a value that is not one string (a header sent as a list)', () => {
    expect(parseClientAddress(['10.77.0.2:1', '10.77.0.3:1'])).toEqual({
      ok: false,
      reason: `${CLIENT_ADDRESS_HEADER} must be sent once`,
    });
  });
});

describe('vouchedClient', () => {
  const client = { address: '10.77.0.2', port: 40312 };
  it.each([
    ['no claim', undefined, '10.77.0.2', { client: undefined, unverified: undefined }],
    ["the peer's own address", client, '10.77.0.2', { client, unverified: undefined }],
    [
      "the peer's own address, spelled IPv4-mapped by the socket",
      client,
      '::ffff:10.77.0.2',
      { client, unverified: undefined },
    ],
    [
      'the same IPv6 address spelled otherwise',
      { address: 'fd00:77::2', port: 1 },
      'fd00:77:0:0:0:0:0:2',
      { client: { address: 'fd00:77::2', port: 1 }, unverified: undefined },
    ],
    [
      'another host (a jump host, say)',
      client,
      '10.77.0.9',
      { client: undefined, unverified: client },
    ],
  ])('%s', (_name, claimed, peer, expected) => {
    expect(vouchedClient(claimed, peer)).toEqual(expected);
  });
});
