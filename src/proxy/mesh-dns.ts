// The agent's DNS (15053): `<service>.mesh` answered with the service's virtual IP from the
// mesh view, the rest forwarded. Started by the data plane, or by the agent's master, which
// answers for all its workers (a query is small; one UDP socket needs no spreading).
import type { Registry } from 'prom-client';
import type { AgentConfig } from '../agent/config.js';
import type { MeshView } from '../controlplane-client/mesh-view.js';
import { type DnsServer, startDnsServer } from '../dns/index.js';
import type { Logger } from '../sys/logger.js';

export interface MeshDnsOptions {
  config: AgentConfig;
  /** The mesh view to answer from, read per query (it changes with each snapshot). */
  view: () => MeshView | undefined;
  /** weft-agent-dns.socket's UDP sockets, if systemd passed them. */
  fds: number[] | undefined;
  registry: Registry;
  log: Logger;
}

export function startMeshDns(opts: MeshDnsOptions): Promise<DnsServer> {
  const { capture } = opts.config;
  const dnsHosts = capture.ipv6 ? ['127.0.0.1', '::1'] : ['127.0.0.1'];
  // weft-agent-dns.socket holds UDP 127.0.0.1:15053 then [::1]:15053, in that order: queries
  // wait in them during a restart instead of failing. TCP (the truncation fallback) is ours.
  const dnsFds = opts.fds ?? [];
  return startDnsServer({
    host: dnsHosts,
    udpFds: Object.fromEntries(
      dnsHosts.flatMap((h, i) => (dnsFds[i] === undefined ? [] : [[h, dnsFds[i]]])),
    ),
    port: capture.dns.port,
    resolve: (name) => {
      const view = opts.view();
      const vip = view?.services.get(name)?.vip;
      return vip === undefined && !view?.services.has(name)
        ? undefined
        : { v4: vip ? [vip] : [], v6: [] };
    },
    registry: opts.registry,
    log: opts.log,
  });
}
