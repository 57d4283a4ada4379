// WeftError <-> gRPC status. The server sends the stable WEFT_E_* code in the `weft-code`
// trailer next to a status code a generic gRPC client understands, and for a refusal its
// stable reason (token_used, certificate_revoked, ...) in `weft-reason`; clients turn any
// failed call back into a WeftError with that code and the server's message.
import * as grpc from '@grpc/grpc-js';
import { type ErrorCode, ErrorCodes, WeftError } from '../errors.js';

export const WEFT_CODE_METADATA = 'weft-code';
export const WEFT_REASON_METADATA = 'weft-reason';
/** The weft-reason of sync streams a stopping control plane replica ends: "move elsewhere now". */
export const REPLICA_STOPPING = 'replica_stopping';

const statusFor: Partial<Record<ErrorCode, grpc.status>> = {
  WEFT_E_CONFIG: grpc.status.INVALID_ARGUMENT,
  WEFT_E_USAGE: grpc.status.INVALID_ARGUMENT,
  WEFT_E_DENIED: grpc.status.PERMISSION_DENIED,
  WEFT_E_NOT_FOUND: grpc.status.NOT_FOUND,
  WEFT_E_STORE: grpc.status.UNAVAILABLE,
  WEFT_E_CONFLICT: grpc.status.ABORTED,
  WEFT_E_UNAVAILABLE: grpc.status.UNAVAILABLE,
};

/** A status object for callback(err) / call.emit('error', err) on the server side. */
export function toGrpcError(
  code: ErrorCode,
  message: string,
  status: grpc.status = statusFor[code] ?? grpc.status.INTERNAL,
): Partial<grpc.StatusObject> & { code: grpc.status; details: string } {
  const metadata = new grpc.Metadata();
  metadata.set(WEFT_CODE_METADATA, code);
  return { code: status, details: message, metadata };
}

function isServiceError(err: unknown): err is grpc.ServiceError {
  return (
    typeof err === 'object' &&
    err !== null &&
    'code' in err &&
    'details' in err &&
    'metadata' in err
  );
}

/**
 * A WeftError for a failed call. `target` names what was called ("the control plane at
 * 10.0.0.1:15012") in messages about reaching it.
 */
export function fromGrpcError(err: unknown, target = 'the control plane'): WeftError {
  if (err instanceof WeftError) return err;
  if (!isServiceError(err)) {
    return new WeftError('WEFT_E_INTERNAL', err instanceof Error ? err.message : String(err), {
      cause: err,
    });
  }
  const sent = err.metadata?.get(WEFT_CODE_METADATA)[0];
  if (typeof sent === 'string' && (ErrorCodes as readonly string[]).includes(sent)) {
    return new WeftError(sent as ErrorCode, err.details, { cause: err });
  }
  switch (err.code) {
    case grpc.status.UNAVAILABLE:
    case grpc.status.DEADLINE_EXCEEDED:
      return new WeftError('WEFT_E_UNAVAILABLE', `cannot reach ${target}: ${err.details}`, {
        cause: err,
      });
    case grpc.status.UNAUTHENTICATED:
    case grpc.status.PERMISSION_DENIED:
      return new WeftError('WEFT_E_DENIED', err.details, { cause: err });
    case grpc.status.NOT_FOUND:
      return new WeftError('WEFT_E_NOT_FOUND', err.details, { cause: err });
    case grpc.status.INVALID_ARGUMENT:
      return new WeftError('WEFT_E_CONFIG', err.details, { cause: err });
    default:
      return new WeftError('WEFT_E_INTERNAL', `${target} failed: ${err.details}`, { cause: err });
  }
}

/**
 * The refusal reason a control plane sent with a failed call (a grpc.ServiceError, or the
 * WeftError fromGrpcError made of one); undefined when there is none.
 */
export function refusalReason(err: unknown): string | undefined {
  const cause = err instanceof WeftError ? err.cause : err;
  if (!isServiceError(cause)) return undefined;
  const reason = cause.metadata?.get(WEFT_REASON_METADATA)[0];
  return typeof reason === 'string' && reason !== '' ? reason : undefined;
}
