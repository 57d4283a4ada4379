// The etcd store's connection options and their checks, apart from the client (so that the
// control plane's config can check them without loading etcd3): pure, no files, no network.

export interface EtcdConnectOptions {
  /** Client URLs of the etcd members, http:// or https:// (https:// with TLS). */
  endpoints: string[];
  /** Every key weft writes lives under this prefix (default "/weft/"). */
  prefix?: string;
  /** CA bundle (PEM file) that signed the etcd members' server certificates. */
  caFile?: string;
  /** Client certificate and key (PEM files) for etcd's --client-cert-auth; both or neither. */
  certFile?: string;
  keyFile?: string;
  /** Deadline of one request to etcd (default 10 s): a request to an unreachable etcd fails. */
  requestTimeoutMs?: number;
}

export const DEFAULT_ETCD_PREFIX = '/weft/';

export interface EtcdOptionsProblem {
  field: 'endpoints' | 'prefix' | 'caFile' | 'certFile' | 'keyFile';
  message: string;
}

/** What is wrong with the options (the first thing), without touching files or the network. */
export function etcdOptionsProblem(options: EtcdConnectOptions): EtcdOptionsProblem | undefined {
  const endpoints = options.endpoints.map((e) => e.trim()).filter((e) => e !== '');
  if (endpoints.length === 0)
    return {
      field: 'endpoints',
      message: 'at least one etcd client URL is needed, e.g. http://127.0.0.1:2379',
    };
  const schemes = new Set<string>();
  for (const endpoint of endpoints) {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      return {
        field: 'endpoints',
        message: `${endpoint} is not a URL: write http://HOST:PORT or https://HOST:PORT`,
      };
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      return { field: 'endpoints', message: `${endpoint}: the scheme must be http:// or https://` };
    if (url.port === '' || (url.pathname !== '/' && url.pathname !== ''))
      return {
        field: 'endpoints',
        message: `${endpoint}: write the client URL as SCHEME://HOST:PORT`,
      };
    schemes.add(url.protocol);
  }
  if (schemes.size > 1)
    return {
      field: 'endpoints',
      message: 'mixes http:// and https://: every member is reached the same way',
    };
  if ((options.certFile === undefined) !== (options.keyFile === undefined))
    return {
      field: options.certFile === undefined ? 'certFile' : 'keyFile',
      message: 'a client certificate needs both its certificate and its key file',
    };
  if (!schemes.has('https:') && (options.caFile ?? options.certFile) !== undefined)
    return {
      field: options.caFile !== undefined ? 'caFile' : 'certFile',
      message: 'TLS files are given but the endpoints are http://: use https:// endpoints',
    };
  const prefix = options.prefix ?? DEFAULT_ETCD_PREFIX;
  if (!prefix.startsWith('/') || !prefix.endsWith('/') || prefix.length < 2)
    return {
      field: 'prefix',
      message: `${JSON.stringify(prefix)} must start and end with "/", e.g. /weft/`,
    };
  return undefined;
}
