// The shapes of the L7 engine: one HTTP request as every stage of both directions sees it, and
// the response that comes back, whatever carries them (an app's HTTP/1.1 or h2c connection, an
// HTTP/2 stream of the tunnel, or a same-host call handed straight to the inbound stack).
import type { Readable } from 'node:stream';
import type { TunnelTarget } from '../tunnel/types.js';

/** The HTTP version an app spoke: the receiving app is spoken to in the same one (orig-proto). */
export type HttpVersion = '1.1' | '2';

/** Header fields as forwarded: lower-case names, no pseudo-headers, no hop-by-hop fields. */
export type HeaderMap = Record<string, string | string[]>;

export interface L7Request {
  method: string;
  /** `:authority` (HTTP/2) or `Host` (HTTP/1.1), as the app sent it. */
  authority: string;
  /** Origin-form path and query (`:path`). */
  path: string;
  headers: HeaderMap;
  /** The body, streamed (never buffered whole); ends with the request. */
  body: Readable;
  /** What the calling app spoke. */
  version: HttpVersion;
  /** Aborted when the caller goes away: whoever serves the request must cancel it. */
  signal: AbortSignal;
}

export interface L7Response {
  status: number;
  headers: HeaderMap;
  /** The body, streamed; the reader's pace is the upstream's (back pressure end to end). */
  body: Readable;
  /** Trailers (gRPC's grpc-status lives there), known once `body` has ended. */
  trailers: () => HeaderMap | undefined;
  /** Set when the agent answered itself (denied, no endpoint, bad request, ...): why. */
  reason?: string;
}

/** The peer a request comes from, as the inbound stack judges it. */
export interface L7Peer {
  /** The caller's SPIFFE ID (a tunnel peer's certificate, or the same-host caller's workload). */
  spiffeId: string | undefined;
  /** Where the call came from: the peer agent's address, or this host's for a same-host call. */
  address: string;
  port: number;
}

/** One request for the inbound stack: who calls, which local workload, the request. */
export interface InboundCall {
  peer: L7Peer;
  /** The workload endpoint, as `weft-target` (or the same-host caller's pick) names it. */
  target: TunnelTarget;
  /** The original client, when its agent vouched for it (see tunnel/client-address.ts). */
  client: TunnelTarget | undefined;
  /** A client the peer claimed from another address than its own: logged, never used. */
  clientUnverified?: TunnelTarget;
  request: L7Request;
}

/**
 * The inbound stack: authorize, then the local app. It never rejects: every failure is a
 * response the agent makes itself (with `reason` set and the `weft-reason` header).
 */
export type InboundHttpHandler = (call: InboundCall) => Promise<L7Response>;
