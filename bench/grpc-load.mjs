// Scenario 9's gRPC endpoints and load client (@grpc/grpc-js), one unary method whose answer
// is the endpoint's name, so the client counts each endpoint's share. Messages are raw bytes
// (no .proto, no encoding cost beyond grpc-js's own framing).
//   grpc-load.mjs server NAME PORT [PORT...]     answers on 0.0.0.0:PORT for every PORT
//   grpc-load.mjs client HOST:PORT SECONDS CONCURRENCY [WARM_S]
// The client opens ONE channel (one HTTP/2 connection) and keeps CONCURRENCY unary calls in
// flight on it: WARM_S seconds unmeasured, then SECONDS measured. It prints one JSON line:
// {calls, errors, seconds, rps, p50Us, p99Us, byEndpoint: {NAME: calls}, firstError}.
import grpc from '@grpc/grpc-js';

const raw = { serialize: (b) => b, deserialize: (b) => b };
const LOAD = {
  call: {
    path: '/weft.bench.Load/Call',
    requestStream: false,
    responseStream: false,
    requestSerialize: raw.serialize,
    requestDeserialize: raw.deserialize,
    responseSerialize: raw.serialize,
    responseDeserialize: raw.deserialize,
  },
};
const [mode, ...args] = process.argv.slice(2);

function serve(name, ports) {
  const answer = Buffer.from(name);
  const server = new grpc.Server();
  server.addService(LOAD, { call: (_call, done) => done(null, answer) });
  for (const port of ports) {
    server.bindAsync(`0.0.0.0:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
      if (err) {
        console.error(`grpc-load: cannot listen on ${port}: ${err.message}`);
        process.exit(1);
      }
      console.log(`grpc-load ${name} listening on ${port}`);
    });
  }
}

async function load(target, seconds, concurrency, warmS) {
  const Client = grpc.makeGenericClientConstructor(LOAD, 'Load');
  const client = new Client(target, grpc.credentials.createInsecure());
  const request = Buffer.from('x');
  const call = () =>
    new Promise((resolve) => {
      client.call(request, { deadline: Date.now() + 5_000 }, (err, res) => resolve({ err, res }));
    });
  let firstError;
  const phase = async (ms, record) => {
    const end = Date.now() + ms;
    const worker = async () => {
      while (Date.now() < end) {
        const t0 = process.hrtime.bigint();
        const { err, res } = await call();
        if (!record) continue;
        if (err) {
          record.errors += 1;
          firstError ??= `${err.code} ${err.details}`;
          // A path that refuses every call must not spin: pause like a client's backoff.
          await new Promise((r) => setTimeout(r, 10));
          continue;
        }
        record.us.push(Number(process.hrtime.bigint() - t0) / 1000);
        const name = res.toString();
        record.byEndpoint[name] = (record.byEndpoint[name] ?? 0) + 1;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  };
  if (warmS > 0) await phase(warmS * 1000, undefined);
  const record = { errors: 0, us: [], byEndpoint: {} };
  const t0 = process.hrtime.bigint();
  await phase(seconds * 1000, record);
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  client.close();
  const us = record.us.sort((a, b) => a - b);
  const pct = (p) => (us.length ? us[Math.min(us.length - 1, Math.floor(us.length * p))] : null);
  console.log(
    JSON.stringify({
      calls: us.length,
      errors: record.errors,
      seconds: elapsed,
      rps: us.length / elapsed,
      p50Us: pct(0.5),
      p99Us: pct(0.99),
      byEndpoint: record.byEndpoint,
      firstError,
    }),
  );
}

if (mode === 'server' && args.length >= 2) {
  serve(args[0], args.slice(1));
} else if (mode === 'client' && args.length >= 3) {
  const [target, seconds, concurrency, warmS = '0'] = args;
  load(target, Number(seconds), Number(concurrency), Number(warmS)).then(
    () => process.exit(0),
    (err) => {
      console.error(`grpc-load: ${err?.stack ?? err}`);
      process.exit(1);
    },
  );
} else {
  console.error(
    'usage: grpc-load.mjs server NAME PORT [PORT...] | client HOST:PORT SECONDS CONCURRENCY [WARM_S]',
  );
  process.exit(2);
}
