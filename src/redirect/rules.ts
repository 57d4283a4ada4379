// The rules weft wants for one IP family, derived from the capture config alone: a pure
// function, so every rule can be checked by table-driven tests without root.
//
// Each rule is written exactly as iptables-save prints it back (`-p tcp -m tcp --dport`,
// `--set-xmark`, hex marks, `--on-ip`), so installed rules compare as text in `status`.
//
// Inbound mode. REDIRECT (nat PREROUTING) is the default: it needs no policy routing,
// behaves the same on both families, keeps the client's source address, and the agent
// reads the original destination with SO_ORIGINAL_DST. TPROXY (mangle PREROUTING) avoids
// conntrack NAT and the accepted socket's local address *is* the original destination,
// but it needs an `ip rule`/`ip route` pair per family, a listener opened natively with
// IP_TRANSPARENT, and CAP_NET_ADMIN for the agent; it is there for operators who want it.
//
// Reply path (inbound.preserveClientAddress, either mode). The agent connects to a local
// application from the caller's address, with SO_MARK = the mark; the application's replies
// are addressed to that foreign address and would leave the host. mangle OUTPUT saves the mark
// of the agent's packets into the connection (CONNMARK) and restores it on every packet of the
// connection, the application's included; the kernel routes a packet again when OUTPUT changed
// its mark, and TPROXY's `ip rule fwmark MARK lookup TABLE` with `local default dev lo` delivers
// it to the agent's socket. (Istio's TPROXY mode does the same for its original-source
// connections.)
import type { CaptureConfig } from './config.js';
import type { Family } from './family.js';
import { multiportGroups, type PortRange, uniquePorts } from './ports.js';
import { COMMENT_PREFIX, normalizeState, type WeftState, type WeftTable } from './weft-state.js';

export const CHAINS = {
  outbound: 'WEFT_OUTPUT',
  inbound: 'WEFT_INBOUND',
  dns: 'WEFT_DNS',
  divert: 'WEFT_DIVERT',
  reply: 'WEFT_REPLY',
} as const;

/** Port 22 is never captured inbound, so that a broken agent cannot lock out ssh. */
export const SSH_PORT = 22;

const LOOPBACK: Record<Family, string> = { ipv4: '127.0.0.0/8', ipv6: '::1/128' };
const ANY_ADDRESS: Record<Family, string> = { ipv4: '0.0.0.0', ipv6: '::' };

/** `-A CHAIN MATCHES -m comment --comment "weft:NAME" -j TARGET`, in iptables-save's order. */
function rule(chain: string, matches: string, name: string, target: string): string {
  const m = matches === '' ? '' : `${matches} `;
  return `-A ${chain} ${m}-m comment --comment "${COMMENT_PREFIX}${name}" -j ${target}`;
}

/** The rules weft installs for one family. With ipv6 off, IPv6 gets none. */
export function buildWeftState(config: CaptureConfig, family: Family, agentUid: number): WeftState {
  if (family === 'ipv6' && !config.ipv6) return [];
  const nat: WeftTable = { table: 'nat', chains: [], jumps: [] };
  const mangle: WeftTable = { table: 'mangle', chains: [], jumps: [] };

  nat.chains.push({ name: CHAINS.outbound, rules: outboundRules(config, family, agentUid) });
  nat.jumps.push(rule('OUTPUT', '-p tcp', 'outbound', CHAINS.outbound));

  if (config.dns.enabled) {
    nat.chains.push({ name: CHAINS.dns, rules: dnsRules(config, agentUid) });
    nat.jumps.push(rule('OUTPUT', '-p udp -m udp --dport 53', 'dns', CHAINS.dns));
  }

  // Only packets addressed to this host: forwarded traffic (containers, VMs, routing)
  // is not for local services and must pass untouched.
  const inboundJump = rule(
    'PREROUTING',
    '-p tcp -m addrtype --dst-type LOCAL',
    'inbound',
    CHAINS.inbound,
  );
  const inboundTable = config.inboundMode === 'tproxy' ? mangle : nat;
  inboundTable.chains.push({ name: CHAINS.inbound, rules: inboundRules(config, family) });
  inboundTable.jumps.push(inboundJump);
  if (config.inboundMode === 'tproxy') {
    mangle.chains.push({ name: CHAINS.divert, rules: divertRules(config) });
  }
  if (config.inbound.preserveClientAddress) {
    mangle.chains.push({ name: CHAINS.reply, rules: replyRules(config) });
    mangle.jumps.push(rule('OUTPUT', '-p tcp', 'reply', CHAINS.reply));
  }
  return normalizeState([mangle, nat]);
}

function outboundRules(config: CaptureConfig, family: Family, agentUid: number): string[] {
  const c = CHAINS.outbound;
  return [
    rule(c, `-m owner --uid-owner ${agentUid}`, 'outbound-agent', 'RETURN'),
    rule(c, `-d ${LOOPBACK[family]}`, 'outbound-loopback', 'RETURN'),
    ...cidrsOf(config.outbound.excludeCidrs, family).map((net) =>
      rule(c, `-d ${net}`, 'outbound-exclude-cidr', 'RETURN'),
    ),
    ...portRules(c, uniquePorts(config.outbound.excludePorts), 'outbound-exclude-ports', 'RETURN'),
    rule(c, '-p tcp', 'outbound-redirect', `REDIRECT --to-ports ${config.outboundPort}`),
  ];
}

function dnsRules(config: CaptureConfig, agentUid: number): string[] {
  const c = CHAINS.dns;
  // The agent's own upstream queries must leave, or DNS would loop through it.
  // REDIRECT on locally generated packets targets 127.0.0.1 / ::1, where the agent listens.
  return [
    rule(c, `-m owner --uid-owner ${agentUid}`, 'dns-agent', 'RETURN'),
    rule(c, '-p udp', 'dns-redirect', `REDIRECT --to-ports ${config.dns.port}`),
  ];
}

function inboundRules(config: CaptureConfig, family: Family): string[] {
  const c = CHAINS.inbound;
  const tproxy = config.inboundMode === 'tproxy';
  const target = tproxy
    ? `TPROXY --on-port ${config.inboundPort} --on-ip ${ANY_ADDRESS[family]} --tproxy-mark ${hexMark(config)}`
    : `REDIRECT --to-ports ${config.inboundPort}`;
  const include = uniquePorts(config.inbound.includePorts);
  return [
    // Packets on lo were sent by this host and already met the outbound rules; the
    // agent's own connections to local apps arrive here and must not loop back to it.
    rule(c, '-i lo', 'inbound-loopback', 'RETURN'),
    // Later packets of flows the agent already accepted go straight to its socket.
    ...(tproxy
      ? [
          rule(c, '-p tcp -m socket --transparent', 'inbound-established', CHAINS.divert),
          // Only new connections are diverted: TPROXY drops a packet of an established flow
          // whose socket is not transparent, such as every reply to this host's own outbound
          // connections (the agent's to the control plane and its peers, the apps' own).
          // (nat REDIRECT sees new connections only, so redirect mode needs no such rule.)
          rule(c, '-p tcp -m conntrack --ctstate RELATED,ESTABLISHED', 'inbound-tracked', 'RETURN'),
        ]
      : []),
    rule(c, `-p tcp -m tcp --dport ${SSH_PORT}`, 'inbound-ssh', 'RETURN'),
    ...portRules(c, agentOwnPorts(config), 'inbound-agent-ports', 'RETURN'),
    ...cidrsOf(config.inbound.excludeCidrs, family).map((net) =>
      rule(c, `-s ${net}`, 'inbound-exclude-cidr', 'RETURN'),
    ),
    ...portRules(c, uniquePorts(config.inbound.excludePorts), 'inbound-exclude-ports', 'RETURN'),
    ...(include.length === 0
      ? [rule(c, '-p tcp', tproxy ? 'inbound-tproxy' : 'inbound-redirect', target)]
      : portRules(c, include, tproxy ? 'inbound-tproxy' : 'inbound-redirect', target)),
  ];
}

function divertRules(config: CaptureConfig): string[] {
  const c = CHAINS.divert;
  return [
    rule(c, '', 'divert-mark', `MARK --set-xmark ${hexMark(config)}`),
    rule(c, '', 'divert-accept', 'ACCEPT'),
  ];
}

/** Policy routing is needed by TPROXY and by the reply path of preserved client addresses. */
export function needsPolicyRouting(config: CaptureConfig): boolean {
  return config.inboundMode === 'tproxy' || config.inbound.preserveClientAddress;
}

function replyRules(config: CaptureConfig): string[] {
  const c = CHAINS.reply;
  const mark = `0x${config.tproxy.mark.toString(16)}`;
  const masks = '--nfmask 0xffffffff --ctmask 0xffffffff';
  return [
    // The agent's connection from a caller's address (its socket carries the mark).
    rule(c, `-m mark --mark ${mark}`, 'reply-save', `CONNMARK --save-mark ${masks}`),
    // Every packet of such a connection, the application's replies among them.
    rule(c, `-m connmark --mark ${mark}`, 'reply-restore', `CONNMARK --restore-mark ${masks}`),
  ];
}

/** The agent's listeners (and its DNS port): never captured inbound. */
export function agentOwnPorts(config: CaptureConfig): PortRange[] {
  const ports = [
    config.agentPorts.admin,
    config.outboundPort,
    config.inboundPort,
    config.agentPorts.tunnel,
    config.agentPorts.metrics,
    config.dns.port,
  ];
  return [...new Set(ports)].sort((a, b) => a - b).map((p) => ({ from: p, to: p }));
}

/** The mark as iptables-save prints it: hex value over a full mask. */
function hexMark(config: CaptureConfig): string {
  return `0x${config.tproxy.mark.toString(16)}/0xffffffff`;
}

function portRules(chain: string, ports: PortRange[], name: string, target: string): string[] {
  return multiportGroups(ports).map((group) =>
    rule(chain, `-p tcp -m multiport --dports ${group}`, name, target),
  );
}

function cidrsOf(cidrs: CaptureConfig['outbound']['excludeCidrs'], family: Family): string[] {
  return [...new Set(cidrs.filter((c) => c.family === family).map((c) => c.text))];
}
