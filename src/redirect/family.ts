// The two IP families weft captures; iptables keeps a separate rule set for each.

export type Family = 'ipv4' | 'ipv6';

export const FAMILIES: readonly Family[] = ['ipv4', 'ipv6'];

/** "IPv4" / "IPv6", for messages. */
export function familyLabel(family: Family): string {
  return family === 'ipv4' ? 'IPv4' : 'IPv6';
}
