// The agent's host facts (src/agent/host-facts.ts): read once, read again only when the host's
// fingerprint changes, and a failed read tried again.
import { describe, expect, it } from 'vitest';
import { HostFactsSource, osName } from '../../src/agent/host-facts.js';

function source() {
  let reads = 0;
  let print = 'kernel-a|4|8GiB';
  let fail = false;
  const facts = new HostFactsSource(
    'weft-agent/1.2.3',
    async () => {
      reads += 1;
      if (fail) throw new Error('systeminformation failed');
      return {
        os: 'Debian 12',
        kernel: print.split('|')[0]!,
        arch: 'x64',
        cpus: 4,
        memoryBytes: 8,
      };
    },
    () => print,
  );
  return {
    facts,
    reads: () => reads,
    setPrint: (p: string) => (print = p),
    setFail: (f: boolean) => (fail = f),
  };
}

describe('HostFactsSource', () => {
  it('reads once, with the agent version', async () => {
    const s = source();
    expect(await s.facts.current()).toMatchObject({
      kernel: 'kernel-a',
      agentVersion: 'weft-agent/1.2.3',
    });
    await s.facts.current();
    expect(s.reads()).toBe(1);
  });

  it('reads again only when the host changed, and says so once', async () => {
    const s = source();
    await s.facts.current();
    expect(await s.facts.changed()).toBeUndefined();
    s.setPrint('kernel-b|4|8GiB');
    expect(await s.facts.changed()).toMatchObject({ kernel: 'kernel-b' });
    expect(await s.facts.changed()).toBeUndefined();
    expect(s.reads()).toBe(2);
  });

  it('a failed read is tried again next time', async () => {
    const s = source();
    s.setFail(true);
    await expect(s.facts.current()).rejects.toThrow('systeminformation failed');
    s.setFail(false);
    expect(await s.facts.current()).toMatchObject({ os: 'Debian 12' });
  });
});

describe('osName', () => {
  it.each([
    [
      'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION="12 (bookworm)"\n',
      'Debian GNU/Linux 12 (bookworm)',
    ],
    ['NAME=Fedora\nVERSION="40 (Server Edition)"\n', 'Fedora 40 (Server Edition)'],
    ["NAME='Alpine Linux'\n", 'Alpine Linux'],
  ])('%j -> %s', (release, name) => {
    expect(osName(release)).toBe(name);
  });

  it('names the kernel when there is no os-release', () => {
    expect(osName('')).toBe('Linux');
  });
});
