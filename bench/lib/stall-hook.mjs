// Loaded into an agent with `--import` (bench/probe.mjs: `restart --import=<this file>`; a
// worker inherits it from its master): where each process's event loop stops. Records, with
// wall-clock times, every garbage collection (kind, pause) and every time a 10 ms timer ran
// more than STALL_MS late (a stall: the loop was busy or the process was not scheduled), and
// appends them as JSON lines to /tmp/weft-stall/<pid>.jsonl once a second. The probe's
// `stalls` command sums them over its last measure. Not for the figures of record: the timer
// wakes each process 100 times a second.
import { appendFileSync, mkdirSync } from 'node:fs';
import { constants, PerformanceObserver, performance } from 'node:perf_hooks';

const STALL_MS = 1;
const EVERY_MS = 10;
const dir = '/tmp/weft-stall';
const role = process.send ? 'worker' : 'master';
const kinds = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};
let pending = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries())
    pending.push({
      t: performance.timeOrigin + e.startTime,
      gc: kinds[e.detail?.kind] ?? String(e.detail?.kind),
      ms: e.duration,
      // A forced collection is one the code asked for (memory-trim.ts's), not V8's own.
      ...(e.detail?.flags & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED ? { forced: true } : {}),
    });
}).observe({ entryTypes: ['gc'] });

let last = performance.now();
setInterval(() => {
  const now = performance.now();
  const late = now - last - EVERY_MS;
  if (late > STALL_MS) pending.push({ t: performance.timeOrigin + last + EVERY_MS, stall: late });
  last = now;
}, EVERY_MS).unref();

setInterval(() => {
  if (pending.length === 0) return;
  const lines = pending.map((p) => JSON.stringify({ pid: process.pid, role, ...p })).join('\n');
  pending = [];
  try {
    mkdirSync(dir, { recursive: true, mode: 0o777 });
    appendFileSync(`${dir}/${process.pid}.jsonl`, `${lines}\n`);
  } catch {}
}, 1000).unref();
