// The demo's opaque TCP service: speaks first (like SMTP or MySQL), then echoes lines.
// Usage: banner-server.mjs PORT
import { createServer } from 'node:net';

const host = process.env.WEFT_LAB_HOST ?? 'unknown';
const port = Number(process.argv[2] ?? 7000);
createServer((socket) => {
  socket.on('error', () => {});
  socket.write(`220 banner on ${host} ready\n`);
  socket.pipe(socket);
}).listen(port, () => console.log(`banner listening on ${port}`));
