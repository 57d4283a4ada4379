// Admission at accept: a listener holds at most maxConnections open connections, at most
// maxConnectionsPerSource of them from one source: an IPv4 address, or an IPv6 /64 (one host
// usually holds a whole /64, so counting its addresses apart would not limit it). Decided
// before any work is done for the connection (no original destination lookup, no TLS), so a
// refusal costs only the accept.
import { isIPv6 } from 'node:net';
import { WeftError } from '../../errors.js';
import type { ListenerLimits } from './limits-config.js';

export type AdmissionRefusal = 'total_limit' | 'per_source_limit';

/** The decision, from what the listener holds now (pure; table-tested). */
export function admission(
  limits: ListenerLimits,
  open: { total: number; fromSource: number },
): 'admit' | AdmissionRefusal {
  if (open.total >= limits.maxConnections) return 'total_limit';
  if (open.fromSource >= limits.maxConnectionsPerSource) return 'per_source_limit';
  return 'admit';
}

/** The key a source is counted under: the IPv4 address, or the IPv6 address's /64. */
export function sourceKey(address: string): string {
  if (!isIPv6(address)) return address;
  let text = address.toLowerCase();
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  // A trailing dotted quad stands for the last two groups.
  const dotted = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(2).map(Number) as [number, number, number, number];
    text = `${dotted[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups =
    tail === undefined
      ? left
      : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  const prefix = groups.slice(0, 4).map((g) => Number.parseInt(g, 16).toString(16));
  return `${prefix.join(':')}::/64`;
}

export type Admission =
  | { admitted: true; release: () => void }
  | { admitted: false; reason: AdmissionRefusal };

export class ConnectionGate {
  private total = 0;
  private readonly bySource = new Map<string, number>();

  constructor(
    readonly limits: ListenerLimits,
    where = 'connection gate',
  ) {
    for (const field of ['maxConnections', 'maxConnectionsPerSource'] as const) {
      const v = limits[field];
      if (!Number.isInteger(v) || v < 1) {
        throw new WeftError(
          'WEFT_E_CONFIG',
          `${where}: ${field} must be a positive integer, got ${v}`,
        );
      }
    }
  }

  /** Takes a slot for a connection from `address`; release() gives it back once. */
  admit(address: string): Admission {
    const source = sourceKey(address);
    const fromSource = this.bySource.get(source) ?? 0;
    const decision = admission(this.limits, { total: this.total, fromSource });
    if (decision !== 'admit') return { admitted: false, reason: decision };
    this.total += 1;
    this.bySource.set(source, fromSource + 1);
    let released = false;
    return {
      admitted: true,
      release: () => {
        if (released) return;
        released = true;
        this.total -= 1;
        const left = (this.bySource.get(source) ?? 1) - 1;
        if (left === 0) this.bySource.delete(source);
        else this.bySource.set(source, left);
      },
    };
  }

  get open(): number {
    return this.total;
  }

  /** Connections open from the source `address` counts under. */
  openFrom(address: string): number {
    return this.bySource.get(sourceKey(address)) ?? 0;
  }
}
