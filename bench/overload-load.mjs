// The overload scenario's client: an open loop (requests sent when due, whatever the answers)
// of HTTP/1.1 GETs, first at WARM_RATE for WARM_S (unmeasured: the agent measures the app's
// unloaded latency then), then at RATE for SECONDS. Prints one JSON line: requests sent, the
// app's 200s, the agent's sheds (503 weft-reason: overloaded), other failures, goodput (200s a
// second, over the time from the first request to the last answer: a queue that answers late
// does not count as throughput during the load) and the p50/p99 of the 200s (ms, to the
// response's last byte).
//   overload-load.mjs URL RATE SECONDS WARM_RATE WARM_S
import http from 'node:http';

const [url, rate, seconds, warmRate, warmS] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 });

function get() {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = http.get(url, { agent, timeout: 30_000 }, (res) => {
      res.resume();
      res.on('end', () =>
        resolve({
          status: res.statusCode,
          reason: res.headers['weft-reason'],
          ms: performance.now() - started,
          end: performance.now(),
        }),
      );
      res.on('error', () => resolve({ status: 0 }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0 }));
  });
}

async function openLoop(perSecond, durationS) {
  const total = Math.round(perSecond * durationS);
  const gapMs = 1000 / perSecond;
  const sent = [];
  const t0 = performance.now();
  await new Promise((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor((performance.now() - t0) / gapMs) + 1);
      while (sent.length < due) sent.push(get());
      if (sent.length >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  return Promise.all(sent);
}

const pct = (sorted, p) =>
  sorted.length === 0
    ? null
    : sorted[Math.min(sorted.length, Math.ceil((p / 100) * sorted.length)) - 1];

await openLoop(Number(warmRate), Number(warmS));
const t0 = performance.now();
const replies = await openLoop(Number(rate), Number(seconds));
const lastEnd = Math.max(t0, ...replies.map((r) => r.end ?? 0));
const ok = replies.filter((r) => r.status === 200);
const shed = replies.filter((r) => r.status === 503 && r.reason === 'overloaded');
const latencies = ok.map((r) => r.ms).sort((a, b) => a - b);
process.stdout.write(
  `${JSON.stringify({
    sent: replies.length,
    ok: ok.length,
    shed: shed.length,
    errors: replies.length - ok.length - shed.length,
    goodput: ok.length / Math.max(Number(seconds), (lastEnd - t0) / 1000),
    p50: pct(latencies, 50),
    p99: pct(latencies, 99),
  })}\n`,
);
agent.destroy();
