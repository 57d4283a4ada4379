// weft's data path in bare Node: the least a pair of Node processes must do to carry traffic
// the way weft's agents do, with none of weft's own code (no capture, caller lookup, policy,
// balancing, limits, telemetry or logs) and Node's streams as they come (pipe()). The bench
// lab runs one per host, one process each, pinned to the host's core as HAProxy is; set beside
// weft, its figures say how much of weft's cost is Node's own stacks for this design and how
// much is weft's code. Not a bound: where weft drives the sockets better (its tunnel pump), it
// is faster.
//
//   node bench/bare-relay.mjs client CERTDIR SERVER_ADDR TUNNEL_PORT TCP_PORT:TARGET ... HTTP_PORT=TARGET
//   node bench/bare-relay.mjs server CERTDIR LISTEN_ADDR TUNNEL_PORT
//
// The client holds one HTTP/2 session over mutual TLS (TLS 1.3, the bench's certificates) to
// the server, as weft's tunnel pool does between two agents. `PORT:TARGET`: each connection
// accepted on 127.0.0.1:PORT is one CONNECT stream to TARGET (host:port on the server's side),
// piped both ways (weft's opaque path). `PORT=TARGET`: HTTP/1.1 on 127.0.0.1:PORT (node:http),
// each request one HTTP/2 stream, which the server sends to TARGET over a keep-alive pool of
// HTTP/1.1 connections (undici, as weft's receiving agent does) (weft's L7 path). Windows as
// weft's tunnel (src/proxy/tunnel/flow-control.ts). Bench use only: no authorization beyond the
// certificate check, no limits.
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createSecureServer, connect as h2connect } from 'node:http2';
import { createServer as createNetServer, connect as netConnect } from 'node:net';
import { PassThrough } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { Pool } from 'undici';

const MIB = 1024 * 1024;
const SETTINGS = { initialWindowSize: 4 * MIB, maxFrameSize: 64 * 1024, enablePush: false };
const SESSION_WINDOW = 32 * MIB;

/** Headers that describe one hop's connection, never forwarded (RFC 9110 section 7.6.1). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'host',
  'http2-settings',
]);

const [mode, certDir, addr, tunnelPortText, ...mappings] = process.argv.slice(2);
if ((mode !== 'client' && mode !== 'server') || !certDir || !addr || !tunnelPortText) {
  console.error('usage: bare-relay.mjs client|server CERTDIR ADDR TUNNEL_PORT [MAPPINGS...]');
  process.exit(2);
}
const tunnelPort = Number(tunnelPortText);
const tls = (name) => {
  const pem = readFileSync(`${certDir}/${name}.pem`);
  return { key: pem, cert: pem, ca: readFileSync(`${certDir}/ca.pem`), minVersion: 'TLSv1.3' };
};

if (mode === 'server') serve();
else client();

function serve() {
  const pools = new Map();
  const poolFor = (target) => {
    let pool = pools.get(target);
    if (!pool) {
      pool = new Pool(`http://${target}`, { connections: 128, pipelining: 1 });
      pools.set(target, pool);
    }
    return pool;
  };
  const server = createSecureServer({
    ...tls('server'),
    requestCert: true,
    rejectUnauthorized: true,
    settings: SETTINGS,
  });
  server.on('secureConnection', (socket) => socket.setNoDelay(true));
  server.on('session', (session) => session.setLocalWindowSize(SESSION_WINDOW));
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    if (headers[':method'] === 'CONNECT') return relayConnect(stream, headers[':authority']);
    const target = headers['x-bare-target'];
    if (typeof target !== 'string') return stream.respond({ ':status': 400 }, { endStream: true });
    relayRequest(stream, headers, poolFor(target));
  });
  server.listen(tunnelPort, addr);
}

function relayConnect(stream, authority) {
  const [host, port] = (authority ?? '').split(':');
  if (!host || !port) return stream.close(0x1); // PROTOCOL_ERROR: no host:port to go to
  const app = netConnect({ host, port: Number(port), noDelay: true });
  app.on('error', () => stream.close(0x2)); // INTERNAL_ERROR: the app is not there
  app.once('connect', () => {
    stream.respond({ ':status': 200 });
    stream.pipe(app);
    app.pipe(stream);
  });
  stream.once('close', () => app.destroy());
}

function relayRequest(stream, headers, pool) {
  const forwarded = {};
  for (const name in headers) {
    if (name[0] === ':' || name === 'x-bare-target') continue;
    forwarded[name] = headers[name];
  }
  const method = headers[':method'];
  const hasBody = method !== 'GET' && method !== 'HEAD' && !stream.readableEnded;
  pool
    .request({
      method,
      path: headers[':path'],
      headers: forwarded,
      // Not the stream itself: undici destroys a body it has read, and this one answers too.
      body: hasBody ? stream.pipe(new PassThrough()) : undefined,
    })
    .then(
      ({ statusCode, headers: answer, body }) => {
        const out = { ':status': statusCode };
        for (const name in answer) if (!HOP_BY_HOP.has(name)) out[name] = answer[name];
        stream.respond(out);
        body.pipe(stream);
      },
      () => {
        if (!stream.headersSent) stream.respond({ ':status': 502 });
        stream.end();
      },
    );
}

function client() {
  let session;
  const sessionNow = () => {
    if (session && !session.closed && !session.destroyed) return session;
    session = h2connect(`https://${addr}:${tunnelPort}`, {
      settings: SETTINGS,
      createConnection: () => {
        const socket = tlsConnect({
          ...tls('client'),
          host: addr,
          port: tunnelPort,
          servername: 'server.bench',
          ALPNProtocols: ['h2'],
        });
        socket.setNoDelay(true);
        return socket;
      },
    });
    session.on('connect', () => session.setLocalWindowSize(SESSION_WINDOW));
    session.on('error', () => {});
    return session;
  };
  for (const m of mappings) {
    const http = m.includes('=');
    const split = m.indexOf(http ? '=' : ':');
    const listenPort = Number(m.slice(0, split));
    const target = m.slice(split + 1);
    if (http) listenHttp(listenPort, target, sessionNow);
    else listenTcp(listenPort, target, sessionNow);
  }
  sessionNow();
}

function listenTcp(port, target, sessionNow) {
  const server = createNetServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    const stream = sessionNow().request(
      { ':method': 'CONNECT', ':authority': target },
      { endStream: false },
    );
    stream.on('error', () => socket.destroy());
    socket.pipe(stream);
    stream.pipe(socket);
    socket.once('close', () => stream.close());
  });
  server.listen(port, '127.0.0.1');
}

function listenHttp(port, target, sessionNow) {
  const server = createHttpServer({ noDelay: true, keepAliveTimeout: 60_000 }, (req, res) => {
    const headers = {
      ':method': req.method,
      ':path': req.url,
      ':authority': req.headers.host ?? target,
      'x-bare-target': target,
    };
    for (const name in req.headers) if (!HOP_BY_HOP.has(name)) headers[name] = req.headers[name];
    const hasBody = req.headers['content-length'] > 0 || req.headers['transfer-encoding'];
    const stream = sessionNow().request(headers, { endStream: !hasBody });
    if (hasBody) req.pipe(stream);
    stream.on('response', (answer) => {
      const out = {};
      for (const name in answer) if (name[0] !== ':') out[name] = answer[name];
      res.writeHead(answer[':status'], out);
      stream.pipe(res);
    });
    stream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
  });
  server.listen(port, '127.0.0.1');
}
