// When `weft redirect install` cannot do its job it says why on one line, exits non-zero,
// and leaves every rule as it was: bad config, not root, no iptables, a refused restore.
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireRootAndTools } from '../helpers/prereqs.js';
import {
  addForeignRules,
  Namespaces,
  type Result,
  Scratch,
  saveBoth,
  weft,
  withoutEmptyTables,
} from './redirect-helpers.js';

const namespaces = new Namespaces();
const scratch = new Scratch();
let goodConfig = '';
let otherConfig = '';

const FOREIGN = '*nat\n-A OUTPUT -d 10.9.9.9/32 -p tcp -j RETURN\nCOMMIT\n';
const FOREIGN_V6 = '*nat\n-A OUTPUT -d fd00::9/128 -p tcp -j RETURN\nCOMMIT\n';

/** A namespace with a user's rule and weft installed from `goodConfig`. */
async function installedNs(): Promise<string> {
  const ns = await namespaces.create();
  await addForeignRules(ns, 'ipv4', FOREIGN);
  await addForeignRules(ns, 'ipv6', FOREIGN_V6);
  const r = await weft(ns, ['redirect', 'install', '--config', goodConfig]);
  if (r.exitCode !== 0) throw new Error(`setup install failed: ${r.stderr}`);
  return ns;
}

/** One line on stderr, `weft: CODE: ...`, and a non-zero exit. */
function expectOneLineError(r: Result, code: string): string {
  expect(r.exitCode).not.toBe(0);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^weft: ${code}: `));
  return lines[0]!;
}

beforeAll(async () => {
  requireRootAndTools(['ip', 'iptables', 'ip6tables', 'iptables-legacy', 'setpriv']);
  await scratch.init();
  goodConfig = await scratch.file('good.yaml', 'capture:\n  agentUser: nobody\n');
  otherConfig = await scratch.file(
    'other.yaml',
    'capture:\n  agentUser: nobody\n  dns: { enabled: true }\n  outbound: { excludePorts: [5432] }\n',
  );
});

afterAll(async () => {
  await namespaces.removeAll();
  await scratch.remove();
});

describe('invalid config', () => {
  it.each([
    [
      'bad-port.yaml',
      'capture:\n  inbound:\n    excludePorts: [22, 70000]\n',
      'capture.inbound.excludePorts[1]: port must be 1-65535',
    ],
    ['typo.yaml', 'capture:\n  outboundPrt: 15001\n', 'capture.outboundPrt: unknown field'],
    [
      'no-user.yaml',
      'capture:\n  agentUser: weftrd-no-such-user\n',
      'capture.agentUser: user "weftrd-no-such-user" does not exist',
    ],
  ])(
    '%s: WEFT_E_CONFIG naming the file and field, rules unchanged',
    async (name, text, expected) => {
      const ns = await installedNs();
      const before = await saveBoth(ns);
      const file = await scratch.file(name, text);
      const line = expectOneLineError(
        await weft(ns, ['redirect', 'install', '--config', file]),
        'WEFT_E_CONFIG',
      );
      expect(line).toContain(`${file}: ${expected}`);
      expect(await saveBoth(ns)).toEqual(before);
    },
  );
});

describe('environment', () => {
  it('not root: WEFT_E_NOT_ROOT, rules unchanged', async () => {
    const ns = await installedNs();
    const before = await saveBoth(ns);
    const asNobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
    for (const verb of ['install', 'uninstall', 'status']) {
      const r = await weft(ns, ['redirect', verb, '--config', otherConfig], asNobody);
      expect(expectOneLineError(r, 'WEFT_E_NOT_ROOT')).toContain('needs root');
    }
    expect(await saveBoth(ns)).toEqual(before);
  });

  it('no iptables on PATH: WEFT_E_MISSING_TOOL saying what to install, rules unchanged', async () => {
    const ns = await installedNs();
    const before = await saveBoth(ns);
    // Only node's own directory stays on PATH; on this host it holds no iptables.
    const path = `/nonexistent:${dirname(process.execPath)}`;
    for (const verb of ['install', 'uninstall']) {
      const r = await weft(
        ns,
        ['redirect', verb, '--config', otherConfig],
        ['env', `PATH=${path}`],
      );
      expect(expectOneLineError(r, 'WEFT_E_MISSING_TOOL')).toContain('apt-get install iptables');
    }
    expect(await saveBoth(ns)).toEqual(before);
  });
});

describe('iptables-restore refusing', () => {
  // A stand-in for ip6tables-nft-restore that passes --test (checked by the real tool)
  // but refuses to apply, as the kernel might. It records the IPv4 rules at that moment,
  // to show that IPv4 had been changed and was then put back.
  const shim = (snapshot: string) => `#!/bin/sh
for a in "$@"; do
  if [ "$a" = --test ]; then exec /usr/sbin/ip6tables-nft-restore "$@"; fi
done
cat >/dev/null
/usr/sbin/iptables-nft-save > ${snapshot}
echo "ip6tables-restore: line 3 failed" >&2
exit 1
`;
  const snapshot = () => readFile(`${scratch.dir}/ipv4-at-failure`, 'utf8');

  async function shimPath(): Promise<string> {
    await scratch.file('shim/ip6tables-nft-restore', shim(`${scratch.dir}/ipv4-at-failure`), 0o755);
    return `${scratch.dir}/shim:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`;
  }

  it('an IPv6 failure after IPv4 was applied puts IPv4 back as it was', async () => {
    const ns = await installedNs();
    const before = await saveBoth(ns);
    const r = await weft(
      ns,
      ['redirect', 'install', '--config', otherConfig],
      ['env', `PATH=${await shimPath()}`],
    );
    const line = expectOneLineError(r, 'WEFT_E_IPTABLES');
    expect(line).toMatch(/`ip6tables-nft-restore` refused IPv6 line 3 "[^"]*/);
    expect(line).toContain('no change was kept');
    expect(await snapshot()).toContain('"weft:dns"');
    expect(await saveBoth(ns)).toEqual(before);
  });

  it('the same on a host without weft rules leaves none behind', async () => {
    const ns = await namespaces.create();
    await addForeignRules(ns, 'ipv4', FOREIGN);
    await addForeignRules(ns, 'ipv6', FOREIGN_V6);
    const before = await saveBoth(ns);
    const r = await weft(
      ns,
      ['redirect', 'install', '--config', otherConfig],
      ['env', `PATH=${await shimPath()}`],
    );
    expectOneLineError(r, 'WEFT_E_IPTABLES');
    expect(await snapshot()).toContain('WEFT_OUTPUT');
    const after = await saveBoth(ns);
    expect(withoutEmptyTables(after.ipv4)).toBe(withoutEmptyTables(before.ipv4));
    expect(after.ipv6).toBe(before.ipv6);
  });
});
