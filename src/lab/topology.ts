// The lab's network as ip commands, computed from a resolved spec and nothing else: one
// switch namespace holding a bridge and the gateway addresses, one namespace per host.
import type { LabSpec } from './spec.js';
import { SWITCH_SUFFIX } from './spec.js';

/** Interface name inside every host namespace: what an application sees as its NIC. */
export const HOST_IFACE = 'eth0';
export const BRIDGE = 'br0';

export interface LabHost {
  name: string;
  netns: string;
  address: string;
  address6: string;
  /** The host's interface (inside its namespace). */
  iface: string;
}

export interface Topology {
  switchNetns: string;
  hosts: (LabHost & { switchEnd: string })[];
  /** Run from the root namespace: makes the namespaces and the veth pairs. */
  create: string[];
  /** Run inside the switch namespace. */
  switchConfig: string[];
  /** Shell run inside the switch namespace: it must never route. */
  switchSysctl: string;
  /** Run inside each host namespace, keyed by namespace. */
  hostConfig: Map<string, string[]>;
  /** Files for /etc/netns/<ns>/, keyed by namespace. */
  etcFiles: Map<string, Record<string, string>>;
}

function prefixLen(cidr: string): string {
  return cidr.slice(cidr.indexOf('/') + 1);
}

export function netnsName(lab: string, host: string): string {
  return `${lab}-${host}`;
}

export function switchNetnsName(lab: string): string {
  return `${lab}-${SWITCH_SUFFIX}`;
}

export function planTopology(spec: LabSpec): Topology {
  const switchNetns = switchNetnsName(spec.name);
  const p4 = prefixLen(spec.subnet);
  const p6 = prefixLen(spec.subnet6);
  const hosts = spec.hosts.map((h) => ({
    name: h.name,
    netns: netnsName(spec.name, h.name),
    address: h.address,
    address6: h.address6,
    iface: HOST_IFACE,
    // Named like the host's namespace, so `ip -n <lab>-switch link` reads as a port map.
    switchEnd: netnsName(spec.name, h.name),
  }));

  // Each veth pair is born with its ends already in their namespaces (IFLA_NET_NS_FD on
  // both), so no interface ever exists in the root namespace, not even for a moment.
  const create = [
    `netns add ${switchNetns}`,
    ...hosts.map((h) => `netns add ${h.netns}`),
    ...hosts.map(
      (h) =>
        `link add ${h.switchEnd} netns ${switchNetns} type veth peer name ${h.iface} netns ${h.netns}`,
    ),
  ];

  // STP off: ports forward at once instead of after 2 x 15 s of learning. Multicast
  // snooping off: with no MLD querier on the segment it can drop IPv6 neighbour discovery.
  const switchConfig = [
    'link set lo up',
    `link add ${BRIDGE} type bridge stp_state 0 mcast_snooping 0`,
    `addr add ${spec.gateway}/${p4} dev ${BRIDGE}`,
    `addr add ${spec.gateway6}/${p6} dev ${BRIDGE} nodad`,
    `link set ${BRIDGE} up`,
    ...hosts.map((h) => `link set ${h.switchEnd} master ${BRIDGE} up`),
  ];
  const switchSysctl = [
    'echo 0 > /proc/sys/net/ipv4/ip_forward',
    'echo 0 > /proc/sys/net/ipv6/conf/all/forwarding',
  ].join(' && ');

  // nodad: the address is usable at once instead of after ~1 s of duplicate detection;
  // the lab assigns addresses itself, so there is nothing to detect.
  const hostConfig = new Map(
    hosts.map((h) => [
      h.netns,
      [
        'link set lo up',
        `link set ${h.iface} up`,
        `addr add ${h.address}/${p4} dev ${h.iface}`,
        `addr add ${h.address6}/${p6} dev ${h.iface} nodad`,
        `route add default via ${spec.gateway} dev ${h.iface}`,
        `route add default via ${spec.gateway6} dev ${h.iface}`,
      ],
    ]),
  );

  // Host names map to IPv4 only: a client trying IPv6 first would otherwise be refused by
  // the many servers that bind 0.0.0.0.
  const hostsFile = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    ...hosts.map((h) => `${h.address}\t${h.name}`),
  ].join('\n');
  const etcFiles = new Map(
    hosts.map((h) => [
      h.netns,
      {
        'resolv.conf': `# weft lab ${spec.name}, host ${h.name}\n${spec.nameservers
          .map((ns) => `nameserver ${ns}`)
          .join('\n')}\noptions timeout:1 attempts:1\n`,
        hosts: `# weft lab ${spec.name}, host ${h.name}\n${hostsFile}\n`,
      },
    ]),
  );

  return {
    switchNetns,
    hosts,
    create,
    switchConfig,
    switchSysctl,
    hostConfig,
    etcFiles,
  };
}
