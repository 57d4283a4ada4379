// Scenario 10's client: an open loop (GETs sent when due, whatever the answers) at RATE/s,
// starting at the wall-clock time START_AT (ms since the epoch, so that the bench can kill an
// endpoint at a known moment of the run), for WARM_S unmeasured (this process's own start-up:
// its JIT and its first connections) and then SECONDS measured, spread round robin over the
// URLs given (one: a proxy balances; two: the client balances by itself, as an app without a
// mesh does). Prints one JSON line: `started` (when the first measured request went out) and
// one row per measured request:
// [sent at (ms since the epoch), latency to the last byte (ms), status (0: none), what went
// wrong (weft-reason, or the client's error code), who answered (x-served-by)].
//   kill-load.mjs START_AT RATE WARM_S SECONDS URL...
import http from 'node:http';

const [startAt, rate, warmS, seconds, ...urls] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 });
const TIMEOUT_MS = 10_000;

function get(url) {
  const sentAt = Date.now();
  const started = performance.now();
  return new Promise((resolve) => {
    const row = (status, why, by) => [
      sentAt,
      Math.round((performance.now() - started) * 1000) / 1000,
      status,
      why ?? '',
      by ?? '',
    ];
    const req = http.get(url, { agent, timeout: TIMEOUT_MS }, (res) => {
      res.resume();
      const why = res.headers['weft-reason'];
      const by = res.headers['x-served-by'];
      res.on('end', () => resolve(row(res.statusCode, why, by)));
      res.on('error', (err) => resolve(row(0, err.code ?? 'response_error', by)));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })));
    req.on('error', (err) => resolve(row(0, err.code ?? err.message)));
  });
}

const warm = Math.round(Number(rate) * Number(warmS));
const total = warm + Math.round(Number(rate) * Number(seconds));
const gapMs = 1000 / Number(rate);
await new Promise((r) => setTimeout(r, Math.max(0, Number(startAt) - Date.now())));
const t0 = performance.now();
const sent = [];
let started;
await new Promise((resolve) => {
  const tick = () => {
    const due = Math.min(total, Math.floor((performance.now() - t0) / gapMs) + 1);
    while (sent.length < due) {
      if (sent.length === warm) started = Date.now();
      sent.push(get(urls[sent.length % urls.length]));
    }
    if (sent.length >= total) resolve();
    else setTimeout(tick, 1);
  };
  tick();
});
const rows = (await Promise.all(sent)).slice(warm);
process.stdout.write(`${JSON.stringify({ started, rows })}\n`);
agent.destroy();
