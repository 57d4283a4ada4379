// The agent's latest authorization denials, for the control plane's "recent denials" view:
// who was refused what, and why. A denial is rare next to the requests allowed, so keeping one
// costs nothing on the allowed path; a flood of them keeps only the newest, counting the rest.
import type { DenialRecord } from '../api/stats-messages.js';

/** Held between two stats reports; a report carries at most REPORT_DENIALS of them. */
const CAPACITY = 64;
export const REPORT_DENIALS = 20;
/** A path or reason is the caller's (or a policy's) text: bounded before it is kept. */
const MAX_TEXT = 256;

export interface DenialDetail {
  direction: 'inbound' | 'outbound';
  /** The caller's SPIFFE ID, or "unknown" (no certificate, plaintext). */
  source: string;
  destination: string;
  reason: string;
  method?: string;
  path?: string;
}

const clip = (text: string): string =>
  text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT - 1)}…` : text;

export class RecentDenials {
  private readonly held: DenialRecord[] = [];
  private dropped = 0;

  constructor(private readonly now: () => number = Date.now) {}

  add(d: DenialDetail): void {
    if (this.held.length === CAPACITY) {
      this.held.shift();
      this.dropped += 1;
    }
    this.held.push({
      atUnixMs: this.now(),
      direction: d.direction,
      source: clip(d.source),
      destination: clip(d.destination),
      reason: clip(d.reason),
      method: clip(d.method ?? ''),
      path: clip(d.path ?? ''),
    });
  }

  /** The newest denials for a report (oldest first), and how many more there were. */
  take(): { denials: DenialRecord[]; omitted: number } {
    const all = this.held.splice(0);
    const denials = all.slice(-REPORT_DENIALS);
    const omitted = this.dropped + (all.length - denials.length);
    this.dropped = 0;
    return { denials, omitted };
  }

  /** A report that did not go out: its denials are kept for the next one. */
  giveBack(taken: { denials: DenialRecord[]; omitted: number }): void {
    const room = CAPACITY - this.held.length;
    const back = taken.denials.slice(-room);
    this.held.unshift(...back);
    this.dropped += taken.omitted + (taken.denials.length - back.length);
  }
}
