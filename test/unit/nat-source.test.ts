// Finding an app socket's original source port in the conntrack table after REDIRECT moved it.
import { describe, expect, it } from 'vitest';
import { findOriginalSourcePort } from '../../src/proxy/nat-source.js';

const TABLE = [
  'ipv4     2 tcp      6 75 TIME_WAIT src=10.77.0.2 dst=240.240.68.104 sport=46590 dport=7000 src=127.0.0.1 dst=10.77.0.2 sport=15001 dport=46590 [ASSURED] mark=0 zone=0 use=2',
  'ipv4     2 tcp      6 431999 ESTABLISHED src=10.77.0.2 dst=10.77.0.3 sport=46590 dport=8080 src=127.0.0.1 dst=10.77.0.2 sport=15001 dport=31795 [ASSURED] mark=0 zone=0 use=2',
  'ipv4     2 udp      17 29 src=10.77.0.2 dst=10.77.0.1 sport=5353 dport=53 src=127.0.0.1 dst=10.77.0.2 sport=15053 dport=5353 mark=0 zone=0 use=2',
  'ipv6     10 tcp      6 431999 ESTABLISHED src=fd00:77::2 dst=fd00:77::3 sport=40000 dport=8080 src=::1 dst=fd00:77::2 sport=15001 dport=12345 [ASSURED] mark=0 zone=0 use=2',
].join('\n');

describe('findOriginalSourcePort', () => {
  it.each([
    ['a port NAT rewrote', '10.77.0.2', 31795, '127.0.0.1', 46590],
    ['an unchanged port', '10.77.0.2', 46590, '127.0.0.1', 46590],
    ['IPv6', 'fd00:77::2', 12345, '::1', 40000],
    ['no entry', '10.77.0.2', 1, '127.0.0.1', undefined],
    ['not the agent port', '10.77.0.2', 5353, '127.0.0.1', undefined],
  ])('%s', (_name, remoteAddress, remotePort, localAddress, expected) => {
    expect(
      findOriginalSourcePort(TABLE, { remoteAddress, remotePort, localAddress, localPort: 15001 }),
    ).toBe(expected);
  });
});
