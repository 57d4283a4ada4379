// Whether a connection from this host to address:port would reach one of the TCP listeners on
// that port (as sock_diag lists them), decided without touching the application: the
// wildcards 0.0.0.0 and :: count (:: not for IPv4 when IPV6_V6ONLY), and IPv4-mapped IPv6
// addresses (::ffff:10.0.0.1) are IPv4, on either side.
import net from 'node:net';

export interface Listener {
  address: string;
  family: 4 | 6;
  v6only: boolean;
}

/** 10.0.0.1 for "10.0.0.1" and "::ffff:10.0.0.1"; canonical IPv6 text otherwise. */
function canonical(address: string): { family: 4 | 6; address: string } | undefined {
  const family = net.isIP(address);
  if (family === 4) return { family: 4, address };
  if (family !== 6) return undefined;
  const text = new net.SocketAddress({ address, family: 'ipv6' }).address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  return mapped ? { family: 4, address: mapped[1]! } : { family: 6, address: text };
}

/** True when a listener in `listeners` (all on the port asked about) accepts `address`. */
export function listenerAccepts(listeners: readonly Listener[], address: string): boolean {
  const target = canonical(address);
  if (target === undefined) return false;
  return listeners.some((l) => {
    // An IPv6 socket bound to ::ffff:a.b.c.d takes IPv4 connections to a.b.c.d.
    const bound = canonical(l.address);
    if (bound === undefined) return false;
    if (l.family === 6 && bound.family === 6 && bound.address === '::')
      return target.family === 6 || !l.v6only;
    if (bound.family !== target.family) return false;
    return bound.address === target.address || bound.address === '0.0.0.0';
  });
}
