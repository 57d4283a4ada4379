// Loaded into an agent with `--import` (bench/probe.mjs: `restart --import=<this file>`; the
// master's workers inherit it): every 2 s each process (master and workers) writes its V8 heap
// (used / total), external and array-buffer bytes and the count of modules it loaded to
// /tmp/weft-heap/<pid>.json, which the probe's `rss` shows beside the process's RSS and PSS.
import { mkdirSync, writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { getHeapStatistics } from 'node:v8';

let modules = 0;
registerHooks({
  load(url, context, next) {
    modules += 1;
    return next(url, context);
  },
});
const dir = '/tmp/weft-heap';
setInterval(() => {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o777 });
    const h = getHeapStatistics();
    const m = process.memoryUsage();
    writeFileSync(
      `${dir}/${process.pid}.json`,
      JSON.stringify({
        heapUsed: h.used_heap_size,
        heapTotal: h.total_heap_size,
        external: m.external,
        arrayBuffers: m.arrayBuffers,
        modules,
      }),
    );
  } catch {}
}, 2000).unref();
