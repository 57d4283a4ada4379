// The DNS server's options, validated and completed with defaults when the server is
// built: a wrong value fails the start with a message naming the option.
import { isIP } from 'node:net';
import type { Registry } from 'prom-client';
import { WeftError } from '../errors.js';
import type { Logger } from '../sys/logger.js';
import type { MeshResolve } from './mesh-answer.js';
import { validateDomain } from './names.js';
import { RESOLV_CONF } from './resolv-conf.js';

export interface DnsServerOptions {
  /** Address(es) to listen on, UDP and TCP each; default '127.0.0.1'. ['127.0.0.1', '::1']
   * covers the IPv6 DNS capture too (its REDIRECT delivers to ::1). */
  host?: string | readonly string[];
  /** Default 15053; 0 picks a free port (shared by every host). */
  port?: number;
  /** The mesh domain; default 'mesh'. */
  domain?: string;
  /** The mesh's own names (see MeshResolve). */
  resolve: MeshResolve;
  /** 'ip', 'ip:port' or '[ipv6]:port'; default: the nameservers of /etc/resolv.conf. */
  upstreams?: readonly string[];
  /** Per upstream attempt; default 2000. */
  upstreamTimeoutMs?: number;
  /** TTL of mesh answers in seconds; default 5. */
  ttl?: number;
  /** Queries forwarded at once before SERVFAIL; default 1024. */
  maxInflight?: number;
  /** Where weft_dns_* metrics are registered; none: no metrics. */
  registry?: Registry;
  log: Logger;
  /** Read for default upstreams; default /etc/resolv.conf (tests point elsewhere). */
  resolvConf?: string;
  /** Bound UDP sockets to adopt, by host (systemd socket activation keeps them across
   * restarts); a host without one is bound here. */
  udpFds?: Readonly<Record<string, number>>;
}

export interface ResolvedDnsOptions {
  hosts: string[];
  port: number;
  domain: string;
  resolve: MeshResolve;
  upstreams: readonly string[] | undefined;
  upstreamTimeoutMs: number;
  ttl: number;
  maxInflight: number;
  registry: Registry | undefined;
  log: Logger;
  resolvConf: string;
}

function fail(field: string, message: string): never {
  throw new WeftError('WEFT_E_CONFIG', `dns ${field}: ${message}`);
}

function integer(field: string, value: number | undefined, def: number, min: number, max: number) {
  const v = value ?? def;
  if (!Number.isInteger(v) || v < min || v > max) {
    fail(field, `must be an integer from ${min} to ${max}, got ${value}`);
  }
  return v;
}

export function resolveDnsOptions(opts: DnsServerOptions): ResolvedDnsOptions {
  if (typeof opts.resolve !== 'function')
    fail('resolve', 'must be a function (service) => addresses');
  if (!opts.log || typeof opts.log.child !== 'function') fail('log', 'must be a pino logger');
  const hostList = typeof opts.host === 'string' ? [opts.host] : [...(opts.host ?? ['127.0.0.1'])];
  if (hostList.length === 0) fail('host', 'must name at least one address');
  for (const h of hostList) {
    if (isIP(h) === 0) fail('host', `"${h}" is not an IP address`);
  }
  if (opts.upstreams !== undefined && opts.upstreams.length === 0) {
    fail('upstreams', 'must list at least one nameserver, or be left out to use /etc/resolv.conf');
  }
  return {
    hosts: [...new Set(hostList)],
    port: integer('port', opts.port, 15053, 0, 65535),
    domain: validateDomain(opts.domain ?? 'mesh', 'dns domain'),
    resolve: opts.resolve,
    upstreams: opts.upstreams,
    upstreamTimeoutMs: integer('upstreamTimeoutMs', opts.upstreamTimeoutMs, 2000, 1, 60_000),
    ttl: integer('ttl', opts.ttl, 5, 0, 86_400),
    maxInflight: integer('maxInflight', opts.maxInflight, 1024, 1, 65_536),
    registry: opts.registry,
    log: opts.log,
    resolvConf: opts.resolvConf ?? RESOLV_CONF,
  };
}
