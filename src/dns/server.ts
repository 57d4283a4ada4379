// The agent's DNS server (127.0.0.1:15053, where the capture rules send local UDP/53):
// `<service>.<domain>` is answered from the mesh, every other name is forwarded to the
// host's upstream nameservers.
//
// Loop safety: the agent forwards as its own user, which the capture rules exclude, so its
// upstream queries leave the host instead of coming back here. An upstream equal to one
// of the server's own addresses and port is refused at start (WEFT_E_CONFIG), and a
// forwarded query that is captured anyway is recognised by its source port and answered
// SERVFAIL with a warning instead of circling.
import { BlockList, isIP } from 'node:net';
import { WeftError } from '../errors.js';
import { Forwarder } from './forwarder.js';
import { listenAll } from './listeners.js';
import { createDnsMetrics } from './metrics.js';
import { type DnsServerOptions, type ResolvedDnsOptions, resolveDnsOptions } from './options.js';
import { createQueryHandler } from './query-handler.js';
import { readSystemNameservers } from './resolv-conf.js';
import { formatHostPort, parseUpstream, type UpstreamAddress } from './upstream-address.js';

export interface DnsServerAddress {
  host: string;
  port: number;
}

export interface DnsServer {
  /** The first listening address (UDP and TCP); every host shares its port. */
  readonly address: DnsServerAddress;
  readonly addresses: readonly DnsServerAddress[];
  /** Stops listening and fails the queries being forwarded. */
  close(): Promise<void>;
}

/** When resolv.conf names no nameserver glibc asks 127.0.0.1; so do we. */
const GLIBC_DEFAULT_NAMESERVER = '127.0.0.1';

export async function startDnsServer(options: DnsServerOptions): Promise<DnsServer> {
  const opts = resolveDnsOptions(options);
  const log = opts.log;
  const upstreams = chooseUpstreams(opts);
  if (opts.port !== 0) refuseOwnAddress(upstreams, opts.hosts, opts.port);

  const metrics = createDnsMetrics(opts.registry);
  const forwarder = new Forwarder({
    upstreams,
    timeoutMs: opts.upstreamTimeoutMs,
    maxInflight: opts.maxInflight,
    metrics,
    log,
  });
  const handle = createQueryHandler({
    zone: { domain: opts.domain, ttl: opts.ttl, resolve: opts.resolve },
    forwarder,
    metrics,
    log,
  });
  const listeners = await listenAll(opts.hosts, opts.port, handle, log, options.udpFds);
  const addresses = opts.hosts.map((host) => ({ host, port: listeners.port }));
  try {
    refuseOwnAddress(upstreams, opts.hosts, listeners.port);
  } catch (err) {
    await listeners.close();
    throw err;
  }
  log.info(
    {
      listen: addresses.map((a) => formatHostPort(a.host, a.port)),
      domain: opts.domain,
      upstreams: upstreams.map((u) => u.label),
    },
    'dns server listening',
  );

  let closed: Promise<void> | undefined;
  return {
    address: addresses[0]!,
    addresses,
    close() {
      closed ??= (async () => {
        forwarder.close();
        await listeners.close();
      })();
      return closed;
    },
  };
}

/** The configured upstreams, or the host's nameservers, with a log line saying which. */
function chooseUpstreams(opts: ResolvedDnsOptions): UpstreamAddress[] {
  if (opts.upstreams) {
    return opts.upstreams.map((u, i) => parseUpstream(u, `dns upstreams[${i}]`));
  }
  const found = readSystemNameservers(opts.resolvConf);
  if (found.problem) {
    opts.log.warn(
      { resolv_conf: opts.resolvConf, upstreams: [`${GLIBC_DEFAULT_NAMESERVER}:53`] },
      `dns: ${found.problem}; forwarding names outside .${opts.domain} to ${GLIBC_DEFAULT_NAMESERVER}:53 as glibc would`,
    );
    return [parseUpstream(GLIBC_DEFAULT_NAMESERVER)];
  }
  const upstreams = found.nameservers.map((ns) => parseUpstream(ns, opts.resolvConf));
  opts.log.info(
    { resolv_conf: opts.resolvConf, upstreams: upstreams.map((u) => u.label) },
    `dns: forwarding names outside .${opts.domain} to the nameservers of ${opts.resolvConf}: ${upstreams.map((u) => u.label).join(', ')}`,
  );
  return upstreams;
}

/** Throws WEFT_E_CONFIG when an upstream is the server itself: forwarding would loop. */
function refuseOwnAddress(upstreams: UpstreamAddress[], hosts: string[], port: number): void {
  for (const upstream of upstreams) {
    if (upstream.port !== port) continue;
    if (hosts.some((host) => sameOrCovered(host, upstream.host))) {
      throw new WeftError(
        'WEFT_E_CONFIG',
        `dns upstreams: ${upstream.label} is this DNS server's own address; forwarding to it would loop. Set the upstreams to the host's real nameservers`,
      );
    }
  }
}

/** True when `upstream` is `host`, or `host` is a wildcard and `upstream` a loopback address. */
function sameOrCovered(host: string, upstream: string): boolean {
  const type = isIP(host) === 6 ? 'ipv6' : 'ipv4';
  const list = new BlockList();
  if (host === '0.0.0.0' || host === '::') {
    list.addSubnet('127.0.0.0', 8, 'ipv4');
    list.addAddress('::1', 'ipv6');
  } else {
    list.addAddress(host, type);
  }
  return list.check(upstream, isIP(upstream) === 6 ? 'ipv6' : 'ipv4');
}
