// The capture rules weft derives from its config, checked line by line against what an
// operator expects to find in iptables-save.
import { describe, expect, it } from 'vitest';
import {
  type CaptureConfigInput,
  type CapturePlan,
  parseCaptureConfig,
  planCapture,
} from '../../src/redirect/index.js';

const UID = 999;

function plan(
  input: CaptureConfigInput = {},
  current?: { ipv4?: string; ipv6?: string },
): CapturePlan {
  return planCapture(parseCaptureConfig(input), { agentUid: UID, current });
}

function payloadOf(p: CapturePlan, family: 'ipv4' | 'ipv6'): string | undefined {
  return p.families.find((f) => f.family === family)?.payload;
}

const c = (name: string) => `-m comment --comment "weft:${name}"`;

// The reply path of preserved client addresses (the default): see rules.ts.
const REPLY_CHAIN = `:WEFT_REPLY - [0:0]
-A WEFT_REPLY -m mark --mark 0x3a9e ${c('reply-save')} -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff
-A WEFT_REPLY -m connmark --mark 0x3a9e ${c('reply-restore')} -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff
`;
const REPLY_JUMP = `-A OUTPUT -p tcp ${c('reply')} -j WEFT_REPLY\n`;

const NAT_V4 = `*nat
:WEFT_INBOUND - [0:0]
:WEFT_OUTPUT - [0:0]
-A WEFT_INBOUND -i lo ${c('inbound-loopback')} -j RETURN
-A WEFT_INBOUND -p tcp -m tcp --dport 22 ${c('inbound-ssh')} -j RETURN
-A WEFT_INBOUND -p tcp -m multiport --dports 15000,15001,15006,15008,15020,15053 ${c('inbound-agent-ports')} -j RETURN
-A WEFT_INBOUND -p tcp ${c('inbound-redirect')} -j REDIRECT --to-ports 15006
-A WEFT_OUTPUT -m owner --uid-owner 999 ${c('outbound-agent')} -j RETURN
-A WEFT_OUTPUT -d 127.0.0.0/8 ${c('outbound-loopback')} -j RETURN
-A WEFT_OUTPUT -p tcp ${c('outbound-redirect')} -j REDIRECT --to-ports 15001
-A OUTPUT -p tcp ${c('outbound')} -j WEFT_OUTPUT
-A PREROUTING -p tcp -m addrtype --dst-type LOCAL ${c('inbound')} -j WEFT_INBOUND
COMMIT
`;
const DEFAULT_V4 = `*mangle\n${REPLY_CHAIN}${REPLY_JUMP}COMMIT\n${NAT_V4}`;

describe('default config', () => {
  it('captures outbound TCP to 15001 and inbound TCP to 15006 with nat REDIRECT, and routes replies to callers back (IPv4)', () => {
    expect(payloadOf(plan(), 'ipv4')).toBe(DEFAULT_V4);
  });

  it('writes the same rules for IPv6 with ::1 as loopback', () => {
    expect(payloadOf(plan(), 'ipv6')).toBe(DEFAULT_V4.replace('127.0.0.0/8', '::1/128'));
  });

  it("needs TPROXY's policy routing for the replies to callers' addresses, in both families", () => {
    const p = plan();
    expect(p.routing).toEqual({ mark: 15006, table: 15006, priority: 15006 });
    expect(p.routingFamilies).toEqual(['ipv4', 'ipv6']);
  });
});

describe('preserveClientAddress', () => {
  it('off: nat REDIRECT only, no mangle rules, no policy routing', () => {
    const p = plan({ inbound: { preserveClientAddress: false } });
    expect(payloadOf(p, 'ipv4')).toBe(NAT_V4);
    expect(p.routing).toBeNull();
    expect(p.routingFamilies).toEqual([]);
  });

  it('follows the configured mark and routing table', () => {
    const p = plan({ tproxy: { mark: 0x539, routeTable: 133, rulePriority: 100 } });
    expect(payloadOf(p, 'ipv4')).toContain(
      `-A WEFT_REPLY -m mark --mark 0x539 ${c('reply-save')} -j CONNMARK --save-mark`,
    );
    expect(payloadOf(p, 'ipv4')).toContain(
      `-A WEFT_REPLY -m connmark --mark 0x539 ${c('reply-restore')} -j CONNMARK --restore-mark`,
    );
    expect(p.routing).toEqual({ mark: 0x539, table: 133, priority: 100 });
  });

  it('with ipv6 off: IPv4 routing only', () => {
    expect(plan({ ipv6: false }).routingFamilies).toEqual(['ipv4']);
  });

  it('is removed again when turned off', () => {
    const earlier = payloadOf(plan(), 'ipv4')!;
    const p = plan({ inbound: { preserveClientAddress: false } }, { ipv4: earlier });
    expect(payloadOf(p, 'ipv4')).toBe(`*mangle
:WEFT_REPLY - [0:0]
-D OUTPUT -p tcp ${c('reply')} -j WEFT_REPLY
-X WEFT_REPLY
COMMIT
`);
  });

  it("tags every rule as weft's and names every chain WEFT_*", () => {
    for (const f of plan({ dns: { enabled: true }, inboundMode: 'tproxy' }).families) {
      for (const line of f.payload.split('\n')) {
        if (line.startsWith('-A '))
          expect(line).toMatch(/ -m comment --comment "weft:[a-z-]+" -j /);
        if (line.startsWith(':')) expect(line).toMatch(/^:WEFT_[A-Z]+ - \[0:0\]$/);
      }
    }
  });
});

describe('exclusions', () => {
  const outboundLines = (input: CaptureConfigInput, family: 'ipv4' | 'ipv6' = 'ipv4') =>
    (payloadOf(plan(input), family) ?? '')
      .split('\n')
      .filter((l) => l.startsWith('-A WEFT_OUTPUT'));

  it.each([
    { ports: [5432], groups: ['5432'] },
    { ports: [1, 2, 3], groups: ['1,2,3'] },
    {
      ports: Array.from({ length: 15 }, (_, i) => 1000 + i),
      groups: [Array.from({ length: 15 }, (_, i) => 1000 + i).join(',')],
    },
    {
      ports: Array.from({ length: 16 }, (_, i) => 1000 + i),
      groups: [Array.from({ length: 15 }, (_, i) => 1000 + i).join(','), '1015'],
    },
    {
      ports: Array.from({ length: 31 }, (_, i) => 2000 + i),
      groups: [
        Array.from({ length: 15 }, (_, i) => 2000 + i).join(','),
        Array.from({ length: 15 }, (_, i) => 2015 + i).join(','),
        '2030',
      ],
    },
    // A range takes two of the 15 slots.
    {
      ports: [...Array.from({ length: 13 }, (_, i) => 3000 + i), '4000-4100', 5000],
      groups: [`${Array.from({ length: 13 }, (_, i) => 3000 + i).join(',')},4000:4100`, '5000'],
    },
    { ports: [80, 80, '80'], groups: ['80'] },
  ])('excluded ports $ports -> multiport groups $groups', ({ ports, groups }) => {
    const lines = outboundLines({ outbound: { excludePorts: ports } }).filter((l) =>
      l.includes('outbound-exclude-ports'),
    );
    expect(lines).toEqual(
      groups.map(
        (g) =>
          `-A WEFT_OUTPUT -p tcp -m multiport --dports ${g} ${c('outbound-exclude-ports')} -j RETURN`,
      ),
    );
  });

  it('orders outbound rules: agent uid, loopback, CIDRs, ports, then REDIRECT', () => {
    const lines = outboundLines({
      outbound: {
        excludeCidrs: ['10.0.0.0/8', '2001:db8::/32', '192.168.1.7'],
        excludePorts: [5432],
      },
    });
    expect(lines).toEqual([
      `-A WEFT_OUTPUT -m owner --uid-owner 999 ${c('outbound-agent')} -j RETURN`,
      `-A WEFT_OUTPUT -d 127.0.0.0/8 ${c('outbound-loopback')} -j RETURN`,
      `-A WEFT_OUTPUT -d 10.0.0.0/8 ${c('outbound-exclude-cidr')} -j RETURN`,
      `-A WEFT_OUTPUT -d 192.168.1.7/32 ${c('outbound-exclude-cidr')} -j RETURN`,
      `-A WEFT_OUTPUT -p tcp -m multiport --dports 5432 ${c('outbound-exclude-ports')} -j RETURN`,
      `-A WEFT_OUTPUT -p tcp ${c('outbound-redirect')} -j REDIRECT --to-ports 15001`,
    ]);
  });

  it.each([
    { cidr: '10.1.2.3/8', v4: '10.0.0.0/8' },
    { cidr: '172.16.5.4/12', v4: '172.16.0.0/12' },
    { cidr: '0.0.0.0/0', v4: '0.0.0.0/0' },
    { cidr: '2001:db8:0:0:1::/64', v6: '2001:db8::/64' },
    { cidr: 'fd00::1/8', v6: 'fd00::/8' },
    { cidr: '2001:db8:0:1::1', v6: '2001:db8:0:1::1/128' },
    { cidr: '::ffff:10.1.2.3/104', v6: '::ffff:10.0.0.0/104' },
  ])(
    'CIDR $cidr goes to its own family, written as iptables-save prints it',
    ({ cidr, v4, v6 }) => {
      const input = { outbound: { excludeCidrs: [cidr] } };
      const excluded = (family: 'ipv4' | 'ipv6') =>
        outboundLines(input, family)
          .filter((l) => l.includes('outbound-exclude-cidr'))
          .map((l) => l.split(' ')[3]);
      expect(excluded('ipv4')).toEqual(v4 ? [v4] : []);
      expect(excluded('ipv6')).toEqual(v6 ? [v6] : []);
    },
  );

  it('inbound: ssh and agent ports first, then source CIDRs and ports, then capture', () => {
    const lines = (
      payloadOf(
        plan({ inbound: { excludeCidrs: ['192.168.0.0/16'], excludePorts: [9100] } }),
        'ipv4',
      ) ?? ''
    )
      .split('\n')
      .filter((l) => l.startsWith('-A WEFT_INBOUND'));
    expect(lines).toEqual([
      `-A WEFT_INBOUND -i lo ${c('inbound-loopback')} -j RETURN`,
      `-A WEFT_INBOUND -p tcp -m tcp --dport 22 ${c('inbound-ssh')} -j RETURN`,
      `-A WEFT_INBOUND -p tcp -m multiport --dports 15000,15001,15006,15008,15020,15053 ${c('inbound-agent-ports')} -j RETURN`,
      `-A WEFT_INBOUND -s 192.168.0.0/16 ${c('inbound-exclude-cidr')} -j RETURN`,
      `-A WEFT_INBOUND -p tcp -m multiport --dports 9100 ${c('inbound-exclude-ports')} -j RETURN`,
      `-A WEFT_INBOUND -p tcp ${c('inbound-redirect')} -j REDIRECT --to-ports 15006`,
    ]);
  });

  it('inbound include ports capture only those ports', () => {
    const lines = (
      payloadOf(plan({ inbound: { includePorts: [80, 443, '8000-8100'] } }), 'ipv4') ?? ''
    )
      .split('\n')
      .filter((l) => l.includes('inbound-redirect'));
    expect(lines).toEqual([
      `-A WEFT_INBOUND -p tcp -m multiport --dports 80,443,8000:8100 ${c('inbound-redirect')} -j REDIRECT --to-ports 15006`,
    ]);
  });

  it('moved agent ports move their exclusions', () => {
    const p = plan({
      outboundPort: 16001,
      inboundPort: 16006,
      agentPorts: { admin: 9901 },
      dns: { port: 5353 },
    });
    expect(payloadOf(p, 'ipv4')).toContain(
      `-A WEFT_INBOUND -p tcp -m multiport --dports 5353,9901,15008,15020,16001,16006 ${c('inbound-agent-ports')} -j RETURN`,
    );
    expect(payloadOf(p, 'ipv4')).toContain('-j REDIRECT --to-ports 16001\n');
    expect(payloadOf(p, 'ipv4')).toContain('-j REDIRECT --to-ports 16006\n');
  });
});

describe('ipv6 off', () => {
  it('plans no IPv6 payload at all', () => {
    const p = plan({ ipv6: false, inboundMode: 'tproxy' });
    expect(p.families.map((f) => f.family)).toEqual(['ipv4']);
    expect(p.routingFamilies).toEqual(['ipv4']);
  });

  it('removes weft rules an earlier install left on IPv6, and only those', () => {
    const earlier = plan().families.find((f) => f.family === 'ipv6')!.payload;
    const p = plan({ ipv6: false }, { ipv6: earlier });
    expect(payloadOf(p, 'ipv6')).toBe(`*mangle
:WEFT_REPLY - [0:0]
-D OUTPUT -p tcp ${c('reply')} -j WEFT_REPLY
-X WEFT_REPLY
COMMIT
*nat
:WEFT_INBOUND - [0:0]
:WEFT_OUTPUT - [0:0]
-D OUTPUT -p tcp ${c('outbound')} -j WEFT_OUTPUT
-D PREROUTING -p tcp -m addrtype --dst-type LOCAL ${c('inbound')} -j WEFT_INBOUND
-X WEFT_INBOUND
-X WEFT_OUTPUT
COMMIT
`);
  });
});

describe('tproxy mode', () => {
  it('moves inbound to mangle with TPROXY (new connections only), a divert chain for established flows, and policy routing', () => {
    const p = plan({ inboundMode: 'tproxy' });
    expect(payloadOf(p, 'ipv4')).toBe(`*mangle
:WEFT_DIVERT - [0:0]
:WEFT_INBOUND - [0:0]
:WEFT_REPLY - [0:0]
-A WEFT_DIVERT ${c('divert-mark')} -j MARK --set-xmark 0x3a9e/0xffffffff
-A WEFT_DIVERT ${c('divert-accept')} -j ACCEPT
-A WEFT_INBOUND -i lo ${c('inbound-loopback')} -j RETURN
-A WEFT_INBOUND -p tcp -m socket --transparent ${c('inbound-established')} -j WEFT_DIVERT
-A WEFT_INBOUND -p tcp -m conntrack --ctstate RELATED,ESTABLISHED ${c('inbound-tracked')} -j RETURN
-A WEFT_INBOUND -p tcp -m tcp --dport 22 ${c('inbound-ssh')} -j RETURN
-A WEFT_INBOUND -p tcp -m multiport --dports 15000,15001,15006,15008,15020,15053 ${c('inbound-agent-ports')} -j RETURN
-A WEFT_INBOUND -p tcp ${c('inbound-tproxy')} -j TPROXY --on-port 15006 --on-ip 0.0.0.0 --tproxy-mark 0x3a9e/0xffffffff
${REPLY_CHAIN.split('\n').slice(1).join('\n')}${REPLY_JUMP}-A PREROUTING -p tcp -m addrtype --dst-type LOCAL ${c('inbound')} -j WEFT_INBOUND
COMMIT
*nat
:WEFT_OUTPUT - [0:0]
-A WEFT_OUTPUT -m owner --uid-owner 999 ${c('outbound-agent')} -j RETURN
-A WEFT_OUTPUT -d 127.0.0.0/8 ${c('outbound-loopback')} -j RETURN
-A WEFT_OUTPUT -p tcp ${c('outbound-redirect')} -j REDIRECT --to-ports 15001
-A OUTPUT -p tcp ${c('outbound')} -j WEFT_OUTPUT
COMMIT
`);
    expect(p.routing).toEqual({ mark: 15006, table: 15006, priority: 15006 });
    expect(p.routingFamilies).toEqual(['ipv4', 'ipv6']);
  });

  it('uses :: as the IPv6 TPROXY address and the configured mark', () => {
    const p = plan({
      inboundMode: 'tproxy',
      tproxy: { mark: 0x539, routeTable: 133, rulePriority: 100 },
    });
    expect(payloadOf(p, 'ipv6')).toContain(
      '-j TPROXY --on-port 15006 --on-ip :: --tproxy-mark 0x539/0xffffffff',
    );
    expect(payloadOf(p, 'ipv6')).toContain('-j MARK --set-xmark 0x539/0xffffffff');
    expect(p.routing).toEqual({ mark: 0x539, table: 133, priority: 100 });
  });
});

describe('dns capture', () => {
  it('redirects UDP 53 of everyone but the agent to 15053', () => {
    const v4 = payloadOf(plan({ dns: { enabled: true } }), 'ipv4') ?? '';
    expect(v4).toContain(':WEFT_DNS - [0:0]\n');
    expect(v4).toContain(`-A WEFT_DNS -m owner --uid-owner 999 ${c('dns-agent')} -j RETURN\n`);
    expect(v4).toContain(`-A WEFT_DNS -p udp ${c('dns-redirect')} -j REDIRECT --to-ports 15053\n`);
    expect(v4).toContain(`-A OUTPUT -p udp -m udp --dport 53 ${c('dns')} -j WEFT_DNS\n`);
  });

  it('is off by default', () => {
    expect(payloadOf(plan(), 'ipv4')).not.toContain('WEFT_DNS');
  });
});
