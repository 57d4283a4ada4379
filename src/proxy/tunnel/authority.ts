// The CONNECT `:authority` of a tunnel stream: the target endpoint as `ip:port`, an IPv6
// address in brackets (`[::1]:80`, RFC 3986 host syntax). Names are never accepted: the
// sending agent has already resolved and balanced, the receiver only splices.
import { isIPv4, isIPv6 } from 'node:net';
import type { TunnelTarget } from './types.js';

const PORT = /^[0-9]{1,5}$/;

/** The target of an `ip:port` authority; undefined when it is anything else. */
export function parseAuthority(authority: string | undefined): TunnelTarget | undefined {
  if (authority === undefined) return undefined;
  let host: string;
  let port: string;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close < 0 || authority[close + 1] !== ':') return undefined;
    host = authority.slice(1, close);
    port = authority.slice(close + 2);
    if (!isIPv6(host)) return undefined;
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon < 0) return undefined;
    host = authority.slice(0, colon);
    port = authority.slice(colon + 1);
    if (!isIPv4(host)) return undefined;
  }
  if (!PORT.test(port)) return undefined;
  const n = Number(port);
  if (n < 1 || n > 65535) return undefined;
  return { address: host, port: n };
}

/** `ip:port`, or `[v6]:port`. */
export function formatAuthority(target: TunnelTarget): string {
  return isIPv6(target.address)
    ? `[${target.address}]:${target.port}`
    : `${target.address}:${target.port}`;
}

/** Throws a message naming `field` unless `target` is an IP literal and a valid port. */
export function checkTarget(target: TunnelTarget, field: string): void {
  if (!isIPv4(target?.address ?? '') && !isIPv6(target?.address ?? '')) {
    throw new Error(`${field}.address must be an IPv4 or IPv6 address, got "${target?.address}"`);
  }
  if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65535) {
    throw new Error(`${field}.port must be an integer 1-65535, got ${target.port}`);
  }
}
