// The agent's latest authorization denials, for the dashboard's "recent denials": who was
// refused what, and why. A denial is rare next to the requests allowed, so keeping one costs
// nothing on the allowed path; a flood of them keeps only the newest, counting the rest.
import type { DenialRecord } from '../api/stats-messages.js';
import { clipText, RecentEvents } from './recent-events.js';

export interface DenialDetail {
  direction: 'inbound' | 'outbound';
  /** The caller's SPIFFE ID, or "unknown" (no certificate, plaintext). */
  source: string;
  destination: string;
  reason: string;
  method?: string;
  path?: string;
}

export class RecentDenials extends RecentEvents<DenialRecord> {
  add(d: DenialDetail): void {
    this.push({
      atUnixMs: this.now(),
      direction: d.direction,
      source: clipText(d.source),
      destination: clipText(d.destination),
      reason: clipText(d.reason),
      method: clipText(d.method ?? ''),
      path: clipText(d.path ?? ''),
    });
  }
}
