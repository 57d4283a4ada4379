// The sending side of the tunnel on loopback with real TLS: bytes and half-close through a
// CONNECT stream, a 100 MB transfer, pooling under 200 concurrent streams, and what happens
// when the peer agent dies, goes silent or the session sits idle.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isWeftError } from '../../src/errors.js';
import {
  type SpliceResult,
  splice,
  type TunnelAccessRecord,
  type TunnelPool,
  type TunnelServer,
  type TunnelStream,
} from '../../src/proxy/tunnel/index.js';
import { issueLeaf } from '../helpers/test-pki.js';
import {
  echoTarget,
  hashAll,
  listenTarget,
  type MeshPki,
  meshPki,
  movableAddress,
  NODE_B,
  newPool,
  readAll,
  source,
  startServer,
  type Target,
} from './tunnel-fixture.js';

let pki: MeshPki;
beforeAll(async () => {
  pki = await meshPki();
});

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function setup(
  serverOverrides: Parameters<typeof startServer>[1] = {},
  poolOverrides: Parameters<typeof newPool>[1] = {},
  target?: Target,
): Promise<{ server: TunnelServer; pool: TunnelPool; target: Target }> {
  const t = target ?? (await echoTarget('bye'));
  cleanups.push(() => t.close());
  const server = await startServer(pki, serverOverrides);
  cleanups.push(() => server.destroy());
  const pool = newPool(pki, poolOverrides);
  cleanups.push(() => pool.destroy());
  return { server, pool, target: t };
}

function openTo(pool: TunnelPool, server: TunnelServer, port: number): Promise<TunnelStream> {
  return pool.open({
    source: source(pki.client),
    peer: { address: '127.0.0.1', port: server.port },
    target: { address: '127.0.0.1', port },
  });
}

describe('a CONNECT stream through the pool', () => {
  it('carries bytes exactly both ways and keeps half-close', async () => {
    const { server, pool, target } = await setup();
    const stream = await openTo(pool, server, target.port);
    const payload = randomBytes(300_000);
    stream.write(payload.subarray(0, 1000));
    stream.end(payload.subarray(1000));
    // The echo target answers 'bye' only after it sees our FIN, then closes its side.
    const got = await readAll(stream);
    expect(got.length).toBe(payload.length + 3);
    expect(got.subarray(0, payload.length).equals(payload)).toBe(true);
    expect(got.subarray(payload.length).toString()).toBe('bye');
  });

  it('reaches an IPv6 target, over a tunnel server on IPv6', async () => {
    const v6 = createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('data', (c) => socket.write(c));
      socket.on('end', () => socket.end('six'));
    });
    await new Promise<void>((resolve) => v6.listen(0, '::1', resolve));
    cleanups.push(() => new Promise((resolve) => v6.close(resolve)));
    const records: TunnelAccessRecord[] = [];
    const { pool } = await setup();
    const server = await startServer(pki, { host: '::1', onAccess: (r) => records.push(r) });
    cleanups.push(() => server.destroy());
    const port = (v6.address() as { port: number }).port;
    const stream = await pool.open({
      source: source(pki.client),
      peer: { address: '::1', port: server.port },
      target: { address: '::1', port },
    });
    stream.end('hello ');
    expect((await readAll(stream)).toString()).toBe('hello six');
    await expect.poll(() => records[0]?.authority).toBe(`[::1]:${port}`);
  });

  it('delivers the target FIN first while the client keeps sending (server speaks first)', async () => {
    // A banner server: greets, closes its write side, then reports what it read.
    let readByTarget = Buffer.alloc(0);
    const target = await listenTarget((socket) => {
      socket.on('error', () => {});
      socket.end('220 banner\r\n');
      socket.on('data', (c: Buffer) => {
        readByTarget = Buffer.concat([readByTarget, c]);
      });
    });
    const { server, pool } = await setup({}, {}, target);
    const stream = await openTo(pool, server, target.port);
    const got = await readAll(stream); // ends on the target's FIN
    expect(got.toString()).toBe('220 banner\r\n');
    stream.end('QUIT\r\n'); // the other direction is still open
    await new Promise((resolve) => stream.once('close', resolve));
    await expect.poll(() => readByTarget.toString()).toBe('QUIT\r\n');
  });

  it('moves 100 MB byte-exact, hashed at both ends', { timeout: 120_000 }, async () => {
    const size = 100 * 1024 * 1024;
    let received: Promise<{ sha256: string; bytes: number }> | undefined;
    const sink = await listenTarget((socket) => {
      received = hashAll(socket);
      void received.then(({ bytes }) => socket.end(String(bytes)));
    });
    const { server, pool } = await setup({}, {}, sink);
    const stream = await openTo(pool, server, sink.port);
    const sent = createHash('sha256');
    const block = randomBytes(1024 * 1024);
    let left = size;
    let reply = '';
    stream.on('data', (c: Buffer) => {
      reply += c.toString();
    });
    await new Promise<void>((resolve, reject) => {
      stream.once('error', reject);
      const pump = (): void => {
        while (left > 0) {
          // Vary each block so that a reordered or repeated block would change the hash.
          block.writeUInt32BE(left, 0);
          const chunk = Buffer.from(block);
          sent.update(chunk);
          left -= chunk.length;
          if (!stream.write(chunk)) {
            stream.once('drain', pump);
            return;
          }
        }
        stream.end();
        stream.once('end', resolve);
      };
      pump();
    });
    const atTarget = await received!;
    expect(atTarget.bytes).toBe(size);
    expect(atTarget.sha256).toBe(sent.digest('hex'));
    expect(reply).toBe(String(size));
  });
});

describe('an app connection spliced onto a tunnel stream (the outbound wiring)', () => {
  /** A stand-in for the outbound capture: each accepted socket rides one pooled stream. */
  async function outbound(pool: TunnelPool, server: TunnelServer, targetPort: number) {
    const results: SpliceResult[] = [];
    const listener = await listenTarget((app) => {
      app.pause();
      void openTo(pool, server, targetPort).then(
        (stream) => splice(stream, app, (r) => results.push(r)),
        () => app.destroy(),
      );
    });
    cleanups.push(() => listener.close());
    return { port: listener.port, results };
  }

  function appConnect(port: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const s = netConnect({ host: '127.0.0.1', port, allowHalfOpen: true });
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
  }

  it('carries bytes and half-close end to end', async () => {
    const { server, pool, target } = await setup();
    const out = await outbound(pool, server, target.port);
    const app = await appConnect(out.port);
    const payload = randomBytes(2 * 1024 * 1024);
    app.end(payload);
    const got = await readAll(app);
    expect(got.subarray(0, payload.length).equals(payload)).toBe(true);
    expect(got.subarray(payload.length).toString()).toBe('bye');
    await expect.poll(() => out.results).toEqual([{ reason: 'done' }]);
  });

  it('holds at most a fixed amount of an upload the target does not read, then delivers it all', {
    timeout: 120_000,
  }, async () => {
    // The app sends far more than every window and socket buffer on the way can hold while the
    // target reads nothing: the sending side must pause the app, not buffer the rest.
    const size = 64 * 1024 * 1024;
    let target: Socket | undefined;
    const sink = await listenTarget((socket) => {
      socket.pause();
      target = socket;
    });
    const { server, pool } = await setup({}, {}, sink);
    let maxQueued = 0;
    let pausedAt = 0;
    const listener = await listenTarget((app) => {
      app.pause();
      void openTo(pool, server, sink.port).then((stream) => {
        splice(stream, app, () => {});
        // After splice's own listener: what waits in the stream once this read is handed over.
        app.on('data', () => {
          maxQueued = Math.max(maxQueued, stream.writableLength);
          if (app.isPaused() && pausedAt === 0) pausedAt = app.bytesRead;
        });
      });
    });
    cleanups.push(() => listener.close());
    const app = await appConnect(listener.port);
    const payload = randomBytes(size);
    const sent = createHash('sha256').update(payload).digest('hex');
    app.end(payload);
    await expect.poll(() => pausedAt, { timeout: 60_000 }).toBeGreaterThan(0);
    const received = hashAll(target!);
    target!.resume();
    const got = await received;
    expect(got.bytes).toBe(size);
    expect(got.sha256).toBe(sent);
    // The cap of splice.ts (256 KiB) plus one socket read (64 KiB).
    expect(maxQueued).toBeLessThanOrEqual(256 * 1024 + 64 * 1024);
    expect(pausedAt).toBeLessThan(size);
  });

  it('turns a reset by the target into a reset of the app connection', async () => {
    const rude = await listenTarget((socket) => {
      socket.once('data', () => socket.resetAndDestroy());
    });
    const records: TunnelAccessRecord[] = [];
    const { server, pool } = await setup({ onAccess: (r) => records.push(r) }, {}, rude);
    const out = await outbound(pool, server, rude.port);
    const app = await appConnect(out.port);
    const seen: string[] = [];
    app.on('end', () => seen.push('end'));
    app.on('error', (err: NodeJS.ErrnoException) => seen.push(`error ${err.code}`));
    app.write('hello');
    app.resume(); // a reset is noticed by a reading socket
    await expect.poll(() => seen.at(-1)).toBe('error ECONNRESET');
    expect(seen).not.toContain('end'); // no clean FIN before the reset
    await expect.poll(() => out.results[0]?.reason).toBe('stream_reset');
    expect(records[0]).toMatchObject({ status: 200, reason: 'upstream_reset', bytesToTarget: 5 });
  });
  it('turns an app that aborts mid-upload into a reset at the target, never a clean EOF', async () => {
    const seen: string[] = [];
    const target = await listenTarget((socket) => {
      socket.on('data', () => seen.push('data'));
      socket.on('end', () => seen.push('end'));
      socket.on('error', (err: NodeJS.ErrnoException) => seen.push(`error ${err.code}`));
    });
    const { server, pool } = await setup({}, {}, target);
    const out = await outbound(pool, server, target.port);
    const app = await appConnect(out.port);
    app.write(randomBytes(64 * 1024));
    await expect.poll(() => seen.includes('data')).toBe(true);
    app.resetAndDestroy(); // the app crashed: its kernel sends RST
    await expect.poll(() => seen.at(-1)).toBe('error ECONNRESET');
    expect(seen).not.toContain('end');
  });
});

describe('pooling', () => {
  async function roundTrips(pool: TunnelPool, server: TunnelServer, port: number, n: number) {
    const results = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const stream = await openTo(pool, server, port);
        stream.end(`stream ${i}`);
        return (await readAll(stream)).toString();
      }),
    );
    return results;
  }

  it('runs 200 concurrent streams over one session with one handshake', async () => {
    const { server, pool, target } = await setup();
    const results = await roundTrips(pool, server, target.port, 200);
    expect(results).toEqual(Array.from({ length: 200 }, (_, i) => `stream ${i}bye`));
    expect(pool.stats()).toMatchObject({ sessions: 1, handshakesTotal: 1, streamsTotal: 200 });
    expect(server.stats()).toMatchObject({ sessionsTotal: 1, streamsTotal: 200 });
    // Steady traffic afterwards makes no new handshake either.
    await roundTrips(pool, server, target.port, 20);
    expect(pool.stats().handshakesTotal).toBe(1);
  });

  it('opens more sessions when the peer caps concurrent streams, and only as many as needed', async () => {
    const { server, pool, target } = await setup({ maxConcurrentStreams: 50 });
    const results = await roundTrips(pool, server, target.port, 200);
    expect(results).toHaveLength(200);
    const { handshakesTotal } = pool.stats();
    expect(handshakesTotal).toBeGreaterThanOrEqual(4);
    expect(handshakesTotal).toBeLessThanOrEqual(5);
    expect(server.stats().streamsByStatus).toEqual({ '200': 200 });
  });

  it('keeps separate sessions per source identity', async () => {
    const other = await issueLeaf(pki.ca, 'spiffe://weft.local/svc/billing');
    const seen: string[] = [];
    const { server, pool, target } = await setup({
      authorize: ({ peer }) => {
        seen.push(peer.spiffeId);
        return { allow: true };
      },
    });
    for (const leaf of [pki.client, other, pki.client]) {
      const stream = await pool.open({
        source: source(leaf),
        peer: { address: '127.0.0.1', port: server.port },
        target: { address: '127.0.0.1', port: target.port },
      });
      stream.end();
      await readAll(stream);
    }
    expect(seen).toEqual([pki.client.spiffeId, other.spiffeId, pki.client.spiffeId]);
    expect(pool.stats()).toMatchObject({ sessions: 2, handshakesTotal: 2 });
  });

  it('closes a session left idle, and the next open makes a new one', async () => {
    const { server, pool, target } = await setup({}, { idleTimeoutMs: 200 });
    await roundTrips(pool, server, target.port, 1);
    expect(pool.stats().sessions).toBe(1);
    await expect.poll(() => pool.stats().sessions, { timeout: 3_000 }).toBe(0);
    await expect.poll(() => server.stats().sessionsActive, { timeout: 3_000 }).toBe(0);
    await roundTrips(pool, server, target.port, 1);
    expect(pool.stats()).toMatchObject({ sessions: 1, handshakesTotal: 2 });
  });
});

describe('when an address changes hands (a rebuilt host)', () => {
  const NODE_C = 'spiffe://weft.local/node/node-c';

  /** node-b's tunnel server behind an address, node-c's ready to take it over. */
  async function handover() {
    const target = await echoTarget();
    cleanups.push(() => target.close());
    const old = await startServer(pki);
    cleanups.push(() => old.destroy());
    const leaf = await issueLeaf(pki.ca, NODE_C);
    const rebuilt = await startServer(pki, { identity: { key: leaf.keyPem, cert: leaf.certPem } });
    cleanups.push(() => rebuilt.destroy());
    const address = await movableAddress(old.port);
    cleanups.push(() => address.close());
    const pool = newPool(pki);
    cleanups.push(() => pool.destroy());
    /** One round trip to the target, through whichever host the address leads to. */
    const call = async (expectedSpiffeId: string, text: string) => {
      const stream = await pool.open({
        source: source(pki.client),
        peer: { address: '127.0.0.1', port: address.port, expectedSpiffeId },
        target: { address: '127.0.0.1', port: target.port },
      });
      stream.end(text);
      return (await readAll(stream)).toString();
    };
    return { old, rebuilt, address, pool, call };
  }

  it('keys sessions by the expected peer: the new owner is dialled, not the old pooled session', async () => {
    const { old, rebuilt, address, pool, call } = await handover();
    expect(await call(NODE_B, 'to node-b')).toBe('to node-b');
    // The snapshot now says node-c holds the address: its opens must not ride node-b's session.
    address.moveTo(rebuilt.port);
    for (let i = 0; i < 3; i++) expect(await call(NODE_C, `to node-c ${i}`)).toBe(`to node-c ${i}`);
    expect(rebuilt.stats()).toMatchObject({ sessionsTotal: 1, streamsTotal: 3 });
    expect(old.stats().streamsTotal).toBe(1);
    expect(pool.stats().handshakesTotal).toBe(2);
  });

  it('never pools a session whose peer is not the expected identity', async () => {
    const { old, rebuilt, address, call } = await handover();
    // The snapshot already names node-c while node-b still holds the address: refused in the
    // handshake, so nothing of node-b's is kept for node-c.
    const early = await call(NODE_C, 'too early').catch((e: unknown) => e);
    expect(isWeftError(early, 'WEFT_E_DENIED')).toBe(true);
    expect((early as Error).message).toContain(`presented ${NODE_B}, expected ${NODE_C}`);
    address.moveTo(rebuilt.port);
    expect(await call(NODE_C, 'now')).toBe('now');
    expect(old.stats().streamsTotal).toBe(0);
    expect(rebuilt.stats().streamsTotal).toBe(1);
  });
});

describe('when the peer agent fails', () => {
  it('errors a stream promptly when the server dies mid-stream, then dials a new session', async () => {
    const { server, pool, target } = await setup();
    const stream = await openTo(pool, server, target.port);
    stream.write('before');
    await new Promise((resolve) => stream.once('data', resolve));
    const failed = new Promise<unknown>((resolve) => {
      stream.once('error', resolve);
      stream.once('close', () => resolve('closed without error'));
    });
    const port = server.port;
    const started = Date.now();
    server.destroy();
    const outcome = await failed;
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(isWeftError(outcome, 'WEFT_E_UNAVAILABLE')).toBe(true);
    expect(stream.readableEnded).toBe(false); // it did not look like a clean end

    // A new agent on the same port: the next open dials a new session transparently.
    const again = await startServer(pki, { port });
    cleanups.push(() => again.destroy());
    await expect.poll(() => pool.stats().sessions).toBe(0);
    const next = await openTo(pool, again, target.port);
    next.end('x');
    expect((await readAll(next)).toString()).toBe('xbye');
    expect(pool.stats().handshakesTotal).toBe(2);
  });

  it('fails an open with WEFT_E_UNAVAILABLE when nothing listens', async () => {
    const closed = await listenTarget(() => {});
    const port = closed.port;
    await closed.close();
    const pool = newPool(pki);
    cleanups.push(() => pool.destroy());
    const err = await pool
      .open({
        source: source(pki.client),
        peer: { address: '127.0.0.1', port },
        target: { address: '127.0.0.1', port: 9 },
      })
      .catch((e: unknown) => e);
    expect(isWeftError(err, 'WEFT_E_UNAVAILABLE')).toBe(true);
    expect(pool.stats()).toMatchObject({ sessions: 0, handshakeFailuresTotal: 1 });
  });

  it('detects a peer that stops answering (keep-alive PING) and closes the session', async () => {
    const { server, target } = await setup();
    // A relay between pool and server that can stop forwarding without closing anything, as
    // a partition or a dead host would.
    let frozen = false;
    const relay: Server = createServer((inbound: Socket) => {
      const outbound = netConnect({ host: '127.0.0.1', port: server.port });
      inbound.on('data', (c) => frozen || outbound.write(c));
      outbound.on('data', (c) => frozen || inbound.write(c));
      inbound.on('error', () => outbound.destroy());
      outbound.on('error', () => inbound.destroy());
      inbound.on('close', () => outbound.destroy());
      cleanups.push(() => inbound.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => relay.close(resolve)));
    const relayPort = (relay.address() as { port: number }).port;
    const watched = newPool(pki, { keepAlive: { intervalMs: 200, timeoutMs: 300 } });
    cleanups.push(() => watched.destroy());
    const stream = await watched.open({
      source: source(pki.client),
      peer: { address: '127.0.0.1', port: relayPort },
      target: { address: '127.0.0.1', port: target.port },
    });
    stream.on('error', () => {});
    frozen = true;
    const started = Date.now();
    await new Promise((resolve) => stream.once('close', resolve));
    expect(Date.now() - started).toBeLessThan(3_000);
    await expect.poll(() => watched.stats().sessions).toBe(0);
  });
});
