// TCP port lists in capture rules: ports and ranges as the config writes them, packed
// into `-m multiport` groups that stay within the kernel's limit per rule.

/** An inclusive port range; a single port has from === to. */
export interface PortRange {
  from: number;
  to: number;
}

/**
 * xt_multiport holds at most 15 entries per rule (XT_MULTI_PORTS) and a range
 * `a:b` takes two of them, so longer lists are split over several rules.
 */
export const MULTIPORT_SLOTS = 15;

const RANGE = /^(\d{1,5})\s*[-:]\s*(\d{1,5})$/;

/** Parses 8080, "8080" or "30000-32767" (also "30000:32767"); returns an error text on bad input. */
export function parsePortSpec(value: number | string): PortRange | string {
  if (typeof value === 'number') return checkPort(value, value);
  const text = value.trim();
  if (/^\d{1,5}$/.test(text)) return checkPort(Number(text), Number(text));
  const m = RANGE.exec(text);
  if (!m) return `expected a port (1-65535) or a range "FROM-TO", got "${value}"`;
  return checkPort(Number(m[1]), Number(m[2]));
}

function checkPort(from: number, to: number): PortRange | string {
  for (const p of [from, to]) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) return `port must be 1-65535, got ${p}`;
  }
  if (from > to) return `range start ${from} is above its end ${to}`;
  return { from, to };
}

/** Drops exact duplicates, keeping the first occurrence's position. */
export function uniquePorts(ports: readonly PortRange[]): PortRange[] {
  const seen = new Set<string>();
  return ports.filter((p) => {
    const key = `${p.from}:${p.to}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function formatRange(p: PortRange): string {
  return p.from === p.to ? String(p.from) : `${p.from}:${p.to}`;
}

/** Comma lists for `--dports`, each using at most MULTIPORT_SLOTS slots, in input order. */
export function multiportGroups(ports: readonly PortRange[]): string[] {
  const groups: string[][] = [];
  let current: string[] = [];
  let used = 0;
  for (const p of ports) {
    const cost = p.from === p.to ? 1 : 2;
    if (used + cost > MULTIPORT_SLOTS) {
      groups.push(current);
      current = [];
      used = 0;
    }
    current.push(formatRange(p));
    used += cost;
  }
  if (current.length > 0) groups.push(current);
  return groups.map((g) => g.join(','));
}
