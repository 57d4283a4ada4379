// Address arithmetic for lab subnets: IPv4 as 32-bit numbers, IPv6 as 128-bit bigints,
// so host addresses can be assigned by offset into a subnet and printed canonically.
import { isIPv4, isIPv6 } from 'node:net';

export interface Subnet {
  /** Network address as a number (v4) or bigint (v6), host bits zero. */
  base: bigint;
  prefix: number;
  bits: 32 | 128;
}

export function parseIPv4(text: string): bigint {
  if (!isIPv4(text)) throw new Error(`"${text}" is not an IPv4 address`);
  return text.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

export function formatIPv4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join('.');
}

export function parseIPv6(text: string): bigint {
  if (!isIPv6(text) || text.includes('%')) throw new Error(`"${text}" is not an IPv6 address`);
  let groups: string[];
  // An embedded IPv4 tail (::ffff:1.2.3.4) counts as two groups.
  const v4tail = text.match(/^(.*:)(\d+\.\d+\.\d+\.\d+)$/);
  let tail: string[] = [];
  let head = text;
  if (v4tail) {
    const v4 = parseIPv4(v4tail[2]!);
    tail = [(v4 >> 16n).toString(16), (v4 & 0xffffn).toString(16)];
    head = v4tail[1]!.endsWith('::') ? v4tail[1]! : v4tail[1]!.slice(0, -1);
  }
  if (head.includes('::')) {
    const [left, right] = head.split('::') as [string, string];
    const l = left ? left.split(':') : [];
    const r = [...(right ? right.split(':') : []), ...tail];
    groups = [...l, ...Array<string>(8 - l.length - r.length).fill('0'), ...r];
  } else {
    groups = [...head.split(':'), ...tail];
  }
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g, 16)), 0n);
}

/** RFC 5952 form: lower case, leading zeros dropped, the longest run of zero groups as `::`. */
export function formatIPv6(value: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 1; // a single zero group is never shortened
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  const left = hex.slice(0, bestStart).join(':');
  const right = hex.slice(bestStart + bestLen).join(':');
  return `${left}::${right}`;
}

/** Parses `a.b.c.d/n` or `x::/n`; the address must be the network address. */
export function parseSubnet(cidr: string, family: 4 | 6): Subnet {
  const m = cidr.match(/^([^/]+)\/(\d{1,3})$/);
  if (!m) throw new Error(`"${cidr}" is not in ADDRESS/PREFIX form`);
  const bits = family === 4 ? 32 : 128;
  const prefix = Number(m[2]);
  if (prefix > bits) throw new Error(`prefix /${prefix} is longer than ${bits} bits`);
  const base = family === 4 ? parseIPv4(m[1]!) : parseIPv6(m[1]!);
  const hostBits = BigInt(bits - prefix);
  if (base & ((1n << hostBits) - 1n)) {
    const net = (base >> hostBits) << hostBits;
    const shown = family === 4 ? formatIPv4(net) : formatIPv6(net);
    throw new Error(`"${cidr}" has host bits set; did you mean ${shown}/${prefix}?`);
  }
  return { base, prefix, bits };
}

/** Number of addresses in the subnet (2^hostbits). */
export function subnetSize(subnet: Subnet): bigint {
  return 1n << BigInt(subnet.bits - subnet.prefix);
}

/** Offset of an address inside the subnet, or undefined when it lies outside. */
export function offsetIn(subnet: Subnet, address: bigint): bigint | undefined {
  const offset = address - subnet.base;
  return offset >= 0n && offset < subnetSize(subnet) ? offset : undefined;
}

export function addressAt(subnet: Subnet, offset: bigint): string {
  const value = subnet.base + offset;
  return subnet.bits === 32 ? formatIPv4(value) : formatIPv6(value);
}

export function formatSubnet(subnet: Subnet): string {
  return `${addressAt(subnet, 0n)}/${subnet.prefix}`;
}
