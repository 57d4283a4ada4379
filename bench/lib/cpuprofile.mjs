// Where an agent's CPU went, from a V8 .cpuprofile (what node --cpu-prof writes): self time
// per function, the JS callers of the heaviest native functions, and inclusive time of weft's
// own functions, optionally only within a window of the profile (to leave start-up out).
// CLI: node bench/lib/cpuprofile.mjs FILE [FROM_S] [TO_S] (negative: seconds before the end)
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const shortUrl = (url) =>
  url.replace(/^file:\/\//, '').replace(/^.*\/(dist|node_modules)\//, '$1/');

function frameKey(node) {
  const f = node.callFrame;
  const where = f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'}\t${where}`;
}

const META = new Set(['(idle)', '(program)', '(garbage collector)', '(root)']);

/**
 * Self time per function; `fromMs`/`toMs` (from the profile's start) restrict the samples, or
 * `fromUs`/`toUs` on the monotonic clock (`process.hrtime`'s, which V8 stamps profiles with),
 * for a window shared by processes that started at different times.
 * Returns { totalMs, busyMs, top, callers, weft }.
 */
export function analyzeProfile(file, { top = 25, fromMs = 0, toMs = Infinity, fromUs, toUs } = {}) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  if (fromUs !== undefined) fromMs = (fromUs - profile.startTime) / 1000;
  if (toUs !== undefined) toMs = (toUs - profile.startTime) / 1000;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of profile.nodes) for (const c of node.children ?? []) parent.set(c, node.id);
  const self = new Map();
  const inclusive = new Map();
  const callers = new Map(); // native function -> nearest JS caller -> ms
  const deltas = profile.timeDeltas ?? [];
  // A negative bound counts back from the end of the profile.
  const span = deltas.reduce((a, b) => a + b, 0) / 1000;
  if (fromMs < 0) fromMs += span;
  if (toMs < 0) toMs += span;
  let t = 0;
  let total = 0;
  let busy = 0;
  profile.samples.forEach((id, i) => {
    t += (deltas[i] ?? 0) / 1000;
    if (t < fromMs || t > toMs) return;
    const dt = (deltas[i + 1] ?? deltas[i] ?? 0) / 1000;
    const node = byId.get(id);
    const key = frameKey(node);
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
    if (node.callFrame.functionName !== '(idle)') busy += dt;
    // Inclusive time: every distinct frame on the stack.
    const seen = new Set();
    let caller;
    for (let n = node; n; n = byId.get(parent.get(n.id))) {
      const k = frameKey(n);
      if (!seen.has(k)) {
        seen.add(k);
        inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
      }
      if (caller === undefined && n !== node && n.callFrame.url) caller = k;
    }
    if (!node.callFrame.url && !META.has(node.callFrame.functionName)) {
      const m = callers.get(key) ?? new Map();
      m.set(caller ?? '(none)', (m.get(caller ?? '(none)') ?? 0) + dt);
      callers.set(key, m);
    }
  });
  const row = ([k, ms]) => {
    const [name, where] = k.split('\t');
    return { name, where, ms, shareOfBusy: name === '(idle)' ? null : ms / busy };
  };
  const topSelf = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  return {
    totalMs: total,
    busyMs: busy,
    top: topSelf.map(row),
    callers: topSelf
      .filter(([k]) => callers.has(k))
      .slice(0, 5)
      .map(([k]) => ({
        native: k.split('\t')[0],
        from: [...callers.get(k).entries()]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 5)
          .map(row),
      })),
    weft: [...inclusive.entries()]
      .filter(([k]) => k.includes('\tdist/'))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(row),
  };
}

/** Kept for callers that want only the self-time list. */
export const topSelfTime = (file, n = 15, window = {}) =>
  analyzeProfile(file, { top: n, ...window });

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file, from, to] = process.argv.slice(2);
  const r = analyzeProfile(file, {
    top: 30,
    fromMs: from ? Number(from) * 1000 : 0,
    toMs: to ? Number(to) * 1000 : Infinity,
  });
  const pct = (x) => (x == null ? '    -' : `${(x * 100).toFixed(1)}%`.padStart(6));
  console.log(`${(r.busyMs / 1000).toFixed(2)} s busy of ${(r.totalMs / 1000).toFixed(2)} s`);
  console.log('self time:');
  for (const t of r.top)
    console.log(`${t.ms.toFixed(0).padStart(7)} ms ${pct(t.shareOfBusy)}  ${t.name}  ${t.where}`);
  console.log('callers of the heaviest native functions:');
  for (const c of r.callers) {
    console.log(`  ${c.native}`);
    for (const t of c.from)
      console.log(`  ${t.ms.toFixed(0).padStart(7)} ms  <- ${t.name}  ${t.where}`);
  }
  console.log("inclusive time of weft's functions:");
  for (const t of r.weft)
    console.log(`${t.ms.toFixed(0).padStart(7)} ms ${pct(t.shareOfBusy)}  ${t.name}  ${t.where}`);
}
