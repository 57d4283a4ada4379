// The `weft-client-addr` header of a CONNECT: the original client of the connection
// (`ip:port`, `[v6]:port`), which the sending agent captured, so that the receiving agent can
// log it and connect to the application from it. It is an authenticated mesh peer's claim
// about a client on its own host: it never takes part in authorization (which judges the
// peer's SPIFFE ID), anything but one canonical unicast address and a port is refused, and
// it is used only for the address the peer's tunnel connection comes from (vouchedClient).
import { isIPv4, isIPv6 } from 'node:net';
import { canonicalAddress } from '../address.js';
import { formatAuthority, parseAuthority } from './authority.js';
import type { TunnelTarget } from './types.js';

export const CLIENT_ADDRESS_HEADER = 'weft-client-addr';

/** `[` + 39 characters of IPv6 + `]:65535`. */
const MAX_LENGTH = 47;

export type ClientAddressParse =
  | { ok: true; client: TunnelTarget | undefined }
  | { ok: false; reason: string };

export function formatClientAddress(client: TunnelTarget): string {
  return formatAuthority(client);
}

/** Why an address cannot be a caller's, or undefined when it can. */
function notUnicast(address: string): string | undefined {
  if (isIPv4(address)) {
    const first = Number(address.split('.')[0]);
    if (address === '0.0.0.0') return 'the unspecified address';
    if (first === 127) return 'a loopback address';
    if (first >= 224 && first <= 239) return 'a multicast address';
    if (address === '255.255.255.255') return 'the broadcast address';
    return undefined;
  }
  if (address === '::') return 'the unspecified address';
  if (address === '::1') return 'a loopback address';
  if (/^ff[0-9a-f]{2}:/.test(address)) return 'a multicast address'; // ff00::/8
  return undefined;
}

/** One spelling only: RFC 5952 for IPv6 (lowercase, compressed), never IPv4-mapped. */
function isCanonical(address: string): boolean {
  if (!isIPv6(address)) return true;
  try {
    return canonicalAddress(address) === address;
  } catch {
    return false; // a zone ("%eth0") or anything else the URL parser refuses
  }
}

/** The header's value as Node gives it: absent, a string, or (repeated) an array or joined. */
export function parseClientAddress(value: unknown): ClientAddressParse {
  if (value === undefined) return { ok: true, client: undefined };
  const bad = (why: string): ClientAddressParse => ({
    ok: false,
    reason: `${CLIENT_ADDRESS_HEADER} ${why}`,
  });
  if (typeof value !== 'string') return bad('must be sent once');
  const shown = JSON.stringify(value.slice(0, MAX_LENGTH));
  if (value.length > MAX_LENGTH) return bad(`${shown}... is too long to be ip:port`);
  const client = parseAuthority(value);
  if (client === undefined) return bad(`${shown} is not ip:port`);
  const problem = callerAddressProblem(client.address);
  if (problem !== undefined) return bad(`${shown} is ${problem}`);
  return { ok: true, client };
}

/**
 * Why an IP address (as parseAuthority gives it) cannot be sent as a caller's, or undefined
 * when it can: the header's own check, for the sending side to ask without formatting and
 * parsing a header per connection.
 */
export function callerAddressProblem(address: string): string | undefined {
  if (!isCanonical(address)) return 'not in canonical form (RFC 5952, IPv4 unmapped)';
  const notCaller = notUnicast(address);
  return notCaller === undefined ? undefined : `${notCaller}, not a caller's`;
}

/** A claimed client, and whether the receiving agent may act on it. */
export interface VouchedClient {
  /** The client to connect from and log as `src`: the claim, when the peer can vouch for it. */
  client: TunnelTarget | undefined;
  /** A claim the peer cannot vouch for: kept for the log, used for nothing else. */
  unverified: TunnelTarget | undefined;
}

/**
 * A peer speaks only for clients on its own host, and its host's address is the one its
 * tunnel connection came from (verified by the handshake's socket, not by the peer). A claim
 * of another address is not used: a compromised node naming, say, an operator's jump host
 * would otherwise reach an application that trusts source addresses as that host. Such an
 * application then sees the agent, as without the header (a multi-homed caller whose app used
 * another local address than the tunnel does falls back the same way).
 */
export function vouchedClient(
  claimed: TunnelTarget | undefined,
  peerAddress: string,
): VouchedClient {
  if (claimed === undefined) return { client: undefined, unverified: undefined };
  return canonicalAddress(claimed.address) === canonicalAddress(peerAddress)
    ? { client: claimed, unverified: undefined }
    : { client: undefined, unverified: claimed };
}
