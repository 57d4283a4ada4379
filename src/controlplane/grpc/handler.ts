// Runs a unary handler and turns whatever it throws into a gRPC status: refusals are counted
// (method and reason), logged, and carry their reason in the weft-reason trailer; WeftErrors
// keep their code (in the weft-code trailer); anything else is a bug, logged with its stack
// and reported as INTERNAL.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { toGrpcError, WEFT_REASON_METADATA } from '../../api/grpc-errors.js';
import { isWeftError } from '../../errors.js';
import type { ControlPlaneMetrics } from '../metrics.js';
import { Refusal } from '../refusal.js';

export interface HandlerContext {
  metrics: ControlPlaneMetrics;
  log: Logger;
}

export function statusFor(
  err: unknown,
  method: string,
  ctx: HandlerContext,
): ReturnType<typeof toGrpcError> {
  if (err instanceof Refusal) {
    ctx.metrics.refusals.inc({ method, reason: err.reason });
    ctx.log.info({ method, reason: err.reason }, `refused: ${err.message}`);
    return refusalStatus(err);
  }
  if (isWeftError(err)) {
    if (err.code === 'WEFT_E_INTERNAL' || err.code === 'WEFT_E_STORE')
      ctx.log.error({ method, err }, err.message);
    return toGrpcError(err.code, err.message);
  }
  ctx.log.error({ method, err }, 'internal error');
  return toGrpcError(
    'WEFT_E_INTERNAL',
    `internal error in ${method}: ${err instanceof Error ? err.message : String(err)}`,
    grpc.status.INTERNAL,
  );
}

/** The gRPC status of a refusal: its status code, weft-code and weft-reason. */
export function refusalStatus(err: Refusal): ReturnType<typeof toGrpcError> {
  const status = toGrpcError(err.code, err.message, err.status);
  status.metadata?.set(WEFT_REASON_METADATA, err.reason);
  return status;
}

export function unaryHandler<Req, Res>(
  method: string,
  ctx: HandlerContext,
  fn: (call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    fn(call).then(
      (res) => callback(null, res),
      (err: unknown) => callback(statusFor(err, method, ctx)),
    );
  };
}
