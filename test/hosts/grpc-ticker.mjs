// A gRPC server stream for restart tests, without a .proto: `server PORT` answers
// /weft.test.Ticker/Tick with one message (a counter) every 100 ms for as long as the call
// lives; `client HOST:PORT` keeps one such call open and checks that the counter never skips;
// on SIGTERM it cancels the call and prints one JSON line: received, gaps, the error if any.
import * as grpc from '@grpc/grpc-js';

const raw = (b) => b;
const TICKER = {
  tick: {
    path: '/weft.test.Ticker/Tick',
    requestStream: false,
    responseStream: true,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  },
};

const [mode, ...args] = process.argv.slice(2);

if (mode === 'server') {
  const server = new grpc.Server();
  server.addService(TICKER, {
    tick(call) {
      let n = 0;
      const timer = setInterval(() => {
        n += 1;
        call.write(Buffer.from(String(n)));
      }, 100);
      call.on('cancelled', () => clearInterval(timer));
      call.on('error', () => clearInterval(timer));
    },
  });
  server.bindAsync(`0.0.0.0:${args[0]}`, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) throw err;
    console.log('serving');
  });
} else if (mode === 'client') {
  const [target] = args;
  const Client = grpc.makeGenericClientConstructor(TICKER, 'Ticker');
  const client = new Client(target, grpc.credentials.createInsecure());
  const call = client.tick(Buffer.alloc(0));
  let received = 0;
  let last = 0;
  let gaps = 0;
  let error;
  call.on('data', (b) => {
    const n = Number(b.toString());
    if (n !== last + 1) gaps += 1;
    last = n;
    received += 1;
    // One line per second of messages, so the test can see the stream still moving.
    if (received % 10 === 0) console.log(`received ${received}`);
  });
  const report = () => console.log(JSON.stringify({ received, gaps, error: error ?? null }));
  call.on('error', (e) => {
    if (e.code === grpc.status.CANCELLED) return;
    // The stream ended by itself: say so and how, and exit non-zero.
    error = `${e.code} ${e.details}`;
    report();
    process.exitCode = 1;
    client.close();
  });
  process.once('SIGTERM', () => {
    call.cancel();
    setImmediate(() => {
      report();
      client.close();
    });
  });
} else {
  console.error('usage: grpc-ticker.mjs server PORT | client HOST:PORT');
  process.exit(2);
}
