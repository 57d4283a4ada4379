// The tunnel's pure decisions, table-driven: which :authority is a target, which peer
// certificate is an SVID of this mesh, which address is this host's, and which options are
// refused (with the field named).
import type { PeerCertificate } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { isWeftError } from '../../src/errors.js';
import { flowControlOf } from '../../src/proxy/tunnel/flow-control.js';
import {
  formatAuthority,
  hostAddressCheck,
  parseAuthority,
  startTunnelServer,
  TunnelPool,
} from '../../src/proxy/tunnel/index.js';
import { keepAliveOf } from '../../src/proxy/tunnel/keepalive.js';
import { peerSpiffeId } from '../../src/proxy/tunnel/peer-identity.js';

describe('CONNECT :authority', () => {
  it.each([
    ['10.0.0.1:80', { address: '10.0.0.1', port: 80 }],
    ['127.0.0.1:65535', { address: '127.0.0.1', port: 65535 }],
    ['[::1]:8080', { address: '::1', port: 8080 }],
    ['[fd00::a:1]:1', { address: 'fd00::a:1', port: 1 }],
  ])('%s is a target', (authority, target) => {
    expect(parseAuthority(authority)).toEqual(target);
    expect(formatAuthority(target)).toBe(authority);
  });

  it.each([
    [undefined],
    [''],
    ['10.0.0.1'],
    ['10.0.0.1:'],
    ['10.0.0.1:0'],
    ['10.0.0.1:65536'],
    ['10.0.0.1:+80'],
    ['10.0.0.1:80 '],
    ['10.0.0.256:80'],
    ['example.com:80'],
    ['::1:80'],
    ['[::1]'],
    ['[::1]80'],
    ['[10.0.0.1]:80'],
    ['[::1:80'],
  ])('%s is refused', (authority) => {
    expect(parseAuthority(authority)).toBeUndefined();
  });
});

describe('peer identity', () => {
  const cert = (san: string | undefined): PeerCertificate =>
    ({ raw: Buffer.from('x'), subjectaltname: san }) as unknown as PeerCertificate;

  it.each([
    ['URI:spiffe://weft.local/svc/a', 'spiffe://weft.local/svc/a'],
    ['URI:spiffe://weft.local/node/host-1', 'spiffe://weft.local/node/host-1'],
    ['DNS:host, URI:spiffe://weft.local/svc/a', 'spiffe://weft.local/svc/a'],
  ])('%s -> %s', (san, id) => {
    expect(peerSpiffeId(cert(san), 'weft.local')).toEqual({ ok: true, spiffeId: id });
  });

  it.each([
    [undefined, 'has 0 URI SANs'],
    ['DNS:host', 'has 0 URI SANs'],
    ['URI:spiffe://other.mesh/svc/a', 'is not in trust domain weft.local'],
    ['URI:spiffe://weft.localx/svc/a', 'is not in trust domain weft.local'],
    ['URI:https://weft.local/svc/a', 'is not in trust domain weft.local'],
    ['URI:spiffe://WEFT.local/svc/a', 'is not in trust domain weft.local'],
    ['URI:spiffe://weft.local/svc/a, URI:spiffe://weft.local/svc/b', 'has 2 URI SANs'],
  ])('%s is refused (%s)', (san, why) => {
    const result = peerSpiffeId(cert(san), 'weft.local');
    expect(result.ok).toBe(false);
    expect(result.ok === false && result.reason).toContain(why);
  });

  // Only node/<dns-label> and svc/<dns-label> of this trust domain, spelled canonically, may
  // call through the tunnel: anything else could be read as another identity by a policy.
  it.each([
    ['spiffe://weft.local/', 'not a canonical weft identity'],
    ['spiffe://weft.local/admin/ops', 'an admin identity'],
    ['spiffe://weft.local/controlplane', 'a controlplane identity'],
    ['spiffe://weft.local/svc/web/../../node/n1', 'not a canonical weft identity'],
    ['spiffe://weft.local/svc/./web', 'not a canonical weft identity'],
    ['spiffe://weft.local/svc/..', 'not a canonical weft identity'],
    ['spiffe://weft.local//svc/web', 'not a canonical weft identity'],
    ['spiffe://weft.local/svc//web', 'not a canonical weft identity'],
    ['spiffe://weft.local/svc/web/', 'not a canonical weft identity'],
    ['spiffe://weft.local/svc/w%65b', 'not a canonical weft identity'],
    ['spiffe://weft.local/svc/%2e%2e', 'not a canonical weft identity'],
    ['spiffe://weft.local/SVC/web', 'not a canonical weft identity'],
    ['spiffe://weft.local/svc/Web', 'not a canonical weft identity'],
    ['spiffe://weft.local/svc/web?x=1', 'not a canonical weft identity'],
    ['spiffe://weft.local/svc/web#frag', 'not a canonical weft identity'],
    ['spiffe://weft.local/svc/web/extra', 'not a canonical weft identity'],
    ['spiffe://weft.local/node/n1.example', 'not a canonical weft identity'],
    ['spiffe://weft.local/svc/-web', 'not a canonical weft identity'],
    ['spiffe://weft.local/svc/web\\x', 'not a canonical weft identity'],
    ['spiffe://weft.local/workload/web', 'not a canonical weft identity'],
    [`spiffe://weft.local/svc/${'a'.repeat(64)}`, 'not a canonical weft identity'],
  ])('%s is refused as a caller (%s)', (uri, why) => {
    const result = peerSpiffeId(cert(`URI:${uri}`), 'weft.local');
    expect(result).toMatchObject({ ok: false });
    expect(result.ok === false && result.reason).toContain(why);
    expect(result.ok === false && result.reason).toContain('node/<name> or svc/<name>');
  });

  it('a tunnel server must be a node: a service identity is refused as a server', () => {
    const svc = cert('URI:spiffe://weft.local/svc/a');
    expect(peerSpiffeId(svc, 'weft.local', ['node'])).toMatchObject({ ok: false });
    expect(peerSpiffeId(cert('URI:spiffe://weft.local/node/n1'), 'weft.local', ['node'])).toEqual({
      ok: true,
      spiffeId: 'spiffe://weft.local/node/n1',
    });
  });

  it('refuses a peer without a certificate', () => {
    expect(peerSpiffeId({} as PeerCertificate, 'weft.local')).toEqual({
      ok: false,
      reason: 'no certificate',
    });
  });
});

describe('local addresses', () => {
  it('knows loopback and the interfaces, in any spelling', () => {
    const isLocal = hostAddressCheck(() => new Set(['10.1.2.3', 'fd00::5']));
    for (const a of ['127.0.0.1', '127.9.9.9', '::1', '10.1.2.3', '::ffff:10.1.2.3', 'FD00::5']) {
      expect(isLocal(a), a).toBe(true);
    }
    for (const a of ['10.1.2.4', '0.0.0.0', '::', '192.0.2.1', 'localhost', '']) {
      expect(isLocal(a), a).toBe(false);
    }
  });

  it('re-reads the interfaces for an unknown address, at most once a second', () => {
    let reads = 0;
    let addresses = new Set<string>();
    const isLocal = hostAddressCheck(() => {
      reads += 1;
      return addresses;
    });
    expect(reads).toBe(1);
    addresses = new Set(['10.9.9.9']);
    // Within the first second a miss does not re-read: an address added just now waits.
    expect(isLocal('10.9.9.9')).toBe(false);
    expect(isLocal('10.9.9.8')).toBe(false);
    expect(reads).toBe(1);
  });
});

describe('options are checked when objects are built', () => {
  const bundle = '-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n';

  it.each([
    [{ streamWindowBytes: 1000 }, /flowControl\.streamWindowBytes must be an integer 65535-/],
    [{ connectionWindowBytes: 2 ** 31 }, /flowControl\.connectionWindowBytes/],
    [{ maxFrameBytes: 1024 }, /flowControl\.maxFrameBytes must be an integer 16384-16777215/],
    [{ maxSessionMemoryMb: 0 }, /flowControl\.maxSessionMemoryMb/],
  ])('flow control %j', (partial, message) => {
    expect(() => flowControlOf(partial, 'x')).toThrow(message);
  });

  it('keep-alive', () => {
    expect(keepAliveOf(false, 'x')).toBe(false);
    expect(keepAliveOf(undefined, 'x')).toEqual({ intervalMs: 30_000, timeoutMs: 10_000 });
    expect(() => keepAliveOf({ intervalMs: 0, timeoutMs: 1 }, 'x')).toThrow(
      /x\.keepAlive\.intervalMs must be a positive number/,
    );
  });

  it.each([
    [{ trustDomain: 'Weft Local' }, /tunnel pool: trustDomain must be a SPIFFE trust domain/],
    [{ trustBundle: 'not pem' }, /tunnel pool: trustBundle must hold at least one PEM CA/],
    [{ idleTimeoutMs: -1 }, /tunnel pool: idleTimeoutMs must be a positive number/],
    [{ flowControl: { streamWindowBytes: 1 } }, /tunnel pool\.flowControl\.streamWindowBytes/],
  ])('tunnel pool %j', (override, message) => {
    const build = () =>
      new TunnelPool({ trustDomain: 'weft.local', trustBundle: bundle, ...override });
    expect(build).toThrow(message);
    try {
      build();
    } catch (err) {
      expect(isWeftError(err, 'WEFT_E_CONFIG')).toBe(true);
    }
  });

  it.each([
    [{ trustDomain: '' }, /tunnel server: trustDomain must be a SPIFFE trust domain/],
    [{ port: 70000 }, /tunnel server: port must be 0-65535/],
    [{ authorize: undefined }, /tunnel server: authorize must be a function/],
    [{ maxConcurrentStreams: 0 }, /tunnel server: maxConcurrentStreams must be a positive/],
    [{ idleTimeoutMs: 0 }, /tunnel server: idleTimeoutMs must be a positive integer of ms/],
    [{ handshakeTimeoutMs: 1.5 }, /tunnel server: handshakeTimeoutMs must be a positive/],
    [{ identity: { key: 'nope', cert: bundle } }, /tunnel server\.identity\.key must be a PEM/],
  ])('tunnel server %j', async (override, message) => {
    const opts = {
      trustDomain: 'weft.local',
      identity: { key: '-----BEGIN PRIVATE KEY-----', cert: bundle },
      trustBundle: bundle,
      authorize: () => ({ allow: true as const }),
      ...override,
    };
    await expect(
      startTunnelServer(opts as Parameters<typeof startTunnelServer>[0]),
    ).rejects.toThrow(message);
  });

  it('a pool refuses an open with a malformed target, naming it', async () => {
    const pool = new TunnelPool({ trustDomain: 'weft.local', trustBundle: bundle });
    const open = pool.open({
      source: { spiffeId: 'spiffe://weft.local/svc/a', key: '', cert: '' },
      peer: { address: '10.0.0.2', port: 15008 },
      target: { address: 'db.internal', port: 5432 },
    });
    await expect(open).rejects.toThrow(
      /tunnel pool\.open: target\.address must be an IPv4 or IPv6 address, got "db\.internal"/,
    );
  });
});
