// Gives memory back to the host once a burst of traffic is over. The sockets, TLS and HTTP/2
// state of a burst hold native memory until V8's next full collection, which an idle agent never
// gets (collections are driven by allocation), and glibc keeps what is then freed in its heap.
// Measured on the bench lab after scenario 2's load: an idle agent held 287 MiB; a full
// collection and malloc_trim(0) brought it to 133 MiB. The collection pauses the event loop
// (19-300 ms measured on a worker of the shared bench lab, bench/lib/stall-hook.mjs), so it runs
// only when the agent has been idle for a whole interval, once per idle period, and only if it
// is still idle just before: traffic that starts in the last seconds of an interval leaves its
// utilization under the threshold (1k req/s of L7 traffic is about 30 % of a worker: 2 s of it
// in 30 s is 2 %), and a collection then would stall the first requests of a burst.
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { defaultAddonPath, loadAddon } from '../native/load-addon.js';

export const MEMORY_TRIM_INTERVAL_MS = 30_000;
/** The short window, right after an idle interval, that must be idle too before collecting. */
export const CONFIRM_IDLE_MS = 500;
/** Event-loop utilization below which an interval counts as idle (a busy agent is far above). */
export const IDLE_UTILIZATION = 0.02;

export type TrimDecision =
  | { action: 'confirm' }
  | { action: 'collect-and-trim' }
  | { action: 'wait'; reason: 'busy' | 'already-trimmed' };

/** Which window a utilization covers: the whole interval, or the confirming window after it. */
export type TrimStage = 'interval' | 'confirm';

/**
 * What to do after a window, from its event-loop utilization and whether memory was already given
 * back since the agent was last busy: after an idle interval, watch a short window first
 * (`confirm`); after an idle confirming window, collect and trim.
 */
export function decideTrim(
  utilization: number,
  trimmedSinceBusy: boolean,
  stage: TrimStage,
): TrimDecision {
  if (utilization >= IDLE_UTILIZATION) return { action: 'wait', reason: 'busy' };
  if (trimmedSinceBusy) return { action: 'wait', reason: 'already-trimmed' };
  return stage === 'interval' ? { action: 'confirm' } : { action: 'collect-and-trim' };
}

export interface MemoryTrimOptions {
  /** Releases free C heap memory. Default: the native addon's mallocTrim. */
  trim?: () => unknown;
  /** A full garbage collection. Default: V8's gc(), reached without exposing it to the process. */
  collect?: () => void;
  /** Event-loop utilization (0-1) since the previous call. Default: performance's ELU. */
  utilization?: () => number;
  intervalMs?: number;
  confirmMs?: number;
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

/** Checks every `intervalMs`, then `confirmMs` after an idle interval (the timers never hold the
 * process open); returns stop. */
export function startMemoryTrim(opts: MemoryTrimOptions = {}): () => void {
  const trim = opts.trim ?? nativeTrim();
  if (!trim) return () => {};
  const collect = opts.collect ?? v8Collect();
  const utilization = opts.utilization ?? eventLoopUtilization();
  let trimmedSinceBusy = false;
  let confirming: NodeJS.Timeout | undefined;
  const act = (stage: TrimStage): void => {
    const decision = decideTrim(utilization(), trimmedSinceBusy, stage);
    if (decision.action === 'wait') {
      if (decision.reason === 'busy') trimmedSinceBusy = false;
    } else if (decision.action === 'confirm') {
      confirming = setTimeout(() => {
        confirming = undefined;
        act('confirm');
      }, opts.confirmMs ?? CONFIRM_IDLE_MS);
      confirming.unref();
    } else {
      collect();
      trim();
      trimmedSinceBusy = true;
    }
  };
  const timer = setInterval(() => act('interval'), opts.intervalMs ?? MEMORY_TRIM_INTERVAL_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    clearTimeout(confirming);
  };
}
