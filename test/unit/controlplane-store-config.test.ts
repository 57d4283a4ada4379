// Where the control plane keeps its state, as the config file and the command line say it:
// the file store by default, etcd with its endpoints and TLS files; every field checked when
// the config is read, naming the field or the flag, and nothing accepted that is not used.
import { describe, expect, it } from 'vitest';
import {
  applyStoreFlags,
  parseControlPlaneConfig,
  type StoreFlags,
} from '../../src/controlplane/config.js';

const parse = (store: unknown) => parseControlPlaneConfig({ store }, 'cp.yaml');

describe('store in the config file', () => {
  it('defaults to the file store', () => {
    expect(parseControlPlaneConfig({}, 'cp.yaml').store).toEqual({ type: 'file' });
  });

  it('takes etcd with its endpoints, defaulting the prefix', () => {
    expect(parse({ type: 'etcd', endpoints: ['http://10.0.0.1:2379'] }).store).toEqual({
      type: 'etcd',
      endpoints: ['http://10.0.0.1:2379'],
      prefix: '/weft/',
    });
  });

  const refused: Array<[string, unknown, string]> = [
    ['an unknown store', { type: 'consul' }, 'cp.yaml: store.type'],
    ['etcd without endpoints', { type: 'etcd' }, 'cp.yaml: store.endpoints: required'],
    [
      'an endpoint without a scheme',
      { type: 'etcd', endpoints: ['10.0.0.1:2379'] },
      'store.endpoints: 10.0.0.1:2379 is not a URL: write http://HOST:PORT',
    ],
    [
      'an endpoint with another scheme',
      { type: 'etcd', endpoints: ['unix://etcd:2379'] },
      'store.endpoints: unix://etcd:2379: the scheme must be http:// or https://',
    ],
    [
      'an endpoint without a port',
      { type: 'etcd', endpoints: ['http://etcd1'] },
      'store.endpoints: http://etcd1: write the client URL as SCHEME://HOST:PORT',
    ],
    [
      'TLS files with http:// endpoints',
      { type: 'etcd', endpoints: ['http://10.0.0.1:2379'], caFile: '/etc/weft/etcd-ca.pem' },
      'store.caFile: TLS files are given but the endpoints are http://',
    ],
    [
      'a certificate without its key',
      { type: 'etcd', endpoints: ['https://10.0.0.1:2379'], certFile: '/c.pem' },
      'store.keyFile: a client certificate needs both',
    ],
    [
      'a prefix without slashes',
      { type: 'etcd', endpoints: ['http://10.0.0.1:2379'], prefix: 'weft' },
      'store.prefix: "weft" must start and end with "/"',
    ],
    [
      'a field the file store does not use',
      { type: 'file', endpoints: ['http://10.0.0.1:2379'] },
      'store.endpoints: unknown field',
    ],
    [
      'an unknown etcd field',
      { type: 'etcd', endpoints: ['http://10.0.0.1:2379'], username: 'root' },
      'store.username: unknown field',
    ],
  ];
  for (const [what, store, message] of refused) {
    it(`refuses ${what}`, () => expect(() => parse(store)).toThrow(message));
  }

  it('takes a KEK file for the CA key sealed in etcd, and refuses it on the file store', () => {
    const etcd = { type: 'etcd', endpoints: ['http://10.0.0.1:2379'] };
    expect(
      parseControlPlaneConfig({ store: etcd, caKekFile: '/etc/weft/ca-kek' }, 'cp.yaml').caKekFile,
    ).toBe('/etc/weft/ca-kek');
    expect(() => parseControlPlaneConfig({ caKekFile: '/etc/weft/ca-kek' }, 'cp.yaml')).toThrow(
      'cp.yaml: caKekFile: needs store type etcd: the embedded store keeps the CA key in the data directory',
    );
  });
});

describe('store flags of weft controlplane', () => {
  const file = parseControlPlaneConfig({}, 'cp.yaml');
  const etcdFile = parse({
    type: 'etcd',
    endpoints: ['https://10.0.0.1:2379'],
    caFile: '/ca.pem',
    certFile: '/c.pem',
    keyFile: '/k.pem',
  });

  it('switches to etcd with --store etcd and --etcd-endpoints', () => {
    const flags: StoreFlags = {
      store: 'etcd',
      etcdEndpoints: 'https://10.0.0.1:2379, https://10.0.0.2:2379',
      etcdCa: '/ca.pem',
      etcdCert: '/c.pem',
      etcdKey: '/k.pem',
    };
    expect(applyStoreFlags(file, flags).store).toEqual({
      type: 'etcd',
      endpoints: ['https://10.0.0.1:2379', 'https://10.0.0.2:2379'],
      prefix: '/weft/',
      caFile: '/ca.pem',
      certFile: '/c.pem',
      keyFile: '/k.pem',
    });
  });

  it('overrides one field of the config file’s etcd store, keeping the others', () => {
    const store = applyStoreFlags(etcdFile, { etcdEndpoints: 'https://10.0.0.9:2379' }).store;
    expect(store).toMatchObject({ endpoints: ['https://10.0.0.9:2379'], caFile: '/ca.pem' });
  });

  it('takes --ca-kek-file with etcd', () => {
    expect(applyStoreFlags(etcdFile, { caKekFile: '/etc/weft/ca-kek' }).caKekFile).toBe(
      '/etc/weft/ca-kek',
    );
  });

  it('refuses a KEK kept from the config file when --store file goes back to the file store', () => {
    const withKek = { ...etcdFile, caKekFile: '/etc/weft/ca-kek' };
    expect(() => applyStoreFlags(withKek, { store: 'file' })).toThrow(
      'caKekFile needs store type etcd',
    );
  });

  it('goes back to the file store with --store file', () => {
    expect(applyStoreFlags(etcdFile, { store: 'file' }).store).toEqual({ type: 'file' });
  });

  const refused: Array<[string, StoreFlags, string]> = [
    ['an unknown store', { store: 'consul' }, '--store consul: must be file or etcd'],
    [
      'etcd flags without --store etcd',
      { etcdEndpoints: 'http://10.0.0.1:2379' },
      '--etcd-endpoints needs --store etcd',
    ],
    [
      'etcd flags with --store file',
      { store: 'file', etcdCa: '/ca.pem' },
      '--etcd-ca needs --store etcd',
    ],
    [
      '--ca-kek-file on the file store',
      { caKekFile: '/etc/weft/ca-kek' },
      '--ca-kek-file needs store type etcd',
    ],
    ['--store etcd without endpoints', { store: 'etcd' }, '--store etcd needs --etcd-endpoints'],
    [
      'a bad endpoint',
      { store: 'etcd', etcdEndpoints: 'etcd1:2379' },
      '--etcd-endpoints (store.endpoints): etcd1:2379',
    ],
    [
      'a certificate without its key',
      { store: 'etcd', etcdEndpoints: 'https://10.0.0.1:2379', etcdCert: '/c.pem' },
      '--etcd-key (store.keyFile): a client certificate needs both',
    ],
  ];
  for (const [what, flags, message] of refused) {
    it(`refuses ${what}`, () => expect(() => applyStoreFlags(file, flags)).toThrow(message));
  }
});
