// The answer the inbound stack writes for a request that authorization refused: HTTP 403, or
// for gRPC a trailers-only response with PERMISSION_DENIED (status codes travel in trailers,
// and a response with no messages carries them in its one headers frame: gRPC over HTTP/2,
// "Responses"). Both carry weft-reason, as every answer the agent makes itself.
import { REASON_HEADER } from '../http/wire-headers.js';
import type { AuthzDecision } from './authorize.js';

/** gRPC status code 7 (grpc/doc/statuscodes.md). */
export const GRPC_PERMISSION_DENIED = 7;

export type DenialKind = 'http' | 'grpc';

export interface DenialResponse {
  status: number;
  /** Lower-case names; values safe to write as they are. */
  headers: Record<string, string>;
}

/** A gRPC request (and gRPC-Web): its content-type is application/grpc, or application/grpc+... */
export function denialKindOf(contentType: string | string[] | undefined): DenialKind {
  const value = (Array.isArray(contentType) ? contentType[0] : contentType)?.toLowerCase() ?? '';
  return value.startsWith('application/grpc') ? 'grpc' : 'http';
}

/**
 * The status and headers of a denial, to be written as one HEADERS frame that ends the stream
 * (HTTP/2: `stream.respond({ ':status': status, ...headers }, { endStream: true })`). For gRPC
 * that is what makes it trailers-only: the compat API's `writeHead().end()` sends an empty DATA
 * frame after the headers, and a gRPC client then reads a call that ended without a status.
 */
export function denialResponse(
  kind: DenialKind,
  decision: Extract<AuthzDecision, { allow: false }>,
): DenialResponse {
  const reason = headerSafe(decision.reason);
  if (kind === 'http') return { status: 403, headers: { [REASON_HEADER]: reason } };
  return {
    status: 200,
    headers: {
      'content-type': 'application/grpc',
      'grpc-status': String(GRPC_PERMISSION_DENIED),
      'grpc-message': grpcMessageEncode(decision.reason),
      [REASON_HEADER]: reason,
    },
  };
}

/**
 * grpc-message is percent-encoded (gRPC over HTTP/2, "Responses"): the UTF-8 bytes of the
 * message, every byte outside 0x20-0x7E, and "%" itself, as %XX.
 */
export function grpcMessageEncode(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Header values carry no CR/LF or other controls (Node throws on them); one short line. */
function headerSafe(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, ' ').slice(0, 200);
}
