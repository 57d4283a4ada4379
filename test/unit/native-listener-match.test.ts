// Whether a listener on the port accepts a connection to an address: wildcards, IPV6_V6ONLY,
// and IPv4-mapped addresses on either side.
import { describe, expect, it } from 'vitest';
import { type Listener, listenerAccepts } from '../../src/native/listener-match.js';

const v4 = (address: string): Listener => ({ address, family: 4, v6only: false });
const v6 = (address: string, v6only = false): Listener => ({ address, family: 6, v6only });

describe('listenerAccepts', () => {
  const table: Array<[string, Listener[], string, boolean]> = [
    ['nothing listens', [], '10.0.0.2', false],
    ['the exact IPv4 address', [v4('10.0.0.2')], '10.0.0.2', true],
    ['another IPv4 address', [v4('10.0.0.3')], '10.0.0.2', false],
    ['loopback only, asked for the host address', [v4('127.0.0.1')], '10.0.0.2', false],
    ['0.0.0.0 takes any IPv4 address', [v4('0.0.0.0')], '10.0.0.2', true],
    ['0.0.0.0 takes no IPv6 address', [v4('0.0.0.0')], 'fd00::2', false],
    [':: (dual stack) takes IPv4', [v6('::')], '10.0.0.2', true],
    [':: with IPV6_V6ONLY takes no IPv4', [v6('::', true)], '10.0.0.2', false],
    [':: with IPV6_V6ONLY takes IPv6', [v6('::', true)], 'fd00::2', true],
    [':: takes IPv6', [v6('::')], 'fd00::2', true],
    ['the exact IPv6 address, written differently', [v6('fd00::2')], 'FD00:0:0::2', true],
    ['another IPv6 address', [v6('fd00::3')], 'fd00::2', false],
    ['an IPv4-mapped address asked: IPv4', [v4('10.0.0.2')], '::ffff:10.0.0.2', true],
    ['an IPv4-mapped address asked, v6only ::', [v6('::', true)], '::ffff:10.0.0.2', false],
    ['an IPv6 socket bound to a v4-mapped address', [v6('::ffff:10.0.0.2')], '10.0.0.2', true],
    ['IPv4 listener, IPv6 address asked', [v4('10.0.0.2')], 'fd00::2', false],
    [
      'one of several listeners',
      [v4('127.0.0.1'), v6('::', true), v4('10.0.0.2')],
      '10.0.0.2',
      true,
    ],
    ['not an address', [v4('0.0.0.0')], 'db.example', false],
  ];
  for (const [name, listeners, address, expected] of table) {
    it(`${name}: ${expected}`, () => expect(listenerAccepts(listeners, address)).toBe(expected));
  }
});
