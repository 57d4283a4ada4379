// Upstream nameserver addresses as operators write them: `10.0.0.2`, `10.0.0.2:5353`,
// `fd00::53`, `[fd00::53]:5353` (brackets are how a port follows an IPv6 address).
import { isIP } from 'node:net';
import { WeftError } from '../errors.js';

export interface UpstreamAddress {
  host: string;
  port: number;
  family: 4 | 6;
  /** `host:port` or `[host]:port`: log lines and the metric label. */
  label: string;
}

const DNS_PORT = 53;

export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Parses one upstream; throws WEFT_E_CONFIG naming `field` when it is not an address. */
export function parseUpstream(spec: string, field = 'upstreams'): UpstreamAddress {
  const text = spec.trim();
  let host = text;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1] ?? '';
    portText = bracketed[2];
  } else if (isIP(text) === 0) {
    const colon = text.lastIndexOf(':');
    // A bare IPv6 address has colons too; only an IPv4 address may precede `:port`.
    if (colon > 0 && isIP(text.slice(0, colon)) === 4) {
      host = text.slice(0, colon);
      portText = text.slice(colon + 1);
    }
  }
  const family = isIP(host);
  if (family === 0) {
    throw new WeftError(
      'WEFT_E_CONFIG',
      `${field}: "${spec}" is not an IP address, "ip:port" or "[ipv6]:port" (names cannot be used: resolving them would need DNS)`,
    );
  }
  const port = portText === undefined ? DNS_PORT : Number(portText);
  if (!/^\d*$/.test(portText ?? '') || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new WeftError('WEFT_E_CONFIG', `${field}: "${spec}" has port ${portText}; use 1-65535`);
  }
  return { host, port, family: family as 4 | 6, label: formatHostPort(host, port) };
}
