// The key a ringHash balancer hashes a request (or a connection) on, per TrafficPolicy
// `balancer.hashOn`: a header's value, a cookie's value or the client's IP, the first one
// configured that the request has; nothing configured means the client's IP.

import { canonicalAddress } from '../address.js';
import type { HeaderMap } from '../http/types.js';
import type { HashOn } from './balancer.js';

/** What a key can come from: an HTTP request's headers, the calling client's address. */
export interface HashSource {
  headers?: HeaderMap;
  /** The request's authority (`:authority` or Host): what `hashOn.header: host` hashes on. */
  authority?: string;
  /** The calling app's IP (a connection has only this). */
  sourceIp?: string;
}

/** undefined: no key (the balancer picks at random). */
export type HashKeyOf = (source: HashSource) => string | undefined;

/** Prepared once per policy: names lower-cased, the order of sources fixed. */
export function hashKeyOf(hashOn: HashOn | undefined): HashKeyOf {
  const header = hashOn?.header?.toLowerCase();
  const cookie = hashOn?.cookie;
  const sourceIp = hashOn?.sourceIp ?? (header === undefined && cookie === undefined);
  return (source) => {
    if (header !== undefined) {
      // Host travels as :authority (HTTP/2) and is not among the forwarded header fields.
      const value =
        header === 'host'
          ? (source.authority ?? joined(source.headers?.host))
          : joined(source.headers?.[header]);
      if (value) return value;
    }
    if (cookie !== undefined) {
      const value = cookieValue(source.headers?.cookie, cookie);
      if (value) return value;
    }
    if (sourceIp && source.sourceIp) return canonicalAddress(source.sourceIp);
    return undefined;
  };
}

function joined(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}

/** A cookie's value from Cookie headers (HTTP/2 may split them, RFC 9113 8.2.3), unquoted. */
function cookieValue(header: string | string[] | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const line of Array.isArray(header) ? header : [header]) {
    for (const pair of line.split(';')) {
      const eq = pair.indexOf('=');
      if (eq < 0 || pair.slice(0, eq).trim() !== name) continue;
      const value = pair.slice(eq + 1).trim();
      // RFC 6265 4.1.1: a cookie-value may be wrapped in double quotes.
      return value.length >= 2 && value.startsWith('"') && value.endsWith('"')
        ? value.slice(1, -1)
        : value;
    }
  }
  return undefined;
}
