// Decides whether a failed join is final or worth retrying. A control plane that refuses the
// join (a token unknown, used, expired or not for this host; a node that exists; a request it
// cannot accept) will refuse the same request again: retrying only hides the reason from
// whoever is waiting for the agent (install.sh, systemd) until a timeout says nothing useful.
import * as grpc from '@grpc/grpc-js';
import { isWeftError } from '../errors.js';

export type JoinFailure = 'refused' | 'retry';

/** The statuses the control plane answers Join with when it will never accept the request. */
const REFUSING = new Set<grpc.status>([
  grpc.status.UNAUTHENTICATED,
  grpc.status.PERMISSION_DENIED,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.INVALID_ARGUMENT,
]);

/** The gRPC status behind an error from fromGrpcError (its cause), if a call failed. */
function grpcStatus(err: unknown): grpc.status | undefined {
  const cause = err instanceof Error ? err.cause : undefined;
  const code = (cause as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' && code in grpc.status ? (code as grpc.status) : undefined;
}

export function joinFailure(err: unknown): JoinFailure {
  const status = grpcStatus(err);
  if (status !== undefined) return REFUSING.has(status) ? 'refused' : 'retry';
  // Decided on this host before any call: the config cannot join (no token, no CA pin, an
  // unreadable CA file), or the server is not the control plane the pin or CA file names.
  return isWeftError(err, 'WEFT_E_CONFIG') || isWeftError(err, 'WEFT_E_DENIED')
    ? 'refused'
    : 'retry';
}
