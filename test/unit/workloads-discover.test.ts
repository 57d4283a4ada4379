// `weft workloads discover`'s decisions: which listening sockets are proposed (weft's own and
// loopback-only ones skipped unless --all), their names and protocols, the Service documents
// and agent.yaml entries, and the agent.yaml edit that keeps comments and refuses clashes.
import { describe, expect, it } from 'vitest';
import {
  discoverCandidates,
  type ProcessFacts,
  proposals,
  serviceName,
} from '../../src/cli/commands/workloads-discover-plan.js';
import { withWorkloads } from '../../src/cli/commands/workloads-discover-register.js';

const AGENT_PORTS = [15001, 15006, 15053, 15000, 15008, 15020];
const procs = new Map<number, ProcessFacts>(
  [
    { pid: 10, name: 'nginx', command: 'nginx: master', user: 'root', unit: 'nginx.service' },
    { pid: 20, name: 'redis-server', command: 'redis-server *:6379', user: 'redis' },
    { pid: 30, name: 'node', command: 'node /usr/lib/weft/bin/weft agent', user: 'weft' },
    { pid: 40, name: 'sshd', command: 'sshd', user: 'root', unit: 'ssh.service' },
    { pid: 50, name: 'Custom App', command: 'app', user: 'root', unit: 'session-3.scope' },
  ].map((p) => [p.pid, p]),
);
const sockets = [
  { address: '0.0.0.0', port: 80, pid: 10 },
  { address: '::', port: 80, pid: 10 },
  { address: '10.0.0.5', port: 6379, pid: 20 },
  { address: '127.0.0.1', port: 6380, pid: 20 },
  { address: '127.0.0.1', port: 15000, pid: 30 },
  { address: '0.0.0.0', port: 15008, pid: 30 },
  { address: '0.0.0.0', port: 22, pid: 40 },
  { address: '0.0.0.0', port: 9999, pid: 50 },
];

describe('discoverCandidates', () => {
  const found = discoverCandidates(sockets, procs, { all: false, agentPorts: AGENT_PORTS });
  const by = (service: string, port: number) =>
    found.find((c) => c.service === service && c.port === port);

  it('one candidate per process and port, its IPv4 and IPv6 sockets together', () => {
    expect(by('nginx', 80)).toMatchObject({
      addresses: ['0.0.0.0', '::'],
      pid: 10,
      process: 'nginx',
      user: 'root',
      unit: 'nginx.service',
      protocol: 'http',
    });
    expect(by('nginx', 80)!.skipped).toBeUndefined();
  });

  it.each([
    ['redis-server', 6379, undefined, 'tcp'],
    ['redis-server', 6380, 'loopback', 'tcp'],
    ['node', 15000, 'weft', 'tcp'],
    ['node', 15008, 'weft', 'tcp'],
    ['ssh', 22, undefined, 'tcp'],
    ['custom-app', 9999, undefined, 'tcp'],
  ])('%s on %i: skipped %s, protocol %s', (service, port, skipped, protocol) => {
    const c = by(service, port);
    expect(c).toBeDefined();
    expect(c!.skipped).toBe(skipped);
    expect(c!.protocol).toBe(protocol);
  });

  it('--all proposes the skipped ones too', () => {
    const all = discoverCandidates(sockets, procs, { all: true, agentPorts: AGENT_PORTS });
    expect(all.every((c) => c.skipped === undefined)).toBe(true);
  });
});

describe('serviceName', () => {
  it.each([
    [{ name: 'nginx', unit: 'nginx.service' }, 'nginx'],
    [{ name: 'redis-server' }, 'redis-server'],
    [{ name: 'Custom App', unit: 'session-3.scope' }, 'custom-app'],
    [{ name: '__' }, 'port-81'],
    [undefined, 'port-81'],
  ])('%j: %s', (p, expected) => {
    const facts = p && ({ pid: 1, command: '', user: 'x', ...p } as ProcessFacts);
    expect(serviceName(facts, 81)).toBe(expected);
  });
});

describe('proposals', () => {
  it('Service documents and workload entries for what is not skipped', () => {
    const found = discoverCandidates(sockets, procs, { all: false, agentPorts: AGENT_PORTS });
    const p = proposals(found);
    expect(p.services.map((s) => s.metadata.name)).toEqual([
      'custom-app',
      'nginx',
      'redis-server',
      'ssh',
    ]);
    expect(p.services.find((s) => s.metadata.name === 'nginx')!.spec.ports).toEqual([
      { name: 'http-80', port: 80, protocol: 'http' },
    ]);
    expect(p.workloads).toEqual([
      // a scope is no unit to map, and root is no user to map: no outbound identity
      { service: 'custom-app', name: 'custom-app-9999', port: 9999 },
      { service: 'nginx', name: 'nginx-80', port: 80, unit: 'nginx.service' },
      // bound to one address: that one is registered
      {
        service: 'redis-server',
        name: 'redis-server-6379',
        port: 6379,
        address: '10.0.0.5',
        user: 'redis',
      },
      { service: 'ssh', name: 'ssh-22', port: 22, unit: 'ssh.service' },
    ]);
  });
});

describe('withWorkloads: agent.yaml edited in place', () => {
  const FILE = 'agent.yaml';
  const TEXT = `# this host's agent
hostname: node1 # its node name
dataDir: /var/lib/weft/agent
workloads:
  # the web app
  - service: web
    port: 8080
logLevel: info
`;
  const nginx = { service: 'nginx', name: 'nginx-80', port: 80, unit: 'nginx.service' };

  it('appends the entries, keeping comments and key order', () => {
    const next = withWorkloads(TEXT, FILE, [nginx]);
    expect(next).toBe(`# this host's agent
hostname: node1 # its node name
dataDir: /var/lib/weft/agent
workloads:
  # the web app
  - service: web
    port: 8080
  - service: nginx
    name: nginx-80
    port: 80
    unit: nginx.service
logLevel: info
`);
  });

  it('adds a workloads list to a file without one, and to an empty file', () => {
    expect(withWorkloads('hostname: node1\n', FILE, [nginx])).toContain(
      'hostname: node1\nworkloads:\n  - service: nginx',
    );
    expect(withWorkloads('', FILE, [nginx])).toContain('workloads:\n  - service: nginx');
  });

  it.each([
    [{ service: 'web', name: 'web-2', port: 8080 }, /already has a workload of web on port 8080/],
    [{ service: 'other', name: 'web-8080', port: 1 }, /web-8080 \(agent\.yaml already has/],
  ])('refuses a clash with what is there (%j), changing nothing', (entry, message) => {
    expect(() => withWorkloads(TEXT, FILE, [nginx, entry])).toThrow(message);
  });

  it('refuses a file the agent could not read, naming it', () => {
    expect(() => withWorkloads('hostname: [\n', FILE, [nginx])).toThrow(
      /agent\.yaml: not valid YAML/,
    );
    expect(() => withWorkloads('nosuchfield: 1\n', FILE, [nginx])).toThrow(/agent\.yaml/);
  });
});
