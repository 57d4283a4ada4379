// Decides the source address of the agent's connection to a local application: the caller's,
// so that the application sees who called it (a transparent connect), or the agent's own, and
// then why. Pure; connect-local.ts does what it says.
import { isIPv4, isIPv6 } from 'node:net';

export interface Endpoint {
  address: string;
  port: number;
}

/** Why the agent connects from its own address. */
export type FallbackReason =
  /** capture.inbound.preserveClientAddress is false. */
  | 'disabled'
  /** Turned off by a check of the host or by a failure (not permitted, no reply route). */
  | 'unavailable'
  /** The caller's address is unknown (a peer that does not send it). */
  | 'no_client'
  /** The caller or the target is a loopback address: replies could not be routed back. */
  | 'loopback'
  /** The caller is this host: the application sees this host's address either way. */
  | 'same_host'
  /** The caller and the target are of different IP families. */
  | 'family'
  /** IPv6 capture is off, and with it the IPv6 reply routing. */
  | 'ipv6_off'
  /** A link-local caller: its address means nothing without its interface. */
  | 'link_local';

export type SourceChoice =
  | {
      kind: 'client';
      address: string;
      /** The caller's own port, never to be picked again (see TransparentConnectOptions). */
      avoidPort: number;
    }
  | { kind: 'agent'; reason: FallbackReason };

export interface SourceInput {
  /** The config asks for it (capture.inbound.preserveClientAddress). */
  enabled: boolean;
  /** Still usable: the host check passed and no failure turned it off. */
  available: boolean;
  /** IPv6 capture (capture.ipv6) is on, so its reply routing is installed. */
  ipv6: boolean;
  /** The caller, as the agent knows it (plain IPv4 for IPv4, never v4-mapped). */
  client: Endpoint | undefined;
  target: Endpoint;
  isLocalAddress: (address: string) => boolean;
}

function isLoopback(address: string): boolean {
  return (isIPv4(address) && address.startsWith('127.')) || address === '::1';
}

function isLinkLocal(address: string): boolean {
  return (
    (isIPv4(address) && address.startsWith('169.254.')) ||
    (isIPv6(address) && /^fe[89ab][0-9a-f]:/i.test(address))
  );
}

export function chooseSource(input: SourceInput): SourceChoice {
  const agent = (reason: FallbackReason): SourceChoice => ({ kind: 'agent', reason });
  const { client, target } = input;
  if (!input.enabled) return agent('disabled');
  if (!input.available) return agent('unavailable');
  if (client === undefined) return agent('no_client');
  if (isLoopback(client.address) || isLoopback(target.address)) return agent('loopback');
  if (input.isLocalAddress(client.address)) return agent('same_host');
  const v6 = isIPv6(client.address);
  if (v6 !== isIPv6(target.address)) return agent('family');
  if (v6 && !input.ipv6) return agent('ipv6_off');
  if (isLinkLocal(client.address)) return agent('link_local');
  return { kind: 'client', address: client.address, avoidPort: client.port };
}

/** After a transparent connect failed: what to do with this connection, and with the feature. */
export type FailureOutcome =
  /** The application refused, or the caller gave up: connecting from elsewhere changes nothing. */
  | { retry: false }
  /**
   * Connect from the agent's address instead. `disable`: turn preserving off for good now
   * (the kernel refuses it); `disableIfRetryWorks`: turn it off if the retry connects, since
   * then only the reply route failed.
   */
  | { retry: true; disable: boolean; disableIfRetryWorks: boolean };

/** `code` is the errno name behind the failure (ETIMEDOUT for a timeout, ABORT_ERR if aborted). */
export function afterTransparentFailure(code: string | undefined): FailureOutcome {
  switch (code) {
    case 'ECONNREFUSED':
    case 'ABORT_ERR':
      return { retry: false };
    case 'EPERM':
    case 'EACCES':
      return { retry: true, disable: true, disableIfRetryWorks: false };
    case 'ETIMEDOUT':
      return { retry: true, disable: false, disableIfRetryWorks: true };
    default:
      // EADDRINUSE (this caller's source ports are used up), EADDRNOTAVAIL, ...: this one only.
      return { retry: true, disable: false, disableIfRetryWorks: false };
  }
}
