// A request the control plane refuses (bad token, wrong certificate, CSR for a service not on
// the node, ...). `reason` is a stable snake_case label for metrics and logs; the message tells
// the caller what happened and what to do. Nothing is granted when one is thrown.
import * as grpc from '@grpc/grpc-js';
import { type ErrorCode, WeftError } from '../errors.js';

export class Refusal extends WeftError {
  readonly reason: string;
  readonly status: grpc.status;

  constructor(
    reason: string,
    message: string,
    status: grpc.status = grpc.status.PERMISSION_DENIED,
    code: ErrorCode = 'WEFT_E_DENIED',
  ) {
    super(code, message);
    this.reason = reason;
    this.status = status;
  }
}

export const unauthenticated = (reason: string, message: string): Refusal =>
  new Refusal(reason, message, grpc.status.UNAUTHENTICATED);

export const invalidRequest = (reason: string, message: string): Refusal =>
  new Refusal(reason, message, grpc.status.INVALID_ARGUMENT, 'WEFT_E_CONFIG');

/** Refused because of the state things are in (a node that exists, a token already used). */
export const failedPrecondition = (reason: string, message: string): Refusal =>
  new Refusal(reason, message, grpc.status.FAILED_PRECONDITION);
