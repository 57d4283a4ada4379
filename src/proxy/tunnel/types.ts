// The shapes both ends of the agent-to-agent tunnel (HTTP/2 CONNECT over mTLS, port 15008)
// share: targets, identities, the authorization hook and the per-stream access record.
import type { AnswerReason, CloseReason } from '../close-reason.js';

/** Where a CONNECT stream goes: an IP literal (v4 or v6, never a name) and a TCP port. */
export interface TunnelTarget {
  address: string;
  port: number;
}

/** The key and certificate chain (PEM) a tunnel end presents. */
export interface TlsIdentity {
  key: string;
  /** The leaf first, then any intermediates. */
  cert: string;
}

/** The workload (or node) identity a client opens streams as. */
export interface TunnelIdentity {
  spiffeId: string;
  key: string;
  cert: string;
}

/** The verified peer of a server session: its SPIFFE ID and where it connected from. */
export interface TunnelPeer {
  spiffeId: string;
  /** Serial number of the certificate the peer presented (hex, uppercase, as Node prints it). */
  certSerial: string;
  address: string;
  port: number;
}

export interface AuthorizeRequest {
  peer: TunnelPeer;
  target: TunnelTarget;
}

/** `rateLimited`: refused by the target service's rate limit (429, not 403). */
export type AuthorizeDecision =
  | { allow: true }
  | { allow: false; reason: string; rateLimited?: { retryAfter: number } };

/** The inbound authorization decision for one CONNECT stream (AuthorizationPolicy at L4). */
export type AuthorizeHook = (
  request: AuthorizeRequest,
) => AuthorizeDecision | Promise<AuthorizeDecision>;

/** Why a server-side stream ended. */
/**
 * How a tunnel stream ended, on the receiving side (close-reason.ts says what each means): done,
 * client_reset (the tunnel client reset it, or its session died), upstream_reset (the local
 * target broke after connecting), connect_failed (502), denied (403), rate_limited (429: the
 * target service's rate limit), bad_request (400), unsupported (405: not a CONNECT and no
 * request handler), and for request streams the reason of the agent's own answer
 * (upstream_failed, internal, ...).
 */
export type StreamCloseReason = Extract<CloseReason, 'done'> | AnswerReason;

/** One record per stream on the receiving side, for access logs and metrics. */
export interface TunnelAccessRecord {
  peer: TunnelPeer;
  /** The :authority as received (the target `ip:port`, or whatever a bad request sent). */
  authority: string;
  target?: TunnelTarget;
  /** The connection's original client, as the peer sent it (weft-client-addr), if it did. */
  client?: TunnelTarget;
  /** Whether the target saw `client`'s address as its peer (else the agent's). */
  clientPreserved?: boolean;
  /** A client the peer claimed from an address other than its own: logged, never used. */
  clientUnverified?: TunnelTarget;
  /** The :status answered (200, 400, 403, 405, 502), or 0 if the stream died first. */
  status: number;
  reason: StreamCloseReason;
  /** Why it was denied, or the error behind a reset or failed connect. */
  detail?: string;
  /** Bytes the peer sent to the target, and the target sent back. */
  bytesToTarget: number;
  bytesFromTarget: number;
  durationMs: number;
}
