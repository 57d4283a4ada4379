// What `weft leave` does with one replica's answer: out, out already, ask the next replica,
// or give up with the refusal.
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import {
  fromGrpcError,
  REPLICA_STOPPING,
  WEFT_CODE_METADATA,
  WEFT_REASON_METADATA,
} from '../../src/api/grpc-errors.js';
import { type LeaveOutcome, leaveOutcome } from '../../src/cli/commands/leave-outcome.js';
import type { WeftError } from '../../src/errors.js';

/** A failed call as the client sees it, turned into a WeftError as leave does. */
function failed(status: grpc.status, code?: string, reason?: string): WeftError {
  const metadata = new grpc.Metadata();
  if (code !== undefined) metadata.set(WEFT_CODE_METADATA, code);
  if (reason !== undefined) metadata.set(WEFT_REASON_METADATA, reason);
  const err = Object.assign(new Error('call failed'), { code: status, details: 'why', metadata });
  return fromGrpcError(err, 'the control plane at 10.0.0.5:15012');
}

const cases: Array<[string, unknown, LeaveOutcome]> = [
  ['Leave succeeded', undefined, 'left'],
  [
    'the node is unknown (removed already)',
    failed(grpc.status.NOT_FOUND, 'WEFT_E_DENIED', 'node_unknown'),
    'already-out',
  ],
  [
    'its certificate is revoked (removed already)',
    failed(grpc.status.UNAUTHENTICATED, 'WEFT_E_DENIED', 'certificate_revoked'),
    'already-out',
  ],
  ['the replica is unreachable', failed(grpc.status.UNAVAILABLE), 'next-replica'],
  ['the call timed out', failed(grpc.status.DEADLINE_EXCEEDED), 'next-replica'],
  [
    'the replica is stopping',
    failed(grpc.status.UNAVAILABLE, 'WEFT_E_UNAVAILABLE', REPLICA_STOPPING),
    'next-replica',
  ],
  [
    'the replica lost its store (etcd)',
    failed(grpc.status.UNAVAILABLE, 'WEFT_E_STORE'),
    'next-replica',
  ],
  ['another refusal', failed(grpc.status.PERMISSION_DENIED, 'WEFT_E_DENIED', 'not_a_node'), 'fail'],
  ['a bug', failed(grpc.status.INTERNAL, 'WEFT_E_INTERNAL'), 'fail'],
];

describe('leaveOutcome', () => {
  for (const [what, err, outcome] of cases) it(what, () => expect(leaveOutcome(err)).toBe(outcome));
});
