// The timers of one outbound request that outlive a single try: its idle time (no byte either
// way, request body or response, for idleMs) and, once the response head has been handed to
// the client, what is left of its deadline. Before the head, each try is raced against its own
// limit (outbound-exchange.ts) and an idle expiry cancels the try in progress; after it, an
// expiry cuts the response body (the client sees a reset, never a truncated body taken for
// whole). Made only for requests that have a deadline or an idle time.
import type { Readable } from 'node:stream';
import type { TimeoutKind } from '../resilience/resilience.js';

export class RequestTimers {
  private lastActivity = performance.now();
  private idleTimer: NodeJS.Timeout | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private onTry: ((kind: TimeoutKind) => void) | undefined;
  private body: Readable | undefined;
  private done = false;

  constructor(
    /** On performance.now()'s clock. */
    private readonly deadlineAt: number | undefined,
    private readonly idleMs: number | undefined,
    private readonly onExpired: (kind: TimeoutKind, body: Readable | undefined) => void,
  ) {
    if (idleMs !== undefined) this.armIdle(idleMs);
  }

  /** Bytes moved (a request body chunk): the idle time starts again. */
  readonly touch = (): void => {
    this.lastActivity = performance.now();
  };

  /** The try in progress is told of an idle expiry (undefined: none in progress). */
  watch(fire: ((kind: TimeoutKind) => void) | undefined): void {
    this.onTry = fire;
  }

  /** The response head goes to the client: from now on an expiry cuts this body. */
  afterHead(body: Readable): void {
    if (this.done) return;
    this.body = body;
    this.touch();
    if (this.idleMs !== undefined) {
      // Paused first, a 'data' listener only watches: the reader's pipe starts the flow.
      body.pause();
      body.on('data', this.touch);
    }
    if (this.deadlineAt !== undefined) {
      const left = this.deadlineAt - performance.now();
      this.deadlineTimer = setTimeout(() => this.expire('request_timeout'), Math.max(left, 0));
    }
  }

  /** The request is over (delivered, abandoned or answered by the agent). */
  clear(): void {
    this.done = true;
    clearTimeout(this.idleTimer);
    clearTimeout(this.deadlineTimer);
    this.body?.off('data', this.touch);
    this.onTry = undefined;
  }

  private armIdle(ms: number): void {
    this.idleTimer = setTimeout(() => {
      const quiet = performance.now() - this.lastActivity;
      if (quiet >= this.idleMs! - 1) this.expire('idle_timeout');
      else this.armIdle(this.idleMs! - quiet);
    }, ms);
  }

  private expire(kind: TimeoutKind): void {
    if (this.done) return;
    if (this.body !== undefined) {
      this.clear();
      this.onExpired(kind, this.body);
    } else if (this.onTry !== undefined) {
      this.onTry(kind);
    } else if (kind === 'idle_timeout') {
      // Between tries (a backoff): the next try's own limits apply; keep watching.
      this.armIdle(this.idleMs!);
    }
  }
}
