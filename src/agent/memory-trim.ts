// Gives memory back to the host once a burst of traffic is over. The sockets, TLS and HTTP/2
// state of a burst hold native memory until V8's next full collection, which an idle agent never
// gets (collections are driven by allocation), and glibc keeps what is then freed in its heap.
// Measured on the bench lab after scenario 2's load: an idle agent held 287 MiB; a full
// collection and malloc_trim(0) brought it to 133 MiB. The collection pauses the event loop for
// milliseconds, so it runs only when the agent has been idle for a whole interval, and once per
// idle period.
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { defaultAddonPath, loadAddon } from '../native/load-addon.js';

export const MEMORY_TRIM_INTERVAL_MS = 30_000;
/** Event-loop utilization below which an interval counts as idle (a busy agent is far above). */
export const IDLE_UTILIZATION = 0.02;

export type TrimDecision =
  | { action: 'collect-and-trim' }
  | { action: 'wait'; reason: 'busy' | 'already-trimmed' };

/**
 * Whether to collect and trim now, from the last interval's event-loop utilization and whether
 * memory was already given back since the agent was last busy.
 */
export function decideTrim(utilization: number, trimmedSinceBusy: boolean): TrimDecision {
  if (utilization >= IDLE_UTILIZATION) return { action: 'wait', reason: 'busy' };
  if (trimmedSinceBusy) return { action: 'wait', reason: 'already-trimmed' };
  return { action: 'collect-and-trim' };
}

export interface MemoryTrimOptions {
  /** Releases free C heap memory. Default: the native addon's mallocTrim. */
  trim?: () => unknown;
  /** A full garbage collection. Default: V8's gc(), reached without exposing it to the process. */
  collect?: () => void;
  /** Event-loop utilization (0-1) since the previous call. Default: performance's ELU. */
  utilization?: () => number;
  intervalMs?: number;
}

/** The addon's malloc_trim, or undefined where the addon (or this build of it) lacks it. */
function nativeTrim(): (() => unknown) | undefined {
  try {
    const addon = loadAddon(defaultAddonPath);
    return addon.mallocTrim ? () => addon.mallocTrim?.() : undefined;
  } catch {
    return undefined;
  }
}

/**
 * V8's gc() without --expose-gc on the command line: the flag set at run time exposes it in new
 * contexts only, so the process's own global scope (and the apps' view of it) stays unchanged.
 */
function v8Collect(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

function eventLoopUtilization(): () => number {
  let last = performance.eventLoopUtilization();
  return () => {
    const now = performance.eventLoopUtilization();
    const { utilization } = performance.eventLoopUtilization(now, last);
    last = now;
    return utilization;
  };
}

/** Checks every `intervalMs` (the timer never holds the process open); returns stop. */
export function startMemoryTrim(opts: MemoryTrimOptions = {}): () => void {
  const trim = opts.trim ?? nativeTrim();
  if (!trim) return () => {};
  const collect = opts.collect ?? v8Collect();
  const utilization = opts.utilization ?? eventLoopUtilization();
  let trimmedSinceBusy = false;
  const timer = setInterval(() => {
    const decision = decideTrim(utilization(), trimmedSinceBusy);
    if (decision.action === 'wait') {
      if (decision.reason === 'busy') trimmedSinceBusy = false;
      return;
    }
    collect();
    trim();
    trimmedSinceBusy = true;
  }, opts.intervalMs ?? MEMORY_TRIM_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
