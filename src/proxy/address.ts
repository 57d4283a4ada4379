// Socket address helpers shared by the stages: Node reports IPv4 peers of dual-stack sockets
// as "::ffff:a.b.c.d"; weft logs, matches and dials them as plain IPv4.
import { isIPv4 } from 'node:net';
import type { SocketAddress } from '../native/socket-ops.js';

export function unmapV4(address: string): string {
  return address.toLowerCase().startsWith('::ffff:') && isIPv4(address.slice(7))
    ? address.slice(7)
    : address;
}

export function formatAddress(a: SocketAddress | { address: string; port: number }): string {
  return a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

export function elapsedMs(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e6;
}
