// Steady load for restart tests, run inside a guest: CONCURRENCY loops, each opening a new
// connection to HOST:PORT (an echo service), sending a line, reading it back and closing,
// until SECONDS pass. With HOLD_MS, each connection instead keeps exchanging a line every
// 100 ms for that long (a connection open across a restart must not be cut).
// Prints one JSON line: ok, failed, the longest connection and the first few errors.
import { connect } from 'node:net';

const [host, port, seconds, concurrency = '4', holdMs = '0'] = process.argv.slice(2);
const until = Date.now() + Number(seconds) * 1000;
let ok = 0;
let failed = 0;
let maxMs = 0;
const errors = [];

function once(id) {
  return new Promise((resolve) => {
    const started = Date.now();
    let message = `ping ${id} ${started}\n`;
    let got = '';
    let done = false;
    const finish = (err) => {
      if (done) return;
      done = true;
      socket.destroy();
      if (err) {
        failed += 1;
        if (errors.length < 5) errors.push(`${new Date().toISOString()} ${err}`);
      } else {
        ok += 1;
        maxMs = Math.max(maxMs, Date.now() - started);
      }
      resolve();
    };
    const socket = connect({ host, port: Number(port) });
    socket.setTimeout(30_000, () => finish('timeout'));
    socket.on('error', (e) => finish(e.code ?? e.message));
    socket.on('connect', () => socket.write(message));
    socket.on('data', (d) => {
      got += d;
      if (got !== message) return;
      if (Date.now() - started >= Number(holdMs)) return finish();
      setTimeout(() => {
        got = '';
        message = `ping ${id} ${Date.now()}\n`;
        socket.write(message);
      }, 100);
    });
    socket.on('close', () =>
      finish(got === message ? undefined : `closed after ${got.length} bytes`),
    );
  });
}

async function loop(id) {
  while (Date.now() < until) {
    await once(id);
    await new Promise((r) => setTimeout(r, 20));
  }
}

await Promise.all(Array.from({ length: Number(concurrency) }, (_, i) => loop(i)));
console.log(JSON.stringify({ ok, failed, maxMs, errors }));
