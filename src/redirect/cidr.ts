// Address blocks in capture exclusions: parsed, sorted into their family, and written
// exactly as iptables-save prints them, so that `weft redirect status` can compare text.
import { isIPv4, isIPv6, SocketAddress } from 'node:net';
import type { Family } from './family.js';

export interface Cidr {
  family: Family;
  /** Canonical `address/prefix` with host bits cleared (iptables-save clears them too). */
  text: string;
}

/** Parses "10.0.0.0/8", "fd00::/8" or a bare address (a /32 or /128); returns an error text on bad input. */
export function parseCidr(value: string): Cidr | string {
  const [address = '', prefixText, extra] = value.trim().split('/');
  if (extra !== undefined) return `expected ADDRESS/PREFIX, got "${value}"`;
  if (isIPv4(address)) return build('ipv4', address, prefixText, 32, value);
  if (isIPv6(address) && !address.includes('%'))
    return build('ipv6', address, prefixText, 128, value);
  return `"${value}" is not an IPv4 or IPv6 address or CIDR`;
}

function build(
  family: Family,
  address: string,
  prefixText: string | undefined,
  bits: number,
  original: string,
): Cidr | string {
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) {
    return `prefix length of "${original}" must be a number 0-${bits}`;
  }
  if (prefix < 0 || prefix > bits) return `prefix length of "${original}" must be 0-${bits}`;
  const value = family === 'ipv4' ? ipv4ToBigInt(address) : ipv6ToBigInt(address);
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(bits - prefix);
  const network = value & mask;
  const text = family === 'ipv4' ? bigIntToIPv4(network) : bigIntToIPv6(network);
  return { family, text: `${text}/${prefix}` };
}

function ipv4ToBigInt(address: string): bigint {
  return address.split('.').reduce((acc, octet) => (acc << 8n) | BigInt(Number(octet)), 0n);
}

function bigIntToIPv4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join('.');
}

function ipv6ToBigInt(address: string): bigint {
  let text = address;
  // An embedded IPv4 tail (::ffff:10.0.0.1) becomes two hex groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1]) {
    const v4 = ipv4ToBigInt(dotted[1]);
    text = `${text.slice(0, -dotted[1].length)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? 0 : 8 - headGroups.length - tailGroups.length;
  const groups = [...headGroups, ...Array<string>(fill).fill('0'), ...tailGroups];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g, 16)), 0n);
}

function bigIntToIPv6(value: bigint): string {
  const groups: string[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n)
    groups.push(((value >> shift) & 0xffffn).toString(16));
  // SocketAddress formats with inet_ntop, the same routine ip6tables-save uses.
  return new SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}
