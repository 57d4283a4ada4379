// Admission at accept: a listener holds at most maxConnections open connections, at most
// maxConnectionsPerSource of them from one address. Decided before any work is done for the
// connection (no original destination lookup, no TLS), so a refusal costs only the accept.
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

  /** Takes a slot for a connection from `source` (an address); release() gives it back once. */
  admit(source: string): Admission {
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

  openFrom(source: string): number {
    return this.bySource.get(source) ?? 0;
  }
}
