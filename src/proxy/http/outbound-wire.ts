// The outbound HTTP stack's pure pieces: the wire headers of a request riding the tunnel (the
// contract between agents), gRPC's status and trailers as the app gets them, and the request
// head of an Upgrade or CONNECT replayed to the endpoint. The agent's own answers: agent-answer.ts.

import type { OutgoingHttpHeaders } from 'node:http2';
import { STATUS_CODES } from '../../sys/node-http.js';
import type { AnswerReason } from '../close-reason.js';
import { CLIENT_ADDRESS_HEADER, formatClientAddress } from '../tunnel/client-address.js';
import type { TunnelTarget } from '../tunnel/types.js';
import type { AgentAnswerParts } from './agent-answer.js';
import type { HeaderMap, L7Request } from './types.js';
import { ORIG_PROTO_HEADER, ORIG_PROTO_HTTP1, TARGET_HEADER } from './wire-headers.js';

/**
 * An HTTP/2 request to the peer agent: the app's method, authority and path, its end-to-end
 * fields, and weft's own: the chosen endpoint, the original protocol when the app spoke
 * HTTP/1.x (the peer restores it), and the app's address.
 */
export function tunnelRequestHeaders(
  req: Pick<L7Request, 'method' | 'authority' | 'path' | 'headers' | 'version'>,
  target: TunnelTarget,
  client: TunnelTarget | undefined,
): OutgoingHttpHeaders {
  // One object filled in place, fields in the order a spread would give them: no temporary
  // objects per request (a conditional spread allocates one and copies it).
  const out: OutgoingHttpHeaders = {};
  const headers = req.headers;
  for (const name in headers) out[name] = headers[name];
  out[':method'] = req.method;
  out[':scheme'] = 'http';
  out[':authority'] = req.authority;
  out[':path'] = req.path;
  out[TARGET_HEADER] = formatTarget(target);
  if (req.version === '1.1') out[ORIG_PROTO_HEADER] = ORIG_PROTO_HTTP1;
  if (client) out[CLIENT_ADDRESS_HEADER] = formatClientAddress(client);
  return out;
}

function formatTarget(t: TunnelTarget): string {
  return t.address.includes(':') ? `[${t.address}]:${t.port}` : `${t.address}:${t.port}`;
}

/** gRPC's content types (agent-answer.ts): the outbound exchange asks by content-type. */
export { isGrpcContentType as isGrpc } from './agent-answer.js';

/**
 * Why the sending agent's exchange answers a request itself (agent-answer.ts makes the answer:
 * 503 nowhere to send it, 502 the upstream failed it, 504 a timeout cut it). The circuit
 * breaker's 503 circuit_open comes from its own stage, before the exchange.
 */
export type AgentReason = Extract<
  AnswerReason,
  | 'no_healthy_endpoint'
  | 'no_identity'
  | 'upstream_failed'
  | 'connect_timeout'
  | 'per_try_timeout'
  | 'request_timeout'
  | 'idle_timeout'
>;

/**
 * A gRPC response whose HEADERS already carry grpc-status is trailers-only (gRPC over HTTP/2:
 * "Trailers-Only"): it must reach the client as one HEADERS frame with END_STREAM, or gRPC
 * clients look for the status in trailers that never come.
 */
export function isTrailersOnly(headers: HeaderMap): boolean {
  return headers['grpc-status'] !== undefined;
}

/** The gRPC status of a response: from its trailers, else its (trailers-only) headers. */
export function grpcStatusOf(
  headers: HeaderMap,
  trailers: HeaderMap | undefined,
): number | undefined {
  const raw = trailers?.['grpc-status'] ?? headers['grpc-status'];
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (value === undefined || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}

/** The client takes trailers on HTTP/1.1 only when it said so (RFC 9110 section 10.1.4). */
export function acceptsTrailers(te: string | undefined): boolean {
  return te?.split(',').some((t) => t.trim().toLowerCase() === 'trailers') === true;
}

/**
 * The request head of an Upgrade or CONNECT as the app sent it (its raw header lines, in
 * order, hop-by-hop ones included: the endpoint must see the Upgrade), with weft's own fields
 * dropped so an app cannot steer anything behind.
 */
export function rawRequestHead(
  method: string,
  url: string,
  httpVersion: string,
  rawHeaders: readonly string[],
): string {
  let head = `${method} ${url} HTTP/${httpVersion}\r\n`;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.toLowerCase().startsWith('weft-')) continue;
    head += `${name}: ${rawHeaders[i + 1]}\r\n`;
  }
  return `${head}\r\n`;
}

/** A raw HTTP/1.1 answer for a connection that is about to close (a refused Upgrade). */
export function rawAnswer(answer: AgentAnswerParts): string {
  const phrase = STATUS_CODES[answer.status] ?? '';
  let head = `HTTP/1.1 ${answer.status} ${phrase}\r\nconnection: close\r\n`;
  for (const [name, value] of Object.entries(answer.headers)) head += `${name}: ${value}\r\n`;
  return `${head}\r\n${answer.text}`;
}
