// The etcd store against a real etcd (started by this file): the same Store contract as the
// file store, then what is etcd's own: keys under the prefix, two stores on one etcd seeing each
// other's writes, a watch living through a dropped stream, and TLS with client certificates.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EtcdStore, type EtcdStoreOptions } from '../../src/controlplane/store/etcd-store.js';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { collect, storeContract } from '../helpers/store-contract.js';
import { waitFor } from '../helpers/wait.js';

let etcd: TestEtcd;
let raw: Etcd3;
const open: EtcdStore[] = [];
let prefixes = 0;

/** A store on its own prefix of the shared test etcd: every test starts empty. */
async function openStore(options: Partial<EtcdStoreOptions> = {}): Promise<EtcdStore> {
  const store = await EtcdStore.open({
    endpoints: [etcd.endpoint],
    prefix: `/weft-test-${process.pid}-${++prefixes}/`,
    ...options,
  });
  open.push(store);
  return store;
}

beforeAll(async () => {
  etcd = await startEtcd();
  raw = new Etcd3({ hosts: etcd.endpoint });
}, 120_000);

afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

afterAll(async () => {
  raw?.close();
  await etcd?.stop();
});

storeContract('etcd store', {
  open: () => openStore(),
  openForCompaction: () => openStore(),
  compact: async (_store, revision) => {
    await raw.kv.compact({ revision, physical: true });
  },
  // etcd's smallest lease TTL with its default election timeout is 2 s.
  leaseTtlMs: 2_000,
  leaseExpiryTimeoutMs: 30_000,
});

describe('etcd store: on etcd', () => {
  it('keeps its keys under the prefix, values as JSON', async () => {
    const store = await openStore({ prefix: `/weft-raw-${process.pid}/` });
    await store.put('/resources/Service/echo', { kind: 'Service', n: 1 });
    const got = await raw.get(`/weft-raw-${process.pid}/resources/Service/echo`).json();
    expect(got).toEqual({ kind: 'Service', n: 1 });
  });

  it('lists more entries than one page, as one snapshot', async () => {
    const store = await openStore();
    await Promise.all(
      Array.from({ length: 1_205 }, (_, i) => store.put(`/many/${String(i).padStart(5, '0')}`, i)),
    );
    const list = await store.list('/many/');
    expect(list.entries).toHaveLength(1_205);
    expect(list.entries.at(-1)?.value).toBe(1_204);
    expect(list.revision).toBe(await store.revision());
  });

  it('lets two stores on one etcd see each other’s writes and compares', async () => {
    const prefix = `/weft-shared-${process.pid}/`;
    const a = await openStore({ prefix });
    const b = await openStore({ prefix });
    const start = (await a.revision()) + 1;
    const watchB = collect(b, '/vips/', start);
    const results = await Promise.all([
      a.put('/vips/240.240.0.1', 'svc-a', { prevModRevision: 0 }),
      b.put('/vips/240.240.0.1', 'svc-b', { prevModRevision: 0 }),
    ]);
    expect(results.filter((r) => r.succeeded)).toHaveLength(1);
    const won = results.find((r) => r.succeeded)!;
    await watchB.upTo(won.revision);
    expect(watchB.batches.map((x) => x.events.map((e) => e.key))).toEqual([['/vips/240.240.0.1']]);
    watchB.watch.cancel();
  });

  it('answers many keep-alives at once over its one stream, each for its own lease', async () => {
    const store = await openStore();
    const leases = await Promise.all(Array.from({ length: 5 }, () => store.grantLease(60_000)));
    const gone = await store.grantLease(60_000);
    await store.revokeLease(gone);
    const answers = await Promise.all(
      [...leases, ...leases, gone, ...leases].map((l) => store.keepAlive(l)),
    );
    expect(answers).toEqual([
      ...leases.map(() => true),
      ...leases.map(() => true),
      false,
      ...leases.map(() => true),
    ]);
  });

  it('refuses options it cannot honour, naming the field', async () => {
    await expect(EtcdStore.open({ endpoints: [] })).rejects.toThrow('etcd store: endpoints:');
    await expect(EtcdStore.open({ endpoints: ['127.0.0.1:2379'] })).rejects.toThrow(
      'endpoints: 127.0.0.1:2379 is not a URL',
    );
    await expect(EtcdStore.open({ endpoints: ['unix:///run/etcd.sock'] })).rejects.toThrow(
      'the scheme must be http:// or https://',
    );
    await expect(
      EtcdStore.open({ endpoints: [etcd.endpoint], caFile: '/nonexistent' }),
    ).rejects.toThrow('caFile: TLS files are given but the endpoints are http://');
    await expect(
      EtcdStore.open({ endpoints: ['https://127.0.0.1:1'], certFile: '/x' }),
    ).rejects.toThrow('keyFile: a client certificate needs both');
    await expect(EtcdStore.open({ endpoints: [etcd.endpoint], prefix: 'weft' })).rejects.toThrow(
      'prefix',
    );
  });

  it('fails with an error naming etcd when etcd cannot be reached', async () => {
    const { freePort } = await import('../helpers/etcd.js');
    const port = await freePort();
    await expect(
      EtcdStore.open({ endpoints: [`http://127.0.0.1:${port}`], requestTimeoutMs: 2_000 }),
    ).rejects.toThrow(`etcd (http://127.0.0.1:${port}) failed to read the revision`);
  });
});

describe('etcd store: a watch across a restart of etcd', () => {
  it('resumes after the stream breaks, missing nothing and repeating nothing', async () => {
    const own = await startEtcd();
    try {
      const store = await EtcdStore.open({ endpoints: [own.endpoint] });
      open.push(store);
      const start = (await store.revision()) + 1;
      const w = collect(store, '/w/', start);
      const lease = await store.grantLease(60_000);
      expect(await store.keepAlive(lease)).toBe(true);
      const r1 = (await store.put('/w/1', 1)).revision;
      await w.upTo(r1);
      // Another client writes while the watch's etcd connection is cut: etcd is killed and
      // started again on the same data directory and port.
      await own.restart();
      const r2 = (await store.put('/w/2', 2)).revision;
      const r3 = (await store.put('/w/3', 3)).revision;
      await waitFor(
        'the watch to deliver after the restart',
        () => w.batches.some((b) => b.revision === r3),
        60_000,
      );
      expect(w.batches.map((b) => b.revision)).toEqual([r1, r2, r3]);
      expect(w.errors).toEqual([]);
      // The keep-alive stream broke with etcd: the next keep-alive opens another.
      await waitFor('a keep-alive after the restart', () =>
        store.keepAlive(lease).catch(() => false),
      );
      w.watch.cancel();
    } finally {
      await own.stop();
    }
  }, 120_000);
});

describe('etcd store: TLS with client certificates', () => {
  let dir: string;
  let tlsEtcd: TestEtcd;
  const file = (name: string) => join(dir, name);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-etcd-tls-'));
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    const caConf = ['-subj', '/CN=weft test etcd CA'];
    ssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '1',
      ...caConf,
    );
    // A second CA: a client certificate it signed must be refused.
    ssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'other-ca.key',
      '-out',
      'other-ca.crt',
      '-days',
      '1',
      '-subj',
      '/CN=other CA',
    );
    const leaf = (name: string, ca: string, ext: string) => {
      writeFileSync(file(`${name}.ext`), ext);
      ssl(
        'req',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.csr`,
        '-subj',
        `/CN=${name}`,
      );
      ssl(
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        `${ca}.crt`,
        '-CAkey',
        `${ca}.key`,
        '-CAcreateserial',
        '-out',
        `${name}.crt`,
        '-days',
        '1',
        '-extfile',
        `${name}.ext`,
      );
    };
    leaf('server', 'ca', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
    leaf('client', 'ca', 'extendedKeyUsage=clientAuth\n');
    leaf('stranger', 'other-ca', 'extendedKeyUsage=clientAuth\n');
    // For etcd's RBAC: with auth enabled, a client certificate's CN is its etcd user.
    leaf('root', 'ca', 'extendedKeyUsage=clientAuth\n');
    leaf('weft-cp', 'ca', 'extendedKeyUsage=clientAuth\n');
    tlsEtcd = await startEtcd({
      tls: {
        certFile: file('server.crt'),
        keyFile: file('server.key'),
        caFile: file('ca.crt'),
        clientCertFile: file('client.crt'),
        clientKeyFile: file('client.key'),
      },
    });
  }, 120_000);

  afterAll(async () => {
    await tlsEtcd?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('works over https with a client certificate the etcd trusts', async () => {
    expect(tlsEtcd.endpoint).toMatch(/^https:/);
    const store = await EtcdStore.open({
      endpoints: [tlsEtcd.endpoint],
      caFile: file('ca.crt'),
      certFile: file('client.crt'),
      keyFile: file('client.key'),
    });
    open.push(store);
    const r = await store.put('/tls/a', { over: 'tls' });
    const w = collect(store, '/tls/', r.revision);
    await w.upTo(r.revision);
    expect((await store.get('/tls/a'))?.value).toEqual({ over: 'tls' });
    w.watch.cancel();
  });

  it('is refused without a client certificate, or with one from another CA', async () => {
    await expect(
      EtcdStore.open({
        endpoints: [tlsEtcd.endpoint],
        caFile: file('ca.crt'),
        requestTimeoutMs: 3_000,
      }),
    ).rejects.toThrow('failed to read the revision');
    await expect(
      EtcdStore.open({
        endpoints: [tlsEtcd.endpoint],
        caFile: file('ca.crt'),
        certFile: file('stranger.crt'),
        keyFile: file('stranger.key'),
        requestTimeoutMs: 3_000,
      }),
    ).rejects.toThrow('failed to read the revision');
  });

  it('refuses an etcd whose certificate the given CA did not sign', async () => {
    await expect(
      EtcdStore.open({
        endpoints: [tlsEtcd.endpoint],
        caFile: file('other-ca.crt'),
        certFile: file('client.crt'),
        keyFile: file('client.key'),
        requestTimeoutMs: 3_000,
      }),
    ).rejects.toThrow('failed to read the revision');
  });

  // Last in this block: it turns etcd's auth on for good.
  it('works with etcd RBAC that grants only its prefix, without history deltas', async () => {
    const etcdctl = (cert: string, ...args: string[]) =>
      execFileSync(
        'etcdctl',
        [
          `--endpoints=${tlsEtcd.endpoint}`,
          `--cacert=${file('ca.crt')}`,
          `--cert=${file(`${cert}.crt`)}`,
          `--key=${file(`${cert}.key`)}`,
          ...args,
        ],
        { stdio: 'pipe' },
      );
    etcdctl('client', 'user', 'add', 'root', '--no-password');
    etcdctl('client', 'role', 'add', 'root');
    etcdctl('client', 'user', 'grant-role', 'root', 'root');
    etcdctl('client', 'role', 'add', 'weft');
    etcdctl(
      'client',
      'role',
      'grant-permission',
      'weft',
      '--prefix=true',
      'readwrite',
      '/weft-rbac/',
    );
    etcdctl('client', 'user', 'add', 'weft-cp', '--no-password');
    etcdctl('client', 'user', 'grant-role', 'weft-cp', 'weft');
    etcdctl('root', 'auth', 'enable');
    const store = await EtcdStore.open({
      endpoints: [tlsEtcd.endpoint],
      prefix: '/weft-rbac/',
      caFile: file('ca.crt'),
      certFile: file('weft-cp.crt'),
      keyFile: file('weft-cp.key'),
    });
    open.push(store);
    const r = await store.put('/resources/Service/a', { n: 1 });
    expect((await store.list('/resources/')).entries.map((e) => e.key)).toEqual([
      '/resources/Service/a',
    ]);
    const w = collect(store, '/resources/', r.revision);
    await w.upTo(r.revision);
    w.watch.cancel();
    // The history needs the whole keyspace, which this user may not read: none, rather than
    // a control plane that cannot start.
    const to = await store.revision();
    expect(await store.changes('/resources/')).toEqual({ from: to, to, changes: [] });
    // The grant is what etcd enforces: the same user on another prefix is refused.
    await expect(
      EtcdStore.open({
        endpoints: [tlsEtcd.endpoint],
        prefix: '/elsewhere/',
        caFile: file('ca.crt'),
        certFile: file('weft-cp.crt'),
        keyFile: file('weft-cp.key'),
      }),
    ).rejects.toThrow('permission denied');
  });
});
