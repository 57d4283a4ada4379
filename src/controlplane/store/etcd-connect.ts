// How the control plane reaches etcd: the options (endpoints, key prefix, TLS files) checked
// when the store is built, naming the field at fault, and the etcd3 client made from them.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { checkServerIdentity } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { WeftError } from '../../errors.js';
import {
  DEFAULT_ETCD_PREFIX,
  type EtcdConnectOptions,
  etcdOptionsProblem,
} from './etcd-options.js';

export type { EtcdConnectOptions } from './etcd-options.js';

export interface EtcdConnection {
  client: Etcd3;
  /** The key prefix without its trailing slash: store keys ("/nodes/a") are appended to it. */
  root: string;
  endpoints: string[];
  /** The deadline of one request (requestTimeoutMs). */
  requestTimeoutMs: number;
}

function bad(field: string, message: string): WeftError {
  return new WeftError('WEFT_E_CONFIG', `etcd store: ${field}: ${message}`);
}

function readPem(field: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw bad(
      field,
      `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)}): give a readable PEM file`,
    );
  }
}

/** Checks the options and builds the client (no request is sent yet). */
export function connectEtcd(options: EtcdConnectOptions): EtcdConnection {
  const problem = etcdOptionsProblem(options);
  if (problem !== undefined) throw bad(problem.field, problem.message);
  const endpoints = options.endpoints.map((e) => e.trim()).filter((e) => e !== '');
  const tls = endpoints[0]!.startsWith('https:');
  const prefix = options.prefix ?? DEFAULT_ETCD_PREFIX;
  const timeout = options.requestTimeoutMs ?? 10_000;
  if (!(timeout >= 1)) throw bad('requestTimeoutMs', 'must be a positive number of milliseconds');

  const credentials = tls
    ? {
        // Without a CA file the system's trust store checks the members' certificates.
        rootCertificate: options.caFile !== undefined ? readPem('caFile', options.caFile) : null,
        ...(options.certFile !== undefined && options.keyFile !== undefined
          ? {
              certChain: readPem('certFile', options.certFile),
              privateKey: readPem('keyFile', options.keyFile),
            }
          : {}),
      }
    : undefined;
  const client = new Etcd3({
    hosts: endpoints,
    ...(credentials !== undefined
      ? { credentials: credentials as { rootCertificate: Buffer } }
      : {}),
    // Streams (watches, keep-alives) live as long as they are needed; one request does not.
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeout }),
    grpcOptions: { 'grpc.max_receive_message_length': 64 * 1024 * 1024 },
  });
  if (credentials !== undefined) verifyIpHosts(client, credentials);
  return { client, root: prefix.slice(0, -1), endpoints, requestTimeoutMs: timeout };
}

interface PoolHost {
  host: string;
  channelCredentials: grpc.ChannelCredentials;
  channelOptions: grpc.ChannelOptions | undefined;
}

/**
 * grpc-js sends an endpoint's host as the TLS server name, and Node refuses an IP address there
 * (https://127.0.0.1:2379 would never connect). For such a member the server name becomes a
 * placeholder and its certificate is checked against the member's IP address instead, per
 * member: etcd3 builds one channel per host, and those are patched here (etcd3 is pinned to the
 * version whose pool this reads; a different shape fails loudly rather than skip the check).
 */
function verifyIpHosts(
  client: Etcd3,
  credentials: { rootCertificate: Buffer | null; certChain?: Buffer; privateKey?: Buffer },
): void {
  const hosts = (client as unknown as { pool?: { hosts?: PoolHost[] } }).pool?.hosts;
  if (!Array.isArray(hosts))
    throw new WeftError('WEFT_E_INTERNAL', 'etcd3 client internals changed: cannot set up TLS');
  for (const host of hosts) {
    const name = host.host.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
    if (isIP(name) === 0) continue;
    host.channelCredentials = grpc.credentials.createSsl(
      credentials.rootCertificate,
      credentials.privateKey ?? null,
      credentials.certChain ?? null,
      { checkServerIdentity: (_placeholder, cert) => checkServerIdentity(name, cert) },
    );
    host.channelOptions = {
      ...host.channelOptions,
      'grpc.ssl_target_name_override': 'etcd-member.invalid',
    };
  }
}
