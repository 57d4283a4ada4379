// The tunnel's deny list on loopback with real TLS (issue 10, deliverable 3): a revoked
// certificate (by serial: a service identity is shared by the nodes that serve it) is refused
// as a caller at the handshake and as a server by the client, and sessions already open with
// it are closed when a new snapshot revokes it.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isWeftError } from '../../src/errors.js';
import type { TunnelServer } from '../../src/proxy/tunnel/index.js';
import { issueLeaf, type TestLeaf } from '../helpers/test-pki.js';
import {
  echoTarget,
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

/** The serial as the deny list holds it: lowercase hex without leading zeros. */
const serial = (leaf: TestLeaf): string => leaf.serialNumber.toLowerCase().replace(/^0+/, '');

const revoked = new Set<string>();
const isRevoked = (s: string): boolean => revoked.has(s);

async function server(overrides: Parameters<typeof startServer>[1] = {}): Promise<TunnelServer> {
  const s = await startServer(pki, { isRevoked, ...overrides });
  cleanups.push(() => s.destroy());
  return s;
}

function pool() {
  const p = newPool(pki, { isRevoked });
  cleanups.push(() => p.destroy());
  return p;
}

function open(p: ReturnType<typeof pool>, s: TunnelServer, leaf: TestLeaf) {
  return p.open({
    source: source(leaf),
    peer: { address: '127.0.0.1', port: s.port },
    target: { address: '127.0.0.1', port: echo.port },
  });
}

describe('revoked certificates on the tunnel', () => {
  afterEach(() => revoked.clear());

  it('the server refuses a caller whose certificate is revoked, and counts it', async () => {
    const s = await server();
    const caller = await issueLeaf(pki.ca, `spiffe://${TD}/svc/frontend`);
    const other = await issueLeaf(pki.ca, `spiffe://${TD}/svc/frontend`);
    revoked.add(serial(caller));
    const err = await open(pool(), s, caller).catch((e: unknown) => e);
    expect(isWeftError(err, 'WEFT_E_DENIED')).toBe(true);
    await expect.poll(() => s.stats().refused.revoked).toBe(1);
    // The same identity with another (not revoked) certificate gets in: the list is by serial.
    const stream = await open(pool(), s, other);
    stream.end('ping');
    expect((await readAll(stream)).toString()).toBe('pingbye');
  });

  it('closes open sessions of a caller once it is revoked', async () => {
    const s = await server();
    const caller = await issueLeaf(pki.ca, `spiffe://${TD}/svc/frontend`);
    const stream = await open(pool(), s, caller);
    const ended = new Promise<string>((resolve) => {
      stream.on('error', (e: Error) => resolve(`error: ${e.message}`));
      stream.on('close', () => resolve('closed'));
    });
    stream.write('ping');
    expect(s.stats().sessionsActive).toBe(1);
    revoked.add(serial(caller));
    expect(s.closeRevoked()).toBe(1);
    await ended;
    await expect.poll(() => s.stats().sessionsActive).toBe(0);
  });

  it('the client refuses a server whose certificate is revoked, and drops pooled sessions to it', async () => {
    const s = await server();
    const p = pool();
    const first = await open(p, s, pki.client);
    first.end();
    await readAll(first);
    expect(p.stats().sessions).toBe(1);
    revoked.add(serial(pki.server));
    expect(p.closeRevoked()).toBe(1);
    await expect.poll(() => p.stats().sessions).toBe(0);
    const err = await open(p, s, pki.client).catch((e: unknown) => e);
    expect(isWeftError(err, 'WEFT_E_DENIED')).toBe(true);
    expect((err as Error).message).toContain('certificate is revoked');
  });
});
