// The `capture:` section of the agent config: defaults, and errors that name the file
// and the field on one line.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isWeftError } from '../../src/errors.js';
import { loadCaptureConfig, parseCaptureConfig } from '../../src/redirect/index.js';

describe('defaults', () => {
  it("are DESIGN.md's ports, REDIRECT inbound, IPv6 on, DNS off", () => {
    const c = parseCaptureConfig(undefined);
    expect(c).toMatchObject({
      agentUser: 'weft',
      outboundPort: 15001,
      inboundPort: 15006,
      inboundMode: 'redirect',
      dns: { enabled: false, port: 15053 },
      ipv6: true,
      backend: 'auto',
      agentPorts: { admin: 15000, tunnel: 15008, metrics: 15020 },
      outbound: { excludePorts: [], excludeCidrs: [] },
      inbound: { includePorts: [], excludePorts: [], excludeCidrs: [] },
    });
    expect(parseCaptureConfig({})).toEqual(c);
    expect(parseCaptureConfig(null)).toEqual(c);
  });
});

describe('invalid configs', () => {
  it.each([
    [{ outboundPort: 0 }, 'capture.outboundPort: '],
    [{ outboundPort: 'x' }, 'capture.outboundPort: '],
    [{ inboundMode: 'dnat' }, 'capture.inboundMode: '],
    [{ backend: 'iptables' }, 'capture.backend: '],
    [{ ipv6: 'yes' }, 'capture.ipv6: '],
    [{ dns: { enabled: true, port: 70000 } }, 'capture.dns.port: '],
    [
      { outbound: { excludePorts: [22, 'ssh'] } },
      'capture.outbound.excludePorts[1]: expected a port',
    ],
    [
      { outbound: { excludePorts: ['9000-8000'] } },
      'capture.outbound.excludePorts[0]: range start 9000',
    ],
    [
      { outbound: { excludeCidrs: ['10.0.0.0/33'] } },
      'capture.outbound.excludeCidrs[0]: prefix length',
    ],
    [
      { outbound: { excludeCidrs: ['not-an-ip'] } },
      'capture.outbound.excludeCidrs[0]: "not-an-ip" is not',
    ],
    [{ inbound: { excludeCidrs: ['fe80::1%eth0'] } }, 'capture.inbound.excludeCidrs[0]: '],
    [
      { inbound: { includePorts: [65536] } },
      'capture.inbound.includePorts[0]: port must be 1-65535',
    ],
    [{ inbound: { excludPorts: [1] } }, 'capture.inbound.excludPorts: unknown field'],
    [{ outboundPrt: 1 }, 'capture.outboundPrt: unknown field'],
    [{ agentPorts: { admin: 15001 } }, 'capture.agentPorts.admin: port 15001 is also outboundPort'],
    [{ tproxy: { routeTable: 254 } }, 'capture.tproxy.routeTable: '],
    [{ tproxy: { rulePriority: 32766 } }, 'capture.tproxy.rulePriority: '],
    [{ agentUser: '' }, 'capture.agentUser: '],
  ])('%j -> %s', (input, expected) => {
    let caught: unknown;
    try {
      parseCaptureConfig(input, '/etc/weft/agent.yaml');
    } catch (err) {
      caught = err;
    }
    expect(isWeftError(caught, 'WEFT_E_CONFIG')).toBe(true);
    const message = (caught as Error).message;
    expect(message).toContain(`/etc/weft/agent.yaml: ${expected}`);
    expect(message).not.toContain('\n');
  });
});

describe('loadCaptureConfig', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weftrd-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function load(name: string, text: string) {
    const file = join(dir, name);
    await writeFile(file, text);
    return { file, result: loadCaptureConfig(file) };
  }

  it('reads the capture key and ignores the rest of the agent config', async () => {
    const { result } = await load(
      'agent.yaml',
      'controlPlane: { address: cp:15012 }\ncapture:\n  inboundMode: tproxy\n  outbound:\n    excludeCidrs: [10.0.0.0/8]\n',
    );
    const c = await result;
    expect(c.inboundMode).toBe('tproxy');
    expect(c.outbound.excludeCidrs).toEqual([{ family: 'ipv4', text: '10.0.0.0/8' }]);
  });

  it('uses the defaults when the file has no capture key, or no file is given', async () => {
    const defaults = parseCaptureConfig({});
    expect(await (await load('other.yaml', 'logLevel: info\n')).result).toEqual(defaults);
    expect(await (await load('empty.yaml', '')).result).toEqual(defaults);
    expect(await loadCaptureConfig()).toEqual(defaults);
  });

  it.each([
    ['bad-yaml.yaml', 'capture: [1, 2\n', 'not valid YAML'],
    ['list.yaml', '- 1\n- 2\n', 'must be a YAML mapping'],
    [
      'bad-field.yaml',
      'capture:\n  inbound:\n    excludePorts: [22, 99999]\n',
      'capture.inbound.excludePorts[1]: port must be 1-65535, got 99999',
    ],
  ])('%s -> one-line WEFT_E_CONFIG naming the file', async (name, text, expected) => {
    const { file, result } = await load(name, text);
    await expect(result).rejects.toSatisfy(
      (err: unknown) =>
        isWeftError(err, 'WEFT_E_CONFIG') &&
        err.message.startsWith(`${file}: `) &&
        err.message.includes(expected) &&
        !err.message.includes('\n'),
    );
  });

  it('refuses a named file that does not exist rather than installing defaults', async () => {
    await expect(loadCaptureConfig(join(dir, 'missing.yaml'))).rejects.toThrow(
      /missing\.yaml: cannot read the config file: no such file/,
    );
  });
});
