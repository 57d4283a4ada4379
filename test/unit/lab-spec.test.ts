// The lab spec: what a good spec resolves to, and each kind of mistake reported at its field.
import { describe, expect, it } from 'vitest';
import { isWeftError } from '../../src/errors.js';
import { defaultLabSpec, parseLabSpec, validateLabSpec } from '../../src/lab/index.js';
import { planTopology } from '../../src/lab/topology.js';

const good = `
name: demo
subnet: 10.77.0.0/24
subnet6: fd00:77::/64
hosts:
  - name: cp
  - name: node1
    address: 10.77.0.11
    processes:
      - name: echo
        command: ["python3", "-m", "http.server", "8080"]
        user: weftapp
        env: { KEY: value, PORT: 8080 }
        cwd: /tmp
  - name: node2
    processes:
      - name: shell
        command: echo hi && sleep 100
`;

describe('parseLabSpec on a good spec', () => {
  const spec = parseLabSpec(good, 'good.yaml');

  it('assigns the lowest free addresses in order and mirrors them in IPv6', () => {
    expect(spec.hosts.map((h) => [h.name, h.address, h.address6])).toEqual([
      ['cp', '10.77.0.1', 'fd00:77::1'],
      ['node1', '10.77.0.11', 'fd00:77::b'],
      ['node2', '10.77.0.2', 'fd00:77::2'],
    ]);
    expect([spec.gateway, spec.gateway6]).toEqual(['10.77.0.254', 'fd00:77::fe']);
  });

  it('fills process defaults and turns a string command into sh -c', () => {
    expect(spec.hosts[1]!.processes[0]).toEqual({
      name: 'echo',
      command: ['python3', '-m', 'http.server', '8080'],
      user: 'weftapp',
      env: { KEY: 'value', PORT: '8080' },
      cwd: '/tmp',
    });
    expect(spec.hosts[2]!.processes[0]).toMatchObject({
      command: ['sh', '-c', 'echo hi && sleep 100'],
      user: 'root',
      env: {},
      cwd: '/',
    });
  });

  it('accepts its own output again unchanged', () => {
    expect(validateLabSpec(spec)).toEqual(spec);
  });

  it('defaults subnets and nameservers', () => {
    const s = parseLabSpec('name: x\nhosts: [{name: a}]');
    expect([s.subnet, s.subnet6, s.nameservers]).toEqual([
      '10.77.0.0/24',
      'fd00:77::/64',
      ['127.0.0.1'],
    ]);
  });

  it('places the gateway on the last usable address of other subnet sizes', () => {
    const s = parseLabSpec(
      'name: x\nsubnet: 192.168.8.0/22\nsubnet6: fd00:1::/112\nhosts: [{name: a}]',
    );
    expect([s.gateway, s.gateway6, s.hosts[0]!.address6]).toEqual([
      '192.168.11.254',
      'fd00:1::3fe',
      'fd00:1::1',
    ]);
  });
});

describe('defaultLabSpec', () => {
  it('is the demo lab: cp and three nodes, no processes', () => {
    const s = defaultLabSpec();
    expect(s.name).toBe('demo');
    expect(s.hosts.map((h) => h.name)).toEqual(['cp', 'node1', 'node2', 'node3']);
    expect(s.hosts.every((h) => h.processes.length === 0)).toBe(true);
  });
});

describe('planTopology', () => {
  it('never creates an interface outside a lab namespace', () => {
    const topo = planTopology(parseLabSpec(good));
    const links = topo.create.filter((l) => l.startsWith('link add'));
    expect(links).toHaveLength(3);
    for (const line of links)
      expect(line).toMatch(
        /^link add \S+ netns demo-switch type veth peer name eth0 netns demo-\S+$/,
      );
    expect(topo.hostConfig.get('demo-node1')).toContain('addr add fd00:77::b/64 dev eth0 nodad');
    expect(topo.etcFiles.get('demo-cp')!['resolv.conf']).toContain('nameserver 127.0.0.1');
  });
});

const base = (hosts: string) => `name: demo\nhosts:\n${hosts}`;

// [what, yaml, the field path and words the message must hold]
const bad: [string, string, string][] = [
  ['missing name', 'hosts: [{name: a}]', 'name: is required'],
  ['dash in the lab name', 'name: my-lab\nhosts: [{name: a}]', 'name: must be'],
  ['no hosts', 'name: demo\nhosts: []', 'hosts: must list at least one host'],
  ['duplicate host', base('  - name: a\n  - name: a\n'), 'hosts[1].name: "a" is also hosts[0]'],
  ['reserved host name', base('  - name: switch\n'), 'hosts[0].name: "switch" is reserved'],
  [
    'host name too long for an interface',
    base('  - name: node-number-one1\n'),
    'hosts[0].name: must be',
  ],
  [
    'lab and host names too long together',
    'name: longlabname\nhosts: [{name: node1}]',
    'hosts[0].name: interface name "longlabname-node1"',
  ],
  ['bad host name', base('  - name: Node_1\n'), 'hosts[0].name: must be'],
  [
    'unknown key',
    base('  - name: a\n    adress: 10.77.0.3\n'),
    'hosts[0]: Unrecognized key: "adress"',
  ],
  [
    'address outside the subnet',
    base('  - name: a\n    address: 10.78.0.1\n'),
    'hosts[0].address: 10.78.0.1 is outside the subnet 10.77.0.0/24',
  ],
  [
    'address is the gateway',
    base('  - name: a\n    address: 10.77.0.254\n'),
    "hosts[0].address: 10.77.0.254 is already the gateway's address",
  ],
  [
    'broadcast address',
    base('  - name: a\n    address: 10.77.0.255\n'),
    'hosts[0].address: 10.77.0.255 is the broadcast address',
  ],
  [
    'not an address',
    base('  - name: a\n    address: banana\n'),
    'hosts[0].address: "banana" is not an IPv4 address',
  ],
  [
    'duplicate address',
    base('  - name: a\n    address: 10.77.0.9\n  - name: b\n    address: 10.77.0.9\n'),
    "hosts[1].address: 10.77.0.9 is already hosts[0]'s address",
  ],
  [
    'address6 outside subnet6',
    base('  - name: a\n    address6: fd00:78::1\n'),
    'hosts[0].address6: fd00:78::1 is outside the subnet fd00:77::/64',
  ],
  [
    'subnet with host bits',
    'name: demo\nsubnet: 10.77.0.1/24\nhosts: [{name: a}]',
    'subnet: "10.77.0.1/24" has host bits set; did you mean 10.77.0.0/24?',
  ],
  [
    'subnet too small',
    'name: demo\nsubnet: 10.77.0.0/31\nhosts: [{name: a}]',
    'subnet: /31 is too small',
  ],
  [
    'subnet6 smaller than subnet',
    'name: demo\nsubnet: 10.0.0.0/16\nsubnet6: fd00::/120\nhosts: [{name: a}]',
    'subnet6: /120 has fewer addresses',
  ],
  [
    'more hosts than addresses',
    'name: demo\nsubnet: 10.77.0.0/30\nhosts: [{name: a}, {name: b}]',
    'hosts: more hosts than free addresses',
  ],
  [
    'bad nameserver',
    'name: demo\nnameservers: [dns.example]\nhosts: [{name: a}]',
    'nameservers[0]: must be an IP address',
  ],
  [
    'bad process user',
    base(
      '  - name: a\n  - name: b\n    processes:\n      - name: p\n        command: [x]\n        user: Web-App\n',
    ),
    'hosts[1].processes[0].user: must be a Linux user name',
  ],
  [
    'empty command',
    base('  - name: a\n    processes:\n      - name: p\n        command: []\n'),
    'hosts[0].processes[0].command: must name at least the program',
  ],
  [
    'missing command',
    base('  - name: a\n    processes:\n      - name: p\n'),
    'hosts[0].processes[0].command: is required',
  ],
  [
    'relative cwd',
    base('  - name: a\n    processes:\n      - {name: p, command: x, cwd: tmp}\n'),
    'hosts[0].processes[0].cwd: must be an absolute path',
  ],
  [
    'bad env name',
    base('  - name: a\n    processes:\n      - {name: p, command: x, env: {"A-B": 1}}\n'),
    'hosts[0].processes[0].env.A-B: must be an environment variable name',
  ],
  [
    'duplicate process',
    base(
      '  - name: a\n    processes:\n      - {name: p, command: x}\n      - {name: p, command: y}\n',
    ),
    'hosts[0].processes[1].name: "p" is also processes[0]',
  ],
  ['not YAML', 'name: [demo', 'not valid YAML'],
  ['not a mapping', '- a\n- b\n', 'must be a YAML mapping'],
];

describe('parseLabSpec rejects', () => {
  it.each(bad)('%s', (_what, yaml, expected) => {
    let caught: unknown;
    try {
      parseLabSpec(yaml, 'lab.yaml');
    } catch (err) {
      caught = err;
    }
    expect(isWeftError(caught, 'WEFT_E_CONFIG')).toBe(true);
    const message = (caught as Error).message;
    expect(message.startsWith('lab.yaml: ')).toBe(true);
    expect(message).toContain(expected);
  });
});
