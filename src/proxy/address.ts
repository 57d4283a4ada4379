// Socket address helpers shared by the stages: Node reports IPv4 peers of dual-stack sockets
// as "::ffff:a.b.c.d"; weft logs, matches and dials them as plain IPv4.
import { isIPv4, isIPv6 } from 'node:net';
import type { SocketAddress } from '../native/socket-ops.js';

export function unmapV4(address: string): string {
  return address.toLowerCase().startsWith('::ffff:') && isIPv4(address.slice(7))
    ? address.slice(7)
    : address;
}

const MAPPED_V4 = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/;

/**
 * One spelling per address, so that a map key matches however a peer wrote it: IPv6 in its
 * compressed lowercase form (RFC 5952, as the URL parser writes it), an IPv4-mapped one as
 * plain IPv4. Anything else is returned as given.
 */
export function canonicalAddress(address: string): string {
  if (!isIPv6(address)) return address;
  const v6 = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const mapped = MAPPED_V4.exec(v6);
  if (!mapped) return v6;
  const [hi, lo] = [Number.parseInt(mapped[1]!, 16), Number.parseInt(mapped[2]!, 16)];
  return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
}

export function formatAddress(a: SocketAddress | { address: string; port: number }): string {
  return a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

export function elapsedMs(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e6;
}
