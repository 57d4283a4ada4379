// The receiving side of the tunnel on loopback with real TLS: who is refused at the TLS layer,
// what the authorization hook and the locality check answer, the statuses a raw HTTP/2
// client sees, certificate rotation without dropping streams, and the access records.
import { type ClientHttp2Session, connect as h2connect } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isWeftError } from '../../src/errors.js';
import { ConnectionGate } from '../../src/proxy/limits/connection-gate.js';
import {
  type AuthorizeHook,
  type TunnelAccessRecord,
  type TunnelServer,
  TunnelStreamError,
} from '../../src/proxy/tunnel/index.js';
import { createTestCa, issueLeaf, type TestLeaf } from '../helpers/test-pki.js';
import {
  echoTarget,
  listenTarget,
  type MeshPki,
  meshPki,
  newPool,
  readAll,
  source,
  startServer,
  type Target,
  TD,
} from './tunnel-fixture.js';

let pki: MeshPki;
let echo: Target;
beforeAll(async () => {
  pki = await meshPki();
  echo = await echoTarget('bye');
  return () => echo.close();
});

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function serverWith(overrides: Parameters<typeof startServer>[1] = {}) {
  const records: TunnelAccessRecord[] = [];
  const server = await startServer(pki, { onAccess: (r) => records.push(r), ...overrides });
  cleanups.push(() => server.destroy());
  return { server, records };
}

function poolWith(overrides: Parameters<typeof newPool>[1] = {}) {
  const pool = newPool(pki, overrides);
  cleanups.push(() => pool.destroy());
  return pool;
}

/** Opens a stream as `leaf` and round-trips `text`; rejects like pool.open does. */
async function roundTrip(
  server: TunnelServer,
  leaf: TestLeaf,
  target: { address: string; port: number } = { address: '127.0.0.1', port: echo.port },
  pool = poolWith(),
): Promise<string> {
  const stream = await pool.open({
    source: source(leaf),
    peer: { address: '127.0.0.1', port: server.port },
    target,
  });
  stream.end('ping');
  return (await readAll(stream)).toString();
}

/**
 * A raw TLS client: resolves with how the connection ended (the server answered, or closed
 * it); a server that does neither within 10 s fails the test, since silence is no refusal.
 */
function rawTls(
  port: number,
  opts: { cert?: TestLeaf; ca: string; maxVersion?: 'TLSv1.2' },
): Promise<{ gotServerBytes: boolean; error?: string }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port,
      ca: opts.ca,
      ...(opts.cert ? { key: opts.cert.keyPem, cert: opts.cert.certPem } : {}),
      ...(opts.maxVersion ? { maxVersion: opts.maxVersion } : {}),
      ALPNProtocols: ['h2'],
      checkServerIdentity: () => undefined,
    });
    let gotServerBytes = false;
    let error: string | undefined;
    // The HTTP/2 preface: a server that accepted us would answer with SETTINGS.
    socket.once('secureConnect', () => socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'));
    socket.on('data', () => {
      gotServerBytes = true;
      socket.destroy();
    });
    socket.on('error', (err) => {
      error = (err as NodeJS.ErrnoException).code ?? err.message;
    });
    const silence = setTimeout(() => {
      reject(new Error('the tunnel server neither answered nor closed the connection in 10 s'));
      socket.destroy();
    }, 10_000);
    socket.once('close', () => {
      clearTimeout(silence);
      resolve({ gotServerBytes, ...(error ? { error } : {}) });
    });
  });
}

describe('TLS: only certificates of this mesh get in', () => {
  it('accepts a mesh certificate and answers with HTTP/2', async () => {
    const { server } = await serverWith();
    const raw = await rawTls(server.port, { cert: pki.client, ca: pki.ca.certPem });
    expect(raw.gotServerBytes).toBe(true);
    expect(await roundTrip(server, pki.client)).toBe('pingbye');
  });

  it('refuses a client without a certificate, and counts it', async () => {
    const { server } = await serverWith();
    const raw = await rawTls(server.port, { ca: pki.ca.certPem });
    // Closed without a byte of HTTP/2: the server never read our preface.
    expect(raw.gotServerBytes).toBe(false);
    await expect.poll(() => server.stats().refused.no_certificate).toBe(1);
    expect(server.stats().sessionsTotal).toBe(0);
  });

  it('refuses a certificate from another CA, and counts it', async () => {
    const { server } = await serverWith();
    const foreignCa = await createTestCa(TD);
    const foreign = await issueLeaf(foreignCa, `spiffe://${TD}/svc/frontend`);
    // The client trusts our CA, so only the server's verdict is tested here.
    const pool = poolWith();
    const err = await roundTrip(server, foreign, undefined, pool).catch((e: unknown) => e);
    expect(isWeftError(err, 'WEFT_E_DENIED')).toBe(true);
    expect(String((err as Error).message)).toMatch(/handshake failed/);
    await expect.poll(() => server.stats().refused.untrusted).toBe(1);
    expect(pool.stats()).toMatchObject({ sessions: 0, handshakeFailuresTotal: 1 });
  });

  it('refuses a certificate of this CA for another trust domain, or that is no SVID', async () => {
    const { server } = await serverWith();
    const otherDomain = await issueLeaf(pki.ca, 'spiffe://other.mesh/svc/frontend');
    const twoIds = await issueLeaf(pki.ca, `spiffe://${TD}/svc/frontend`, {
      extraUris: [`spiffe://${TD}/svc/admin`],
    });
    const noUri = await issueLeaf(pki.ca, 'unused', { noUri: true });
    for (const leaf of [otherDomain, twoIds, noUri]) {
      const raw = await rawTls(server.port, { cert: leaf, ca: pki.ca.certPem });
      expect(raw.gotServerBytes).toBe(false);
    }
    const err = await roundTrip(server, otherDomain).catch((e: unknown) => e);
    expect(isWeftError(err)).toBe(true);
    await expect.poll(() => server.stats().refused.bad_identity).toBe(4);
    expect(server.stats().sessionsTotal).toBe(0);
  });

  it('refuses callers of this mesh that are not node/<name> or svc/<name>, spelled canonically', async () => {
    const { server } = await serverWith();
    const odd = [
      `spiffe://${TD}/admin/ops`,
      `spiffe://${TD}/svc/web/../../node/n1`,
      `spiffe://${TD}/svc/w%65b`,
      `spiffe://${TD}/svc/Web`,
    ];
    for (const id of odd) {
      const leaf = await issueLeaf(pki.ca, id);
      const raw = await rawTls(server.port, { cert: leaf, ca: pki.ca.certPem });
      expect(raw.gotServerBytes, id).toBe(false);
      const err = await roundTrip(server, leaf).catch((e: unknown) => e);
      expect(isWeftError(err, 'WEFT_E_DENIED'), id).toBe(true);
    }
    await expect.poll(() => server.stats().refused.bad_identity).toBe(2 * odd.length);
    expect(server.stats().sessionsTotal).toBe(0);
    // Control: the same CA's canonical service identity gets in.
    expect(await roundTrip(server, pki.client)).toBe('pingbye');
  });

  it('the client refuses a server that presents a service identity, not a node', async () => {
    const svc = await issueLeaf(pki.ca, `spiffe://${TD}/svc/echo`);
    const { server } = await serverWith({ identity: { key: svc.keyPem, cert: svc.certPem } });
    const err = await roundTrip(server, pki.client).catch((e: unknown) => e);
    expect(isWeftError(err, 'WEFT_E_DENIED')).toBe(true);
    expect((err as Error).message).toContain('a svc identity');
  });

  it('refuses TLS 1.2', async () => {
    const { server } = await serverWith();
    const raw = await rawTls(server.port, {
      cert: pki.client,
      ca: pki.ca.certPem,
      maxVersion: 'TLSv1.2',
    });
    expect(raw.gotServerBytes).toBe(false);
    await expect.poll(() => server.stats().refused.handshake).toBe(1);
  });

  it('the client refuses a server that is not the expected identity or not of the mesh', async () => {
    const { server } = await serverWith();
    const pool = poolWith();
    const open = (expectedSpiffeId?: string) =>
      pool.open({
        source: source(pki.client),
        peer: {
          address: '127.0.0.1',
          port: server.port,
          ...(expectedSpiffeId ? { expectedSpiffeId } : {}),
        },
        target: { address: '127.0.0.1', port: echo.port },
      });
    const wrong = await open(`spiffe://${TD}/node/someone-else`).catch((e: unknown) => e);
    expect(isWeftError(wrong, 'WEFT_E_DENIED')).toBe(true);
    expect((wrong as Error).message).toContain(`presented ${pki.server.spiffeId}`);
    const right = await open(pki.server.spiffeId);
    right.end();
    await readAll(right);

    // A server of another trust domain, even under our CA, is refused during the handshake.
    const stranger = await issueLeaf(pki.ca, 'spiffe://other.mesh/node/b');
    const { server: other } = await serverWith({
      identity: { key: stranger.keyPem, cert: stranger.certPem },
    });
    const err = await pool
      .open({
        source: source(pki.client),
        peer: { address: '127.0.0.1', port: other.port },
        target: { address: '127.0.0.1', port: echo.port },
      })
      .catch((e: unknown) => e);
    expect(isWeftError(err, 'WEFT_E_DENIED')).toBe(true);
    expect((err as Error).message).toContain('not in trust domain weft.local');
  });
});

describe('authorization and the locality check', () => {
  // AuthorizationPolicy stands in as a table: principal -> allowed target ports.
  const table: Record<string, number[]> = {
    [`spiffe://${TD}/svc/frontend`]: [],
    [`spiffe://${TD}/svc/billing`]: [],
  };
  const byTable: AuthorizeHook = ({ peer, target }) =>
    table[peer.spiffeId]?.includes(target.port)
      ? { allow: true }
      : { allow: false, reason: `${peer.spiffeId} may not reach port ${target.port}` };

  it('denies with WEFT_E_DENIED and the reason, allows what the table allows', async () => {
    table[`spiffe://${TD}/svc/billing`] = [echo.port];
    const billing = await issueLeaf(pki.ca, `spiffe://${TD}/svc/billing`);
    const { server, records } = await serverWith({ authorize: byTable });

    const err = await roundTrip(server, pki.client).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TunnelStreamError);
    expect(err).toMatchObject({
      code: 'WEFT_E_DENIED',
      status: 403,
      reason: `spiffe://${TD}/svc/frontend may not reach port ${echo.port}`,
    });
    expect(await roundTrip(server, billing)).toBe('pingbye');

    await expect.poll(() => records.length).toBe(2);
    expect(records[0]).toMatchObject({
      peer: { spiffeId: pki.client.spiffeId },
      status: 403,
      reason: 'denied',
      detail: `spiffe://${TD}/svc/frontend may not reach port ${echo.port}`,
      bytesToTarget: 0,
    });
    expect(records[1]).toMatchObject({
      peer: { spiffeId: billing.spiffeId },
      authority: `127.0.0.1:${echo.port}`,
      status: 200,
      reason: 'done',
      bytesToTarget: 4,
      bytesFromTarget: 7,
    });
    expect(records[1]!.durationMs).toBeGreaterThan(0);
    expect(server.stats().streamsByStatus).toEqual({ '200': 1, '403': 1 });
  });

  it('a policy that throws fails closed', async () => {
    const { server } = await serverWith({
      authorize: () => {
        throw new Error('policy not loaded');
      },
    });
    const err = await roundTrip(server, pki.client).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'WEFT_E_DENIED', status: 403 });
    expect((err as TunnelStreamError).reason).toContain('policy not loaded');
  });

  it('refuses targets that are not this host, or that are the agent itself, before policy', async () => {
    let asked = 0;
    const { server } = await serverWith({
      authorize: () => {
        asked += 1;
        return { allow: true };
      },
    });
    // 192.0.2.0/24 is TEST-NET-1: never an address of this host; nothing is sent there.
    for (const target of [
      { address: '192.0.2.10', port: 80 },
      { address: '0.0.0.0', port: echo.port },
      { address: '127.0.0.1', port: 15000 },
    ]) {
      const err = await roundTrip(server, pki.client, target).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'WEFT_E_DENIED', status: 403 });
    }
    expect(asked).toBe(0);
  });

  it('answers 502 (WEFT_E_UNAVAILABLE) when the local target refuses the connection', async () => {
    const gone = await listenTarget(() => {});
    const port = gone.port;
    await gone.close();
    const { server, records } = await serverWith();
    const err = await roundTrip(server, pki.client, { address: '127.0.0.1', port }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'WEFT_E_UNAVAILABLE', status: 502 });
    expect((err as TunnelStreamError).reason).toMatch(/ECONNREFUSED/);
    await expect.poll(() => records[0]?.reason).toBe('connect_failed');
  });
});

describe('what a raw HTTP/2 client sees', () => {
  async function rawSession(server: TunnelServer): Promise<ClientHttp2Session> {
    const session = h2connect(`https://127.0.0.1:${server.port}`, {
      ca: pki.ca.certPem,
      key: pki.client.keyPem,
      cert: pki.client.certPem,
      checkServerIdentity: () => undefined,
    });
    cleanups.push(() => session.destroy());
    await new Promise((resolve, reject) => {
      session.once('remoteSettings', resolve);
      session.once('error', reject);
    });
    return session;
  }

  function statusOf(session: ClientHttp2Session, headers: Record<string, string>) {
    return new Promise<{ status: number; reason: unknown }>((resolve, reject) => {
      const req = session.request(headers, { endStream: headers[':method'] !== 'CONNECT' });
      req.once('response', (h) =>
        resolve({ status: Number(h[':status']), reason: h['weft-reason'] }),
      );
      req.once('error', reject);
      req.resume();
    });
  }

  it('400 for an authority that is not ip:port, 405 for other methods', async () => {
    const { server, records } = await serverWith();
    const session = await rawSession(server);
    for (const authority of ['example.com:80', '127.0.0.1', '[::1:80', '127.0.0.1:99999']) {
      const r = await statusOf(session, { ':method': 'CONNECT', ':authority': authority });
      expect(r.status, authority).toBe(400);
    }
    const get = await statusOf(session, {
      ':method': 'GET',
      ':path': '/',
      ':authority': `127.0.0.1:${echo.port}`,
      ':scheme': 'https',
    });
    expect(get).toEqual({ status: 405, reason: 'only CONNECT is served here' });
    expect(records.map((r) => r.status)).toEqual([400, 400, 400, 400, 405]);
  });

  it('hands non-CONNECT requests to a plugged-in handler', async () => {
    const { server } = await serverWith({
      onRequest: async (stream, headers, peer) => {
        stream.respond({ ':status': 204, 'x-peer': peer.spiffeId, 'x-path': headers[':path'] });
        stream.end();
        return { status: 204, reason: 'done' };
      },
    });
    const session = await rawSession(server);
    const req = session.request({ ':method': 'GET', ':path': '/hello' });
    const headers = await new Promise<Record<string, unknown>>((resolve) =>
      req.once('response', resolve),
    );
    req.resume();
    expect(headers).toMatchObject({
      ':status': 204,
      'x-peer': pki.client.spiffeId,
      'x-path': '/hello',
    });
  });
});

describe('certificate rotation', () => {
  function serverSerial(port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({
        host: '127.0.0.1',
        port,
        ca: pki.ca.certPem,
        key: pki.client.keyPem,
        cert: pki.client.certPem,
        ALPNProtocols: ['h2'],
        checkServerIdentity: () => undefined,
      });
      socket.once('secureConnect', () => {
        resolve(socket.getPeerCertificate().serialNumber.toLowerCase());
        socket.destroy();
      });
      socket.once('error', reject);
    });
  }

  it('new streams use new certificates on both sides; open streams keep flowing', async () => {
    const { server, records } = await serverWith();
    const pool = poolWith();
    const open = (leaf: TestLeaf) =>
      pool.open({
        source: source(leaf),
        peer: { address: '127.0.0.1', port: server.port },
        target: { address: '127.0.0.1', port: echo.port },
      });
    const echoOnce = (stream: Awaited<ReturnType<typeof open>>, text: string) =>
      new Promise<string>((resolve) => {
        stream.once('data', (c: Buffer) => resolve(c.toString()));
        stream.write(text);
      });

    const longLived = await open(pki.client);
    expect(await echoOnce(longLived, 'one')).toBe('one');
    expect(await serverSerial(server.port)).toBe(pki.server.serialNumber.toLowerCase());

    // The server renews its node certificate.
    const serverNext = await issueLeaf(pki.ca, pki.server.spiffeId);
    server.setIdentity({ key: serverNext.keyPem, cert: serverNext.certPem });
    expect(await serverSerial(server.port)).toBe(serverNext.serialNumber.toLowerCase());
    expect(await echoOnce(longLived, 'two')).toBe('two');

    // The client workload renews: the next open rides a new session with the new cert.
    const clientNext = await issueLeaf(pki.ca, pki.client.spiffeId);
    const fresh = await open(clientNext);
    fresh.end('new');
    expect((await readAll(fresh)).toString()).toBe('newbye');
    expect(pool.stats()).toMatchObject({ handshakesTotal: 2, sessions: 2 });
    // An open still carrying the old certificate rides the new session, not back to the old.
    const late = await open(pki.client);
    late.end('late');
    expect((await readAll(late)).toString()).toBe('latebye');
    expect(pool.stats().handshakesTotal).toBe(2);
    expect(await echoOnce(longLived, 'three')).toBe('three');

    longLived.end();
    await readAll(longLived);
    // The old session drained once its last stream ended.
    await expect.poll(() => pool.stats().sessions).toBe(1);
    const serials = records.map((r) => r.peer.certSerial.toLowerCase());
    const oldSerial = pki.client.serialNumber.toLowerCase();
    const newSerial = clientNext.serialNumber.toLowerCase();
    // Records come in the order streams ended: fresh, late, then the long-lived one.
    expect(serials).toEqual([newSerial, newSerial, oldSerial]);
  });

  it('a new trust bundle applies to new sessions; open ones are not cut', async () => {
    const { server } = await serverWith();
    const pool = poolWith();
    const stream = await pool.open({
      source: source(pki.client),
      peer: { address: '127.0.0.1', port: server.port },
      target: { address: '127.0.0.1', port: echo.port },
    });
    // The mesh moves to a new CA: the bundle holds both, then only the new one.
    const nextCa = await createTestCa(TD);
    const nextLeaf = await issueLeaf(nextCa, `spiffe://${TD}/svc/frontend`);
    server.setTrustBundle(pki.ca.certPem + nextCa.certPem);
    expect(await roundTrip(server, nextLeaf)).toBe('pingbye');
    server.setTrustBundle(nextCa.certPem);
    const err = await roundTrip(server, pki.client).catch((e: unknown) => e);
    expect(isWeftError(err, 'WEFT_E_DENIED')).toBe(true);
    stream.end('still here');
    expect((await readAll(stream)).toString()).toBe('still herebye');
  });

  it('rejects a key that does not match its certificate, naming the option', async () => {
    const { server } = await serverWith();
    const other = await issueLeaf(pki.ca, pki.server.spiffeId);
    expect(() => server.setIdentity({ key: other.keyPem, cert: pki.server.certPem })).toThrow(
      /tunnel server\.setIdentity: the key, certificate or trust bundle is unusable/,
    );
    expect(await roundTrip(server, pki.client)).toBe('pingbye');
  });
});

describe('shutdown', () => {
  it('close() lets open streams finish and refuses new sessions', async () => {
    const { server } = await serverWith();
    const pool = poolWith();
    const stream = await pool.open({
      source: source(pki.client),
      peer: { address: '127.0.0.1', port: server.port },
      target: { address: '127.0.0.1', port: echo.port },
    });
    const port = server.port;
    const closed = server.close(10_000);
    const fresh = newPool(pki);
    cleanups.push(() => fresh.destroy());
    const err = await fresh
      .open({
        source: source(pki.client),
        peer: { address: '127.0.0.1', port },
        target: { address: '127.0.0.1', port: echo.port },
      })
      .catch((e: unknown) => e);
    expect(isWeftError(err, 'WEFT_E_UNAVAILABLE')).toBe(true);
    // The pooled session got GOAWAY: the pool does not open new streams on it.
    await expect.poll(() => pool.stats().sessions).toBe(1);
    const again = await pool
      .open({
        source: source(pki.client),
        peer: { address: '127.0.0.1', port },
        target: { address: '127.0.0.1', port: echo.port },
      })
      .catch((e: unknown) => e);
    expect(isWeftError(again, 'WEFT_E_UNAVAILABLE')).toBe(true);
    stream.end('last words');
    expect((await readAll(stream)).toString()).toBe('last wordsbye');
    await closed;
  });
});

describe('hostile clients', () => {
  interface RawTcp {
    socket: Socket;
    /** How it ended: the error code (ECONNRESET for a reset), or 'closed'. */
    ended: Promise<string>;
  }

  /** Raw TCP to the tunnel port from `from`, never speaking TLS; resolves once connected. */
  async function idleTcp(port: number, from: string): Promise<RawTcp> {
    const socket = netConnect({ host: '127.0.0.1', port, localAddress: from });
    cleanups.push(() => socket.destroy());
    let code = 'closed';
    socket.on('error', (err: NodeJS.ErrnoException) => {
      code = err.code ?? err.message;
    });
    const ended = new Promise<string>((resolve) => socket.once('close', () => resolve(code)));
    await Promise.race([new Promise((resolve) => socket.once('connect', resolve)), ended]);
    return { socket, ended };
  }

  it('holds a flood from one source to its limit, refuses the rest at once; others get in', async () => {
    const { server } = await serverWith({
      gate: new ConnectionGate({ maxConnections: 8, maxConnectionsPerSource: 3 }),
    });
    const flood: RawTcp[] = [];
    for (let i = 0; i < 3; i++) flood.push(await idleTcp(server.port, '127.0.0.2'));
    const refused = await Promise.all(
      Array.from({ length: 20 }, async () => (await idleTcp(server.port, '127.0.0.2')).ended),
    );
    expect(new Set(refused)).toEqual(new Set(['ECONNRESET']));
    expect(server.stats().refused.per_source_limit).toBe(20);
    // The three held ones are still open, and a peer from another address is served.
    expect(flood.every((c) => !c.socket.destroyed)).toBe(true);
    expect(await roundTrip(server, pki.client)).toBe('pingbye');
  });

  it('refuses beyond the total limit, and gives a slot back when a connection closes', async () => {
    const { server } = await serverWith({
      gate: new ConnectionGate({ maxConnections: 2, maxConnectionsPerSource: 2 }),
    });
    const held = [await idleTcp(server.port, '127.0.0.2'), await idleTcp(server.port, '127.0.0.3')];
    expect(await (await idleTcp(server.port, '127.0.0.4')).ended).toBe('ECONNRESET');
    expect(server.stats().refused.total_limit).toBe(1);
    held[0]!.socket.destroy();
    await expect.poll(() => roundTrip(server, pki.client).catch(() => 'refused')).toBe('pingbye');
  });

  it('closes a connection that does not finish its TLS handshake in time: handshake_timeout', async () => {
    const { server } = await serverWith({ handshakeTimeoutMs: 200 });
    await (await idleTcp(server.port, '127.0.0.2')).ended;
    expect(server.stats().refused.handshake_timeout).toBe(1);
  });

  it('closes a session that carries no stream for idleTimeoutMs, with GOAWAY', async () => {
    const { server } = await serverWith({ idleTimeoutMs: 300 });
    const pool = poolWith({ idleTimeoutMs: 600_000 });
    expect(await roundTrip(server, pki.client, undefined, pool)).toBe('pingbye');
    await expect.poll(() => server.stats().sessionsIdleClosed).toBe(1);
    await expect.poll(() => pool.stats().sessions).toBe(0);
    expect(server.stats().sessionsActive).toBe(0);
    // The pool opens a new session for the next stream: nothing failed.
    expect(await roundTrip(server, pki.client, undefined, pool)).toBe('pingbye');
  });

  it('a session with an open stream is not idle', async () => {
    const { server } = await serverWith({ idleTimeoutMs: 200 });
    const pool = poolWith();
    const stream = await pool.open({
      source: source(pki.client),
      peer: { address: '127.0.0.1', port: server.port },
      target: { address: '127.0.0.1', port: echo.port },
    });
    // A second, short stream on the same session ends; the first keeps it busy.
    expect(await roundTrip(server, pki.client, undefined, pool)).toBe('pingbye');
    // The sentinel: a session of another pool, idle from later on. Once it is closed as idle,
    // the busy one would have been closed before it, were its open stream not counted.
    const sentinel = poolWith();
    expect(await roundTrip(server, pki.client, undefined, sentinel)).toBe('pingbye');
    await expect.poll(() => sentinel.stats().sessions).toBe(0);
    expect(server.stats().sessionsIdleClosed).toBe(1);
    expect(pool.stats().sessions).toBe(1);
    const echoed = new Promise((resolve) => stream.once('data', resolve));
    stream.write('later');
    expect(String(await echoed)).toBe('later');
    stream.end();
    await readAll(stream);
  });

  it('tells onStream when a stream starts and hands its record to what it returned', async () => {
    const events: string[] = [];
    const { server } = await serverWith({
      onStream: ({ peer, target }) => {
        events.push(`start ${peer.spiffeId} ${target?.port}`);
        return (record) => events.push(`end ${record.status} ${record.reason}`);
      },
    });
    expect(await roundTrip(server, pki.client)).toBe('pingbye');
    await expect.poll(() => events.length).toBe(2);
    expect(events).toEqual([`start ${pki.client.spiffeId} ${echo.port}`, 'end 200 done']);
    expect(server.stats().streamOutcomes).toEqual([{ status: 200, reason: 'done', count: 1 }]);
  });
});
