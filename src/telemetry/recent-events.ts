// The agent's newest few events of a kind (authorization denials, failed requests) for the
// control plane's dashboard: bounded, the oldest dropped and counted; each stats report takes
// the newest `perReport` of what came since the last one and counts the rest.
export interface TimedEvent {
  atUnixMs: number;
}

/** Held between two stats reports. */
const CAPACITY = 64;
export const REPORT_EVENTS = 20;
/** A path or reason is the caller's (or a policy's) text: bounded before it is kept. */
const MAX_TEXT = 256;

export const clipText = (text: string): string =>
  text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT - 1)}…` : text;

export class RecentEvents<T extends TimedEvent> {
  private readonly held: T[] = [];
  private dropped = 0;

  constructor(protected readonly now: () => number = Date.now) {}

  protected push(event: T): void {
    if (this.held.length === CAPACITY) {
      this.held.shift();
      this.dropped += 1;
    }
    this.held.push(event);
  }

  /** The newest events for a report (oldest first), and how many more there were. */
  take(): { events: T[]; omitted: number } {
    const all = this.held.splice(0);
    const events = all.slice(-REPORT_EVENTS);
    const omitted = this.dropped + (all.length - events.length);
    this.dropped = 0;
    return { events, omitted };
  }

  /** A report that did not go out: its events are kept for the next one. */
  giveBack(taken: { events: T[]; omitted: number }): void {
    const room = CAPACITY - this.held.length;
    const back = taken.events.slice(-room);
    this.held.unshift(...back);
    this.dropped += taken.omitted + (taken.events.length - back.length);
  }
}
