// Refusals in the log without flooding it: the first refusal of a listener and reason is
// logged at once; those that follow within the interval are counted and summed up in one line
// when it ends ("refused 2000 inbound connections (per_source_limit) in the last 10 s, most
// from 10.0.0.9 (2000)"), so a burst of any size costs one line per interval, not one per
// connection. The clock is injected: tests drive it.
import type { Logger } from '../../sys/logger.js';

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): { unref?: () => unknown };
}

const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
};

/** Distinct sources remembered per window; the rest are only counted. */
const MAX_SOURCES = 64;
const TOP_SOURCES = 3;

interface Window {
  /** When the current window ends; a refusal after it, with none pending, is logged at once. */
  ends: number;
  count: number;
  sources: Map<string, number>;
  scheduled: boolean;
}

export class RefusalLog {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly log: Logger,
    private readonly intervalMs: number,
    private readonly clock: Clock = systemClock,
  ) {}

  note(listener: string, reason: string, source: string | undefined, detail?: string): void {
    const key = `${listener} ${reason}`;
    const now = this.clock.now();
    const w = this.windows.get(key);
    if (w === undefined || (now >= w.ends && !w.scheduled)) {
      this.windows.set(key, {
        ends: now + this.intervalMs,
        count: 0,
        sources: new Map(),
        scheduled: false,
      });
      this.log.warn(
        { listener, reason, ...(source ? { src: source } : {}), ...(detail ? { detail } : {}) },
        `refused a ${listener} connection${source ? ` from ${source}` : ''}: ${reason}`,
      );
      return;
    }
    w.count += 1;
    if (source !== undefined && (w.sources.has(source) || w.sources.size < MAX_SOURCES)) {
      w.sources.set(source, (w.sources.get(source) ?? 0) + 1);
    }
    if (!w.scheduled) {
      w.scheduled = true;
      this.clock
        .setTimeout(() => this.summarize(key, listener, reason), Math.max(0, w.ends - now))
        .unref?.();
    }
  }

  private summarize(key: string, listener: string, reason: string): void {
    const w = this.windows.get(key);
    if (w === undefined) return;
    const top = [...w.sources.entries()].sort((a, b) => b[1] - a[1]).slice(0, TOP_SOURCES);
    const from =
      top.length === 0 ? '' : `, most from ${top.map(([s, n]) => `${s} (${n})`).join(', ')}`;
    const seconds = Math.round(this.intervalMs / 100) / 10;
    this.log.warn(
      {
        listener,
        reason,
        refused: w.count,
        interval_s: seconds,
        top_sources: Object.fromEntries(top),
      },
      `refused ${w.count} ${listener} connections (${reason}) in the last ${seconds} s${from}`,
    );
    // The next window starts now: refusals in it are summed up at its end, not logged one each.
    this.windows.set(key, {
      ends: this.clock.now() + this.intervalMs,
      count: 0,
      sources: new Map(),
      scheduled: false,
    });
  }
}
