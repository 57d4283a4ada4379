// The apply id: every resource an apply writes carries one, so that the registry can tell its
// own commit from someone else's when etcd's reply to the transaction was lost. It is the
// control plane's bookkeeping: never shown by `weft get`, never sent to agents.
import { randomBytes } from 'node:crypto';

export function newApplyId(): string {
  return randomBytes(12).toString('base64url');
}

/** A stored document as users and agents see it: without the apply id. */
export function withoutApplyId<T>(value: T): T {
  if (value === null || typeof value !== 'object' || !('applyId' in value)) return value;
  const { applyId: _, ...rest } = value as T & { applyId?: string };
  return rest as T;
}
