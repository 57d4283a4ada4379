// Which failures to join are final (install.sh and systemd should hear them at once, and the
// agent exits with a status systemd does not restart on) and which are worth retrying.
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { exitStatusForRefusal } from '../../src/agent/exit-status.js';
import { fromGrpcError, toGrpcError } from '../../src/api/grpc-errors.js';
import { joinFailure } from '../../src/controlplane-client/join-failure.js';
import { WeftError } from '../../src/errors.js';

/** What the agent holds after a Join call the control plane answered with `status`. */
function answered(status: grpc.status, code: WeftError['code'] = 'WEFT_E_DENIED'): WeftError {
  const sent = toGrpcError(code, `refused with ${grpc.status[status]}`, status);
  const err = Object.assign(new Error(sent.details), {
    code: sent.code,
    details: sent.details,
    metadata: sent.metadata,
  });
  return fromGrpcError(err, 'the control plane at cp:15012');
}

/** A call that never reached a control plane (no weft-code trailer, as grpc-js reports it). */
function unreached(status: grpc.status): WeftError {
  const err = Object.assign(new Error('connect ECONNREFUSED'), {
    code: status,
    details: 'No connection established',
    metadata: new grpc.Metadata(),
  });
  return fromGrpcError(err, 'the control plane at cp:15012');
}

describe('joinFailure', () => {
  it.each([
    ['an unknown or malformed token (UNAUTHENTICATED)', answered(grpc.status.UNAUTHENTICATED)],
    ['a used or expired token (PERMISSION_DENIED)', answered(grpc.status.PERMISSION_DENIED)],
    ['a node that exists (FAILED_PRECONDITION)', answered(grpc.status.FAILED_PRECONDITION)],
    [
      'a hostname that is not a DNS label (INVALID_ARGUMENT)',
      answered(grpc.status.INVALID_ARGUMENT, 'WEFT_E_CONFIG'),
    ],
    [
      'no token in the config',
      new WeftError('WEFT_E_CONFIG', 'this host has not joined the mesh: put a token'),
    ],
    [
      'a server that does not match the CA pin',
      new WeftError('WEFT_E_DENIED', 'no certificate in its chain matches controlPlane.caPin'),
    ],
  ])('%s is refused for good', (_what, err) => {
    expect(joinFailure(err)).toBe('refused');
  });

  it.each([
    [
      'an unreachable control plane',
      new WeftError('WEFT_E_UNAVAILABLE', 'cannot reach the control plane at cp:15012'),
    ],
    ['a refused connection (UNAVAILABLE)', unreached(grpc.status.UNAVAILABLE)],
    ['a deadline (DEADLINE_EXCEEDED)', unreached(grpc.status.DEADLINE_EXCEEDED)],
    ['a store that failed (UNAVAILABLE)', answered(grpc.status.UNAVAILABLE, 'WEFT_E_STORE')],
    ['a bug in the control plane (INTERNAL)', answered(grpc.status.INTERNAL, 'WEFT_E_INTERNAL')],
    ['a contended join (ABORTED)', answered(grpc.status.ABORTED)],
    ['anything else', new Error('socket hang up')],
  ])('%s is retried', (_what, err) => {
    expect(joinFailure(err)).toBe('retry');
  });
});

describe('exitStatusForRefusal', () => {
  it('is EX_CONFIG (78) for a config the join cannot work with, EX_NOPERM (77) otherwise', () => {
    expect(exitStatusForRefusal(new WeftError('WEFT_E_CONFIG', 'no token'))).toBe(78);
    expect(exitStatusForRefusal(answered(grpc.status.INVALID_ARGUMENT, 'WEFT_E_CONFIG'))).toBe(78);
    expect(exitStatusForRefusal(answered(grpc.status.UNAUTHENTICATED))).toBe(77);
    expect(exitStatusForRefusal(answered(grpc.status.PERMISSION_DENIED))).toBe(77);
    expect(exitStatusForRefusal(new WeftError('WEFT_E_DENIED', 'pin'))).toBe(77);
  });
});
