// Which addresses are this host's own: the tunnel's receiving end splices streams only to
// local endpoints, so a peer cannot use it as an open proxy into the network behind the host.
// The interface list is read once and re-read (at most once a second) when an address is not
// found, so an address added later is picked up without a syscall per stream.
import { isIPv4, isIPv6 } from 'node:net';
import { networkInterfaces } from 'node:os';
import { unmapV4 } from '../address.js';

export { unmapV4 };

export type LocalAddressCheck = (address: string) => boolean;

const REFRESH_MIN_MS = 1_000;

function isLoopback(address: string): boolean {
  return (isIPv4(address) && address.startsWith('127.')) || address === '::1';
}

function readInterfaces(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const info of list ?? []) out.add(unmapV4(info.address.toLowerCase()));
  }
  return out;
}

/** The default check: loopback, or an address of one of this host's interfaces. */
export function hostAddressCheck(read: () => Set<string> = readInterfaces): LocalAddressCheck {
  let known = read();
  let readAt = Date.now();
  return (raw) => {
    const address = unmapV4(raw.toLowerCase());
    if (!isIPv4(address) && !isIPv6(address)) return false;
    if (isLoopback(address) || known.has(address)) return true;
    if (Date.now() - readAt < REFRESH_MIN_MS) return false;
    known = read();
    readAt = Date.now();
    return known.has(address);
  };
}
