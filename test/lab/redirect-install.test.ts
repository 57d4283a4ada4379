// `weft redirect install|status|uninstall` against real iptables (nf_tables and legacy)
// inside throw-away network namespaces: what an operator sees in iptables-save.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireRootAndTools } from '../helpers/prereqs.js';
import {
  addForeignRules,
  inNs,
  Namespaces,
  type Result,
  Scratch,
  save,
  saveBoth,
  weft,
} from './redirect-helpers.js';

const namespaces = new Namespaces();
const scratch = new Scratch();
let config = '';
let tproxyConfig = '';
let legacyConfig = '';
let plainConfig = '';

// A user's own rules, which weft must leave exactly as they are.
const FOREIGN_V4 = `*nat
:USER_NAT - [0:0]
-A OUTPUT -d 10.9.9.9/32 -p tcp -j DNAT --to-destination 10.0.0.1:80
-A PREROUTING -p tcp -m tcp --dport 2222 -j REDIRECT --to-ports 22
-A USER_NAT -j RETURN
COMMIT
*mangle
-A PREROUTING -p udp -j MARK --set-xmark 0x7/0xff
COMMIT
*filter
-A INPUT -p tcp -m tcp --dport 8080 -m comment --comment "user rule" -j ACCEPT
COMMIT
`;
const FOREIGN_V6 = `*nat
-A OUTPUT -d fd00::9/128 -p tcp -j DNAT --to-destination [fd00::1]:80
COMMIT
*mangle
-A PREROUTING -p udp -j MARK --set-xmark 0x7/0xff
COMMIT
`;

function ok(r: Result): Result {
  if (r.exitCode !== 0) throw new Error(`weft exited ${r.exitCode}: ${r.stderr}${r.stdout}`);
  return r;
}

async function nsWithForeignRules(backend: 'nft' | 'legacy' = 'nft'): Promise<string> {
  const ns = await namespaces.create();
  await addForeignRules(ns, 'ipv4', FOREIGN_V4, backend);
  await addForeignRules(ns, 'ipv6', FOREIGN_V6, backend);
  return ns;
}

beforeAll(async () => {
  requireRootAndTools(['ip', 'iptables', 'ip6tables', 'iptables-legacy']);
  await scratch.init();
  config = await scratch.file(
    'agent.yaml',
    `capture:
  agentUser: nobody
  dns: { enabled: true }
  outbound:
    excludePorts: [5432, "30000-32767"]
    excludeCidrs: [10.1.2.3/8, "fd00:0:0:1::/64"]
  inbound:
    excludePorts: [9100]
    excludeCidrs: [192.168.0.0/16]
`,
  );
  tproxyConfig = await scratch.file(
    'tproxy.yaml',
    'capture:\n  agentUser: nobody\n  inboundMode: tproxy\n',
  );
  plainConfig = await scratch.file(
    'plain.yaml',
    'capture:\n  agentUser: nobody\n  inbound: { preserveClientAddress: false }\n',
  );
  legacyConfig = await scratch.file(
    'legacy.yaml',
    'capture:\n  agentUser: nobody\n  backend: legacy\n',
  );
});

afterAll(async () => {
  await namespaces.removeAll();
  await scratch.remove();
});

describe('install', () => {
  it('puts the capture rules in both families, where iptables-save shows them', async () => {
    const ns = await namespaces.create();
    const r = ok(await weft(ns, ['redirect', 'install', '--config', config]));
    expect(r.stdout).toMatch(/capture installed \(iptables-nft, inbound redirect\)/);

    const v4 = await save(ns, 'ipv4');
    expect(v4).toContain('-A OUTPUT -p tcp -m comment --comment "weft:outbound" -j WEFT_OUTPUT');
    expect(v4).toContain(
      '-A OUTPUT -p udp -m udp --dport 53 -m comment --comment "weft:dns" -j WEFT_DNS',
    );
    expect(v4).toContain(
      '-A PREROUTING -p tcp -m addrtype --dst-type LOCAL -m comment --comment "weft:inbound" -j WEFT_INBOUND',
    );
    expect(v4).toContain(
      '-A WEFT_OUTPUT -m owner --uid-owner 65534 -m comment --comment "weft:outbound-agent" -j RETURN',
    );
    expect(v4).toContain(
      '-A WEFT_OUTPUT -d 10.0.0.0/8 -m comment --comment "weft:outbound-exclude-cidr" -j RETURN',
    );
    expect(v4).toContain(
      '-A WEFT_OUTPUT -p tcp -m comment --comment "weft:outbound-redirect" -j REDIRECT --to-ports 15001',
    );
    expect(v4).toContain(
      '-A WEFT_INBOUND -p tcp -m tcp --dport 22 -m comment --comment "weft:inbound-ssh" -j RETURN',
    );
    expect(v4).toContain(
      '-A WEFT_INBOUND -p tcp -m comment --comment "weft:inbound-redirect" -j REDIRECT --to-ports 15006',
    );
    expect(v4).toContain(
      '-A WEFT_DNS -p udp -m comment --comment "weft:dns-redirect" -j REDIRECT --to-ports 15053',
    );

    const v6 = await save(ns, 'ipv6');
    expect(v6).toContain(
      '-A WEFT_OUTPUT -d ::1/128 -m comment --comment "weft:outbound-loopback" -j RETURN',
    );
    expect(v6).toContain(
      '-A WEFT_OUTPUT -d fd00:0:0:1::/64 -m comment --comment "weft:outbound-exclude-cidr" -j RETURN',
    );
    expect(v6).not.toContain('10.0.0.0/8');
    expect(v6).toContain(
      '-A WEFT_OUTPUT -p tcp -m comment --comment "weft:outbound-redirect" -j REDIRECT --to-ports 15001',
    );

    const status = await weft(ns, ['redirect', 'status', '--config', config]);
    expect(status.exitCode).toBe(0);
    expect(status.stdout).toMatch(/^IPv4: in-sync/m);
    expect(status.stdout).toMatch(/^IPv6: in-sync/m);
  });

  it('twice leaves the same rules as once', async () => {
    const ns = await nsWithForeignRules();
    ok(await weft(ns, ['redirect', 'install', '--config', config]));
    const once = await saveBoth(ns);
    const again = ok(await weft(ns, ['redirect', 'install', '--config', config]));
    expect(again.stdout).toContain('nothing changed');
    expect(await saveBoth(ns)).toEqual(once);
    expect(once.ipv4.match(/"weft:outbound"/g)).toHaveLength(1);
  });

  it("with another config replaces weft's rules and keeps its jumps in place", async () => {
    const ns = await nsWithForeignRules();
    ok(await weft(ns, ['redirect', 'install', '--config', config]));
    // The operator adds a rule after weft's jump; a reinstall must not reorder them.
    await addForeignRules(ns, 'ipv4', '*nat\n-A OUTPUT -d 10.8.8.8/32 -p tcp -j RETURN\nCOMMIT\n');
    const other = await scratch.file(
      'other.yaml',
      'capture:\n  agentUser: nobody\n  outboundPort: 16001\n',
    );
    ok(await weft(ns, ['redirect', 'install', '--config', other]));
    const nat = (await save(ns, 'ipv4')).split('*nat\n')[1]!.split('COMMIT\n')[0]!;
    const output = nat.split('\n').filter((l) => l.startsWith('-A OUTPUT'));
    expect(output).toEqual([
      '-A OUTPUT -d 10.9.9.9/32 -p tcp -j DNAT --to-destination 10.0.0.1:80',
      '-A OUTPUT -p tcp -m comment --comment "weft:outbound" -j WEFT_OUTPUT',
      '-A OUTPUT -d 10.8.8.8/32 -p tcp -j RETURN',
    ]);
    const v4 = await save(ns, 'ipv4');
    expect(v4).toContain('-j REDIRECT --to-ports 16001');
    expect(v4).not.toContain('WEFT_DNS');
    expect((await weft(ns, ['redirect', 'status', '--config', other])).exitCode).toBe(0);
  });
});

describe('ipv6 off', () => {
  it('leaves IPv6 untouched', async () => {
    const ns = await nsWithForeignRules();
    const before = await save(ns, 'ipv6');
    const v4only = await scratch.file(
      'v4only.yaml',
      'capture:\n  agentUser: nobody\n  ipv6: false\n',
    );
    const r = ok(await weft(ns, ['redirect', 'install', '--config', v4only]));
    expect(r.stdout).not.toContain('IPv6');
    expect(await save(ns, 'ipv4')).toContain('weft:outbound');
    expect(await save(ns, 'ipv6')).toBe(before);
    expect((await weft(ns, ['redirect', 'status', '--config', v4only])).exitCode).toBe(0);
  });
});

describe('status', () => {
  it('exits 3 and shows the difference when rules are missing or changed', async () => {
    const ns = await namespaces.create();
    const missing = await weft(ns, ['redirect', 'status', '--config', config]);
    expect(missing.exitCode).toBe(3);
    expect(missing.stdout).toMatch(/^IPv4: missing/m);
    expect(missing.stdout).toContain(
      '  + -t nat -A OUTPUT -p tcp -m comment --comment "weft:outbound" -j WEFT_OUTPUT',
    );

    ok(await weft(ns, ['redirect', 'install', '--config', config]));
    // Someone deletes the ssh exclusion by hand (rule 2 of WEFT_INBOUND).
    expect(
      (await inNs(ns, ['iptables-nft', '-t', 'nat', '-D', 'WEFT_INBOUND', '2'])).exitCode,
    ).toBe(0);
    const drifted = await weft(ns, ['redirect', 'status', '--config', config]);
    expect(drifted.exitCode).toBe(3);
    expect(drifted.stdout).toMatch(/^IPv4: drifted/m);
    expect(drifted.stdout).toMatch(/^IPv6: in-sync/m);
    expect(drifted.stdout).toContain('  + -t nat -A WEFT_INBOUND -p tcp -m tcp --dport 22 ');

    ok(await weft(ns, ['redirect', 'install', '--config', config]));
    expect((await weft(ns, ['redirect', 'status', '--config', config])).exitCode).toBe(0);
  });
});

describe('uninstall', () => {
  it("leaves everyone else's rules byte-identical", async () => {
    const ns = await nsWithForeignRules();
    const before = await saveBoth(ns);
    ok(await weft(ns, ['redirect', 'install', '--config', config]));
    expect((await saveBoth(ns)).ipv4).not.toEqual(before.ipv4);
    const r = ok(await weft(ns, ['redirect', 'uninstall', '--config', config]));
    expect(r.stdout).toMatch(
      /capture removed: iptables-nft IPv4 \d+ rules; iptables-nft IPv6 \d+ rules/,
    );
    expect(await saveBoth(ns)).toEqual(before);

    const again = ok(await weft(ns, ['redirect', 'uninstall']));
    expect(again.stdout).toContain('no capture rules were installed');
    expect(await saveBoth(ns)).toEqual(before);
  });

  it('keeps rules the operator added while weft was installed', async () => {
    const ns = await nsWithForeignRules();
    ok(await weft(ns, ['redirect', 'install', '--config', config]));
    await addForeignRules(ns, 'ipv4', '*nat\n-A OUTPUT -d 10.8.8.8/32 -p tcp -j RETURN\nCOMMIT\n');
    const withWeft = await save(ns, 'ipv4');
    ok(await weft(ns, ['redirect', 'uninstall']));
    const after = await save(ns, 'ipv4');
    expect(after).toContain('-A OUTPUT -d 10.8.8.8/32 -p tcp -j RETURN');
    expect(after).not.toMatch(/weft|WEFT_/);
    // Exactly the weft lines are gone, and every other line is unchanged, in order.
    const notWeft = withWeft.split('\n').filter((l) => !/weft:|WEFT_/.test(l));
    expect(after.split('\n')).toEqual(notWeft);
  });
});

describe('tproxy mode', () => {
  it('adds its mangle rules, ip rule and local route, and uninstall removes them all', async () => {
    const ns = await nsWithForeignRules();
    const before = await saveBoth(ns);
    const rulesBefore = (await inNs(ns, ['ip', 'rule'])).stdout;
    const rules6Before = (await inNs(ns, ['ip', '-6', 'rule'])).stdout;

    ok(await weft(ns, ['redirect', 'install', '--config', tproxyConfig]));
    for (const family of ['ipv4', 'ipv6'] as const) {
      const text = await save(ns, family);
      const onIp = family === 'ipv4' ? '0.0.0.0' : '::';
      expect(text).toContain(
        '-A PREROUTING -p tcp -m addrtype --dst-type LOCAL -m comment --comment "weft:inbound" -j WEFT_INBOUND',
      );
      expect(text).toContain(
        `-A WEFT_INBOUND -p tcp -m comment --comment "weft:inbound-tproxy" -j TPROXY --on-port 15006 --on-ip ${onIp} --tproxy-mark 0x3a9e/0xffffffff`,
      );
      expect(text).toContain(
        '-A WEFT_INBOUND -p tcp -m socket --transparent -m comment --comment "weft:inbound-established" -j WEFT_DIVERT',
      );
      expect(text).toContain(
        '-A WEFT_INBOUND -p tcp -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "weft:inbound-tracked" -j RETURN',
      );
      const flag = family === 'ipv4' ? '-4' : '-6';
      expect((await inNs(ns, ['ip', flag, 'rule'])).stdout).toContain(
        '15006:\tfrom all fwmark 0x3a9e lookup 15006',
      );
      expect((await inNs(ns, ['ip', flag, 'route', 'show', 'table', '15006'])).stdout).toMatch(
        /^local default dev lo/,
      );
    }
    // The nat table keeps only outbound capture in this mode.
    expect(await save(ns, 'ipv4')).not.toMatch(/-A \S+ .*weft:inbound-redirect/);
    expect((await weft(ns, ['redirect', 'status', '--config', tproxyConfig])).exitCode).toBe(0);

    // Installing again adds no second ip rule.
    ok(await weft(ns, ['redirect', 'install', '--config', tproxyConfig]));
    expect((await inNs(ns, ['ip', 'rule'])).stdout.match(/lookup 15006/g)).toHaveLength(1);

    ok(await weft(ns, ['redirect', 'uninstall', '--config', tproxyConfig]));
    expect(await saveBoth(ns)).toEqual(before);
    expect((await inNs(ns, ['ip', 'rule'])).stdout).toBe(rulesBefore);
    expect((await inNs(ns, ['ip', '-6', 'rule'])).stdout).toBe(rules6Before);
    expect((await inNs(ns, ['ip', 'route', 'show', 'table', '15006'])).stdout).toBe('');
    expect((await inNs(ns, ['ip', '-6', 'route', 'show', 'table', '15006'])).stdout).toBe('');
  });

  it('switching back to redirect mode keeps the policy routing only for preserved client addresses', async () => {
    const ns = await namespaces.create();
    ok(await weft(ns, ['redirect', 'install', '--config', tproxyConfig]));
    // Redirect mode, client addresses preserved (the default): the routing stays.
    ok(await weft(ns, ['redirect', 'install', '--config', config]));
    expect((await inNs(ns, ['ip', 'rule'])).stdout).toContain('lookup 15006');
    expect(await save(ns, 'ipv4')).not.toContain('WEFT_DIVERT');
    expect((await weft(ns, ['redirect', 'status', '--config', config])).exitCode).toBe(0);
    // Neither TPROXY nor preserved addresses: the routing goes.
    const r = ok(await weft(ns, ['redirect', 'install', '--config', plainConfig]));
    expect(r.stdout).toContain('ip -4 rule del priority 15006');
    expect((await inNs(ns, ['ip', 'rule'])).stdout).not.toContain('lookup 15006');
    expect(await save(ns, 'ipv4')).not.toContain('WEFT_REPLY');
    expect((await weft(ns, ['redirect', 'status', '--config', plainConfig])).exitCode).toBe(0);
  });
});

describe('preserved client addresses', () => {
  const REPLY_RULES = [
    '-A OUTPUT -p tcp -m comment --comment "weft:reply" -j WEFT_REPLY',
    '-A WEFT_REPLY -m mark --mark 0x3a9e -m comment --comment "weft:reply-save" -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff',
    '-A WEFT_REPLY -m connmark --mark 0x3a9e -m comment --comment "weft:reply-restore" -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff',
  ];

  it('by default add the reply path (mangle OUTPUT, ip rule, local route); uninstall removes it all', async () => {
    const ns = await nsWithForeignRules();
    const before = await saveBoth(ns);
    const rulesBefore = (await inNs(ns, ['ip', 'rule'])).stdout;
    const rules6Before = (await inNs(ns, ['ip', '-6', 'rule'])).stdout;

    ok(await weft(ns, ['redirect', 'install', '--config', config]));
    for (const family of ['ipv4', 'ipv6'] as const) {
      const mangle = (await save(ns, family)).split('\n');
      for (const rule of REPLY_RULES) expect(mangle).toContain(rule);
      const flag = family === 'ipv4' ? '-4' : '-6';
      expect((await inNs(ns, ['ip', flag, 'rule'])).stdout).toContain(
        '15006:\tfrom all fwmark 0x3a9e lookup 15006',
      );
      expect((await inNs(ns, ['ip', flag, 'route', 'show', 'table', '15006'])).stdout).toMatch(
        /^local default dev lo/,
      );
    }
    expect((await weft(ns, ['redirect', 'status', '--config', config])).exitCode).toBe(0);

    // Without --config, uninstall uses the defaults, which name the same table and priority.
    ok(await weft(ns, ['redirect', 'uninstall']));
    expect(await saveBoth(ns)).toEqual(before);
    expect((await inNs(ns, ['ip', 'rule'])).stdout).toBe(rulesBefore);
    expect((await inNs(ns, ['ip', '-6', 'rule'])).stdout).toBe(rules6Before);
    expect((await inNs(ns, ['ip', 'route', 'show', 'table', '15006'])).stdout).toBe('');
    expect((await inNs(ns, ['ip', '-6', 'route', 'show', 'table', '15006'])).stdout).toBe('');
  });

  it('status reports a missing reply rule', async () => {
    const ns = await namespaces.create();
    ok(await weft(ns, ['redirect', 'install', '--config', config]));
    // Someone deletes the restore rule by hand (rule 2 of WEFT_REPLY).
    expect(
      (await inNs(ns, ['iptables-nft', '-t', 'mangle', '-D', 'WEFT_REPLY', '2'])).exitCode,
    ).toBe(0);
    const drifted = await weft(ns, ['redirect', 'status', '--config', config]);
    expect(drifted.exitCode).toBe(3);
    expect(drifted.stdout).toMatch(/^IPv4: drifted/m);
    expect(drifted.stdout).toContain(`  + -t mangle ${REPLY_RULES[2]}`);
  });
});

describe('legacy backend', () => {
  it('installs with iptables-legacy, is detected by auto, and uninstalls cleanly', async () => {
    const ns = await nsWithForeignRules('legacy');
    const before = await saveBoth(ns, 'legacy');
    const r = ok(await weft(ns, ['redirect', 'install', '--config', legacyConfig]));
    expect(r.stdout).toContain('iptables-legacy');
    const installed = await saveBoth(ns, 'legacy');
    expect(installed.ipv4).toContain(
      '-A OUTPUT -p tcp -m comment --comment "weft:outbound" -j WEFT_OUTPUT',
    );
    expect(installed.ipv6).toContain(
      '-A WEFT_OUTPUT -d ::1/128 -m comment --comment "weft:outbound-loopback" -j RETURN',
    );
    expect(await save(ns, 'ipv4', 'nft')).not.toContain('weft');

    ok(await weft(ns, ['redirect', 'install', '--config', legacyConfig]));
    expect(await saveBoth(ns, 'legacy')).toEqual(installed);

    // backend: auto finds the rules in legacy (nf_tables holds none here).
    const autoConfig = await scratch.file('auto.yaml', 'capture:\n  agentUser: nobody\n');
    const status = await weft(ns, ['redirect', 'status', '--config', autoConfig]);
    expect(status.exitCode).toBe(0);
    expect(status.stdout).toContain('backend: iptables-legacy');

    ok(await weft(ns, ['redirect', 'uninstall']));
    expect(await saveBoth(ns, 'legacy')).toEqual(before);
  });
});
