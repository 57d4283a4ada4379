// Header fields between apps and agents. Between agents an HTTP request is an HTTP/2 stream
// on the pooled tunnel session; weft's own fields (weft-*) ride it and never reach an app:
// the sending agent drops any an app sent (an app must not steer the receiving agent), the
// receiving agent drops them before the app sees the request.
import type { IncomingHttpHeaders } from 'node:http';
import type { HeaderMap } from './types.js';

/** The workload endpoint a request is for (`ip:port`, as a CONNECT's :authority). */
export const TARGET_HEADER = 'weft-target';
/** Present when the calling app spoke HTTP/1.x: the receiving app is spoken to in HTTP/1.1. */
export const ORIG_PROTO_HEADER = 'weft-orig-proto';
export const ORIG_PROTO_HTTP1 = 'HTTP/1.1';
/**
 * On an answer the receiving agent made because it could not reach its app: the request was
 * delivered to no app, so the sending agent may try another endpoint (value: connect_failed).
 */
export const UNDELIVERED_HEADER = 'weft-undelivered';
/** Why the agent answered a request or a CONNECT itself (HTTP/2 has no reason phrase). */
export const REASON_HEADER = 'weft-reason';

/**
 * Hop-by-hop fields (RFC 9110 section 7.6.1, and the HTTP/2 connection-specific fields of
 * RFC 9113 section 8.2.2): they describe one connection and are never forwarded.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'host',
  'http2-settings',
]);

/**
 * The end-to-end fields of a request or response as received (Node's parsed headers, either
 * version): pseudo-headers, hop-by-hop fields, the fields `Connection` names, and weft's own
 * dropped. `te: trailers` is kept: gRPC needs it and it is the one value HTTP/2 allows.
 */
export function endToEnd(headers: IncomingHttpHeaders): HeaderMap {
  const named = connectionTokens(headers.connection);
  const out: HeaderMap = {};
  // for-in over Node's header object (own, plain properties): no entries array per request.
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name.charCodeAt(0) === COLON || name.startsWith('weft-')) continue;
    if (HOP_BY_HOP.has(name) || named?.has(name)) continue;
    out[name] = value as string | string[];
  }
  if (asksTrailers(headers.te)) out.te = 'trailers';
  return out;
}

/**
 * endToEnd of Node's parse of `[name, value, ...]` (undici's raw headers of the app's HTTP/1.1
 * response, and its trailers) in one pass, without the parsed object in between: names
 * lower-cased, repeats as Node joins them (set-cookie an array, a few fields keep the first).
 */
export function endToEndRaw(raw: readonly (Buffer | string)[]): HeaderMap {
  const out: HeaderMap = {};
  let connection: string | undefined;
  let te: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    // toString(), not String(): the same UTF-8 text at less than half the cost (String() of a
    // Buffer goes through ToPrimitive and toString's encoding checks).
    const name = (raw[i] as Buffer | string).toString().toLowerCase();
    const value = (raw[i + 1] as Buffer | string).toString();
    if (name === 'connection')
      connection = connection === undefined ? value : `${connection}, ${value}`;
    else if (name === 'te') te = te === undefined ? value : `${te}, ${value}`;
    else if (name.charCodeAt(0) !== COLON && !name.startsWith('weft-') && !HOP_BY_HOP.has(name)) {
      const seen = out[name];
      if (seen === undefined) out[name] = name === 'set-cookie' ? [value] : value;
      else if (Array.isArray(seen)) seen.push(value);
      else if (!SINGLE.has(name)) out[name] = `${seen}, ${value}`;
    }
  }
  // The fields Connection names are known only at its end: dropped after (rare: most name
  // only hop-by-hop fields, which never went in).
  if (connection !== undefined)
    for (const name of connectionTokens(connection) ?? [])
      if (Object.hasOwn(out, name)) delete out[name];
  if (asksTrailers(te)) out.te = 'trailers';
  return out;
}

const COLON = 0x3a;

/** Whether a TE field holds `trailers` (the one value kept). */
function asksTrailers(te: string | string[] | undefined): boolean {
  return typeof te === 'string' && te.split(',').some((t) => t.trim().toLowerCase() === 'trailers');
}

/** Fields Node keeps the first of when repeated (node:_http_incoming matchKnownFields). */
const SINGLE = new Set([
  'age',
  'authorization',
  'content-length',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

/** The fields a Connection header names; undefined when there is none (most requests). */
function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const all = Array.isArray(value) ? value.join(',') : value;
  const names = new Set<string>();
  for (const t of all.split(',')) {
    const name = t.trim().toLowerCase();
    if (name !== '') names.add(name);
  }
  return names;
}

/** Header values must not carry CR/LF or non-ASCII; reasons stay short and on one line. */
export function headerSafe(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, ' ').slice(0, 200);
}
