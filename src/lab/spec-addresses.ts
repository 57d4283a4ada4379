// Assigns each lab host its IPv4 and IPv6 address and checks the ones a spec gives: inside
// the subnet, not the network, broadcast or gateway address, and not taken by another host.
import {
  addressAt,
  formatSubnet,
  offsetIn,
  parseIPv4,
  parseIPv6,
  parseSubnet,
  type Subnet,
  subnetSize,
} from './addresses.js';
import type { SpecIssue } from './spec.js';

export interface ResolvedAddresses {
  subnet: string;
  subnet6: string;
  gateway: string;
  gateway6: string;
  addresses: string[];
  addresses6: string[];
}

interface AddressInput {
  subnet: string;
  subnet6: string;
  gateway?: string | undefined;
  gateway6?: string | undefined;
  hosts: { address?: string | undefined; address6?: string | undefined }[];
}

function tryParse<T>(fn: () => T, path: SpecIssue['path'], issues: SpecIssue[]): T | undefined {
  try {
    return fn();
  } catch (err) {
    issues.push({ path, message: (err as Error).message });
    return undefined;
  }
}

/** Offset of `text` inside `subnet`, or an issue at `path`. */
function offsetOf(
  text: string,
  subnet: Subnet,
  path: SpecIssue['path'],
  issues: SpecIssue[],
): bigint | undefined {
  const value = tryParse(
    () => (subnet.bits === 32 ? parseIPv4(text) : parseIPv6(text)),
    path,
    issues,
  );
  if (value === undefined) return undefined;
  const offset = offsetIn(subnet, value);
  if (offset === undefined) {
    issues.push({ path, message: `${text} is outside the subnet ${formatSubnet(subnet)}` });
    return undefined;
  }
  const last = subnetSize(subnet) - 1n;
  if (offset === 0n || (subnet.bits === 32 && offset === last)) {
    const which = offset === 0n ? 'network' : 'broadcast';
    issues.push({ path, message: `${text} is the ${which} address of ${formatSubnet(subnet)}` });
    return undefined;
  }
  return offset;
}

/** Subnets large enough for the hosts, the gateway, and v6 offsets mirroring v4 ones. */
function parseSubnets(spec: AddressInput, issues: SpecIssue[]) {
  const v4 = tryParse(() => parseSubnet(spec.subnet, 4), ['subnet'], issues);
  const v6 = tryParse(() => parseSubnet(spec.subnet6, 6), ['subnet6'], issues);
  if (v4 && v4.prefix > 30) {
    issues.push({ path: ['subnet'], message: `/${v4.prefix} is too small; use /30 or larger` });
    return undefined;
  }
  // A host's IPv6 address sits at the same offset as its IPv4 one (10.77.0.11 -> fd00:77::b).
  if (v4 && v6 && 128 - v6.prefix < 32 - v4.prefix) {
    issues.push({
      path: ['subnet6'],
      message: `/${v6.prefix} has fewer addresses than subnet ${spec.subnet}; use /${96 + v4.prefix} or larger`,
    });
    return undefined;
  }
  return v4 && v6 ? { v4, v6 } : undefined;
}

export function resolveAddresses(
  spec: AddressInput,
  issues: SpecIssue[],
): ResolvedAddresses | undefined {
  const subnets = parseSubnets(spec, issues);
  if (!subnets) return undefined;
  const { v4, v6 } = subnets;
  const gwOffset =
    spec.gateway === undefined
      ? subnetSize(v4) - 2n // the last usable address: .254 in a /24
      : offsetOf(spec.gateway, v4, ['gateway'], issues);
  if (gwOffset === undefined) return undefined;
  const gw6Offset =
    spec.gateway6 === undefined ? gwOffset : offsetOf(spec.gateway6, v6, ['gateway6'], issues);
  if (gw6Offset === undefined) return undefined;

  const taken4 = new Map<bigint, string>([[gwOffset, 'the gateway']]);
  const taken6 = new Map<bigint, string>([[gw6Offset, 'the gateway']]);
  const offsets: (bigint | undefined)[] = spec.hosts.map((h, i) =>
    claim(h.address, v4, ['hosts', i, 'address'], `hosts[${i}]`, taken4, issues),
  );
  // Hosts without an address get the lowest free offsets, in the order they are listed.
  let next = 1n;
  for (let i = 0; i < offsets.length; i++) {
    if (spec.hosts[i]!.address !== undefined) continue;
    while (taken4.has(next)) next++;
    if (next >= subnetSize(v4) - 1n) {
      issues.push({ path: ['hosts'], message: `more hosts than free addresses in ${spec.subnet}` });
      return undefined;
    }
    taken4.set(next, `hosts[${i}]`);
    offsets[i] = next;
  }
  const offsets6 = spec.hosts.map((h, i) =>
    h.address6 === undefined
      ? offsets[i]
      : claim(h.address6, v6, ['hosts', i, 'address6'], `hosts[${i}]`, taken6, issues),
  );
  offsets6.forEach((o, i) => {
    if (o === undefined || spec.hosts[i]!.address6 !== undefined) return;
    const holder = taken6.get(o);
    if (holder) {
      issues.push({
        path: ['hosts', i, 'address6'],
        message: `the default ${addressAt(v6, o)} is taken by ${holder}; give address6`,
      });
    }
    taken6.set(o, `hosts[${i}]`);
  });
  if (issues.length > 0) return undefined;
  return {
    subnet: formatSubnet(v4),
    subnet6: formatSubnet(v6),
    gateway: addressAt(v4, gwOffset),
    gateway6: addressAt(v6, gw6Offset),
    addresses: offsets.map((o) => addressAt(v4, o!)),
    addresses6: offsets6.map((o) => addressAt(v6, o!)),
  };
}

/** Validates an explicit address and marks it taken; undefined when absent or invalid. */
function claim(
  text: string | undefined,
  subnet: Subnet,
  path: SpecIssue['path'],
  holder: string,
  taken: Map<bigint, string>,
  issues: SpecIssue[],
): bigint | undefined {
  if (text === undefined) return undefined;
  const offset = offsetOf(text, subnet, path, issues);
  if (offset === undefined) return undefined;
  const other = taken.get(offset);
  if (other) {
    issues.push({ path, message: `${text} is already ${other}'s address` });
    return undefined;
  }
  taken.set(offset, holder);
  return offset;
}
