// Reading the host's nameservers from resolv.conf, and the upstream address forms the
// server accepts.
import { describe, expect, it } from 'vitest';
import { parseResolvConf } from '../../src/dns/resolv-conf.js';
import { parseUpstream } from '../../src/dns/upstream-address.js';

describe('parseResolvConf', () => {
  it.each([
    ['nameserver 10.0.0.2\n', ['10.0.0.2']],
    [
      '# generated\nsearch corp.example\nnameserver 10.0.0.2\nnameserver fd00::53\n',
      ['10.0.0.2', 'fd00::53'],
    ],
    ['  nameserver\t10.0.0.2  # primary\n', ['10.0.0.2']],
    ['nameserver 10.0.0.2 ; comment\r\n', ['10.0.0.2']],
    ['; nameserver 10.0.0.9\n#nameserver 10.0.0.8\n', []],
    ['nameserver resolver.example\nnameserver 10.0.0.3\n', ['10.0.0.3']],
    ['nameserver fe80::1%eth0\n', ['fe80::1%eth0']],
    ['options ndots:5\ndomain x\n', []],
    ['', []],
    [
      'nameserver 1.1.1.1\nnameserver 2.2.2.2\nnameserver 3.3.3.3\nnameserver 4.4.4.4\n',
      ['1.1.1.1', '2.2.2.2', '3.3.3.3'],
    ],
    ['nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n', ['127.0.0.53']],
  ])('%j -> %j', (text, expected) => {
    expect(parseResolvConf(text)).toEqual(expected);
  });
});

describe('parseUpstream', () => {
  it.each([
    ['10.0.0.2', { host: '10.0.0.2', port: 53, family: 4, label: '10.0.0.2:53' }],
    ['10.0.0.2:5353', { host: '10.0.0.2', port: 5353, family: 4, label: '10.0.0.2:5353' }],
    ['fd00::53', { host: 'fd00::53', port: 53, family: 6, label: '[fd00::53]:53' }],
    ['[fd00::53]', { host: 'fd00::53', port: 53, family: 6, label: '[fd00::53]:53' }],
    ['[fd00::53]:5300', { host: 'fd00::53', port: 5300, family: 6, label: '[fd00::53]:5300' }],
    [' 127.0.0.53 ', { host: '127.0.0.53', port: 53, family: 4, label: '127.0.0.53:53' }],
  ])('%j -> %j', (spec, expected) => {
    expect(parseUpstream(spec)).toEqual(expected);
  });

  it.each([
    ['resolver.example', /not an IP address/],
    ['10.0.0.2:0', /port 0/],
    ['10.0.0.2:70000', /port 70000/],
    ['10.0.0.2:x', /port x/],
    ['[10.0.0.2', /not an IP address/],
    ['', /not an IP address/],
  ])('refuses %j naming the field', (spec, message) => {
    expect(() => parseUpstream(spec, 'dns upstreams[0]')).toThrow(message);
    expect(() => parseUpstream(spec, 'dns upstreams[0]')).toThrow(/^dns upstreams\[0\]: /);
  });
});
