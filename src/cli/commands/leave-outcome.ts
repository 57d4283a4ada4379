// What one replica's answer to Leave means for `weft leave`: the node is out, it was out
// already, this replica could not decide (unreachable, stopping, without its store: ask the
// next one, they share the store), or a refusal every replica would give.
import { REPLICA_STOPPING, refusalReason } from '../../api/grpc-errors.js';
import { WeftError } from '../../errors.js';

export type LeaveOutcome = 'left' | 'already-out' | 'next-replica' | 'fail';

/** Refusals that mean the control plane no longer has this node: it is out already. */
const ALREADY_OUT = new Set(['certificate_revoked', 'node_unknown']);

/** err: undefined when Leave succeeded; else the call's error as fromGrpcError made it. */
export function leaveOutcome(err: unknown): LeaveOutcome {
  if (err === undefined) return 'left';
  const reason = refusalReason(err);
  if (reason !== undefined && ALREADY_OUT.has(reason)) return 'already-out';
  if (reason === REPLICA_STOPPING) return 'next-replica';
  if (
    err instanceof WeftError &&
    (err.code === 'WEFT_E_UNAVAILABLE' || err.code === 'WEFT_E_STORE')
  )
    return 'next-replica';
  return 'fail';
}
