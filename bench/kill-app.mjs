// Scenario 10's app: one process per lab host answering every GET with its host's name (and
// `x-served-by`), on weft's port (a `bench-kill` workload) and on a plain port (direct and
// HAProxy), so that one kill -9 takes both down at once. GET /health answers 200 (HAProxy's
// check).
//   kill-app.mjs WEFT_PORT PLAIN_PORT
import { createServer } from 'node:http';

const host = process.env.WEFT_LAB_HOST ?? 'unknown';
const answer = (req, res) => {
  req.resume();
  res.setHeader('content-type', 'text/plain');
  res.setHeader('x-served-by', host);
  res.end(req.url === '/health' ? 'ok\n' : `${host}\n`);
};
for (const port of process.argv.slice(2).map(Number)) {
  createServer({ keepAliveTimeout: 60_000 }, answer).listen(port);
}
