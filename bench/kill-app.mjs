// Scenario 10's app: one process per lab host answering every GET with its host's name (and
// `x-served-by`), on weft's port (a `bench-kill` workload) and on a plain port (direct and
// HAProxy), so that one kill -9 takes both down at once. GET /health answers 200 (HAProxy's
// check).
//   kill-app.mjs WEFT_PORT PLAIN_PORT
import { createServer } from 'node:http';

const host = process.env.WEFT_LAB_HOST ?? 'unknown';
const [weftPort, plainPort, delayMs] = process.argv.slice(2).map(Number);
const reply = (req, res) => {
  res.setHeader('content-type', 'text/plain');
  res.setHeader('x-served-by', host);
  res.end(req.url === '/health' ? 'ok\n' : `${host}\n`);
};
const answer = (req, res) => {
  req.resume();
  if (delayMs > 0 && req.url !== '/health') setTimeout(reply, delayMs, req, res);
  else reply(req, res);
};
for (const port of [weftPort, plainPort]) {
  createServer({ keepAliveTimeout: 60_000 }, answer).listen(port);
}
