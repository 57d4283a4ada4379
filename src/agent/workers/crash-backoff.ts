// When the master replaces a worker that died: at once the first time (a worker's connections
// are lost with it; the others' are not, and its listening sockets queue new ones meanwhile),
// later after a delay that doubles with each crash within the window, so a worker that cannot
// start (bad code on disk, a config the data plane refuses) does not spin the host's CPUs.

export interface CrashBackoffPolicy {
  /** Crashes older than this are forgotten. */
  windowMs: number;
  /** The delay after the second crash within the window; doubled for each one after. */
  baseMs: number;
  maxMs: number;
}

export const defaultCrashBackoff: CrashBackoffPolicy = {
  windowMs: 30_000,
  baseMs: 250,
  maxMs: 10_000,
};

/**
 * The delay before replacing a worker, given the times of the crashes so far (this one
 * included, oldest first) and now. Returns the crashes still within the window, to keep.
 */
export function restartDelay(
  crashes: readonly number[],
  now: number,
  policy: CrashBackoffPolicy = defaultCrashBackoff,
): { delayMs: number; recent: number[] } {
  const recent = crashes.filter((t) => now - t < policy.windowMs);
  if (recent.length <= 1) return { delayMs: 0, recent };
  const delayMs = Math.min(policy.maxMs, policy.baseMs * 2 ** (recent.length - 2));
  return { delayMs, recent };
}
