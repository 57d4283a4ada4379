// The one way tests wait for something: poll a condition until it holds, within a deadline,
// and fail naming what was awaited. Tests wait on events this way, never on the clock.

export interface WaitOptions {
  /** The deadline (default 10 s). */
  timeoutMs?: number;
  /** What to add to the timeout's message: the state that was seen (last log lines, ...). */
  detail?: () => string;
}

/** A probe's "not yet": anything else is the awaited value. */
type NotYet = undefined | null | false;

// The first checks come quickly (most conditions hold within milliseconds); a long wait backs
// off so that a probe that runs a process (curl in a lab host) does not hog the machine.
const FIRST_INTERVAL_MS = 10;
const MAX_INTERVAL_MS = 250;

// Taken before any test fakes the clock (vi.useFakeTimers): a wait keeps real time even then.
const realSetTimeout = globalThis.setTimeout;
const realNow = Date.now;

/**
 * Resolves with the first value `probe` returns that is not undefined, null or false; rejects
 * with "timed out after N ms waiting for WHAT" when the deadline passes first. A probe that
 * throws fails the wait at once (a dead process, a broken fixture: nothing to wait for).
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | NotYet | Promise<T | NotYet>,
  options: number | WaitOptions = {},
): Promise<T> {
  const { timeoutMs = 10_000, detail } =
    typeof options === 'number' ? { timeoutMs: options } : options;
  const deadline = realNow() + timeoutMs;
  let interval = FIRST_INTERVAL_MS;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== null && value !== false) return value as T;
    if (realNow() >= deadline) {
      const seen = detail === undefined ? '' : `; ${detail()}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${seen}`);
    }
    await new Promise((resolve) => realSetTimeout(resolve, interval));
    interval = Math.min(interval * 2, MAX_INTERVAL_MS);
  }
}
