// The demo's HTTP service: answers every request with the name of the lab host it runs on.
// Usage: echo-server.mjs PORT
import { createServer } from 'node:http';

const host = process.env.WEFT_LAB_HOST ?? 'unknown';
const port = Number(process.argv[2] ?? 8080);
createServer((req, res) => {
  res.setHeader('content-type', 'text/plain');
  res.end(`hello from ${host}: ${req.method} ${req.url}\n`);
}).listen(port, () => console.log(`echo listening on ${port}`));
