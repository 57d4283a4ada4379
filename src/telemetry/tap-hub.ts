// The agent's taps. The data path pays one flag check per finished request while no tap is
// open (`active`); with taps open it pushes a reference to the finished record onto a bounded
// queue and returns. Filtering, rate limiting and copying happen in a drain scheduled with
// setImmediate, off the request's path; a full queue drops (counted), never waits: tapping
// puts no back pressure on requests.
import { randomUUID } from 'node:crypto';
import type { Registry } from 'prom-client';
import type { RequestRecord } from '../proxy/records.js';
import { Counter, Gauge } from './prom.js';
import { type TapFilter, tapMatches } from './tap-filter.js';
import { TapLimiter } from './tap-limiter.js';
import { SENSITIVE_HEADERS, type TapHeaders, type TapRecord, tapRecord } from './tap-record.js';

/** Finished requests waiting for the drain, at most: beyond, they are dropped for every tap. */
export const TAP_QUEUE_LIMIT = 4_096;
/** How often a tap's dropped count is reported while it changes. */
export const DROPPED_REPORT_MS = 1_000;

export interface TapSubscriber {
  /** Records that passed the filter and the rate limit, oldest first. */
  records(batch: TapRecord[]): void;
  /** The tap's dropped total, when it changed (at most once per DROPPED_REPORT_MS, and at close). */
  dropped(total: number): void;
}

export interface TapHandle {
  readonly id: string;
  /** Stops the tap: no record is copied for it after this. */
  close(): void;
}

interface OpenTap {
  readonly filter: TapFilter;
  readonly limiter: TapLimiter;
  readonly subscriber: TapSubscriber;
  dropped: number;
  reported: number;
}

interface Offered {
  record: RequestRecord;
  durationMs: number;
  headers: TapHeaders | undefined;
}

export interface TapHubOptions {
  node: string;
  /** Header names redacted besides SENSITIVE_HEADERS (case does not matter). */
  redactHeaders?: readonly string[];
  registry?: Registry;
  /** Monotonic milliseconds, for the rate limits (tests drive it). */
  now?: () => number;
}

export class TapHub {
  /** True while a tap is open: the one thing the data path reads when no one taps. */
  active = false;
  private readonly node: string;
  private readonly redact: ReadonlySet<string>;
  private readonly now: () => number;
  private readonly taps = new Map<string, OpenTap>();
  private queue: Offered[] = [];
  private overflow = 0;
  /**
   * Until then every tap's rate limit is spent: a finished request is only counted (for the
   * taps it matches), not queued, so a flood past the limits costs a filter check, not a queue.
   */
  private spentUntil = 0;
  private spentDropped = 0;
  private draining = false;
  private reporter: NodeJS.Timeout | undefined;
  private readonly open_: Gauge | undefined;
  private readonly outcomes: Counter<'outcome'> | undefined;

  constructor(options: TapHubOptions) {
    this.node = options.node;
    this.redact = new Set([
      ...SENSITIVE_HEADERS,
      ...(options.redactHeaders ?? []).map((h) => h.toLowerCase()),
    ]);
    this.now = options.now ?? (() => performance.now());
    if (options.registry) {
      const registers = [options.registry];
      this.open_ = new Gauge({
        name: 'weft_tap_open',
        help: 'Taps open on this agent (weft tap)',
        registers,
      });
      this.outcomes = new Counter({
        name: 'weft_tap_records_total',
        help: 'Request records offered to taps: sent, or dropped (rate limit or full queue)',
        labelNames: ['outcome'],
        registers,
      });
    }
  }

  /** Opens a tap; records of requests that finish from now on reach `subscriber`. */
  open(filter: TapFilter, subscriber: TapSubscriber): TapHandle {
    const id = randomUUID();
    const tap: OpenTap = {
      filter,
      limiter: new TapLimiter(filter.maxPerSecond, this.now),
      subscriber,
      dropped: 0,
      reported: 0,
    };
    this.taps.set(id, tap);
    this.spentUntil = 0; // a new tap has a full bucket
    this.changed();
    return {
      id,
      close: () => {
        if (!this.taps.delete(id)) return;
        this.spentUntil = 0; // the taps left may have tokens
        this.report(tap);
        this.changed();
      },
    };
  }

  /** Finished requests waiting for the drain (tests). */
  get queued(): number {
    return this.queue.length;
  }

  /** Taps open now. */
  get size(): number {
    return this.taps.size;
  }

  /**
   * A request finished (call only while `active`). Keeps a reference, no copy: the record is
   * not changed after its finish, and the drain copies what taps show.
   */
  offer(record: RequestRecord, durationMs: number, headers?: TapHeaders): void {
    if (this.spentUntil > 0) {
      if (this.now() < this.spentUntil) {
        for (const tap of this.taps.values()) {
          if (!tapMatches(tap.filter, record)) continue;
          tap.dropped += 1;
          this.spentDropped += 1;
        }
        return;
      }
      this.spentUntil = 0;
    }
    if (this.queue.length >= TAP_QUEUE_LIMIT) {
      this.overflow += 1;
      return;
    }
    this.queue.push({ record, durationMs, headers });
    if (!this.draining) {
      this.draining = true;
      setImmediate(() => this.drain());
    }
  }

  private drain(): void {
    this.draining = false;
    const offered = this.queue;
    this.queue = [];
    const overflow = this.overflow;
    this.overflow = 0;
    const finishedAt = Date.now();
    let sent = 0;
    let dropped = 0;
    for (const tap of this.taps.values()) {
      const out: TapRecord[] = [];
      // The queue overflowed: any of those requests might have matched, so each tap counts them.
      tap.dropped += overflow;
      dropped += overflow;
      for (const o of offered) {
        if (!tapMatches(tap.filter, o.record)) continue;
        if (!tap.limiter.take()) {
          tap.dropped += 1;
          dropped += 1;
          continue;
        }
        const headers = tap.filter.headers ? o.headers : undefined;
        out.push(tapRecord(this.node, o.record, o.durationMs, finishedAt, headers, this.redact));
      }
      sent += out.length;
      if (out.length > 0) tap.subscriber.records(out);
    }
    if (sent > 0) this.outcomes?.inc({ outcome: 'sent' }, sent);
    this.countDropped(dropped);
    this.spentUntil = this.allSpentUntil();
  }

  /** When the first tap's bucket holds a token again, if every one is empty now; else 0. */
  private allSpentUntil(): number {
    let until = Number.POSITIVE_INFINITY;
    const now = this.now();
    for (const tap of this.taps.values()) {
      const at = tap.limiter.nextTokenAt();
      if (at <= now) return 0;
      until = Math.min(until, at);
    }
    return Number.isFinite(until) ? until : 0;
  }

  /** Counts records in weft_tap_records_total (for a hub that passes on others' records). */
  protected countOutcome(outcome: 'sent' | 'dropped', n: number): void {
    if (n > 0) this.outcomes?.inc({ outcome }, n);
  }

  private countDropped(dropped: number): void {
    const all = dropped + this.spentDropped;
    this.spentDropped = 0;
    if (all > 0) this.outcomes?.inc({ outcome: 'dropped' }, all);
  }

  private report(tap: OpenTap): void {
    if (tap.dropped === tap.reported) return;
    tap.reported = tap.dropped;
    tap.subscriber.dropped(tap.dropped);
  }

  private changed(): void {
    this.active = this.taps.size > 0;
    this.open_?.set(this.taps.size);
    if (this.active && this.reporter === undefined) {
      this.reporter = setInterval(() => {
        this.countDropped(0);
        for (const tap of this.taps.values()) this.report(tap);
      }, DROPPED_REPORT_MS);
      this.reporter.unref();
    } else if (!this.active && this.reporter !== undefined) {
      clearInterval(this.reporter);
      this.reporter = undefined;
    }
  }
}
