// Which control plane replica the agent connects to next, and whether it waits first: a pure
// decision over the replicas known at this (re)connect. Each agent orders the replicas by a
// hash of its own name (rendezvous hashing), so a fleet spreads over them, and one agent keeps
// the same order when a DNS name's answers come back in another order or one replica changes.
import { createHash } from 'node:crypto';

/** One replica to dial: `dial` is host:port, `name` what the config says (a DNS name, or the same). */
export interface ReplicaCandidate {
  dial: string;
  name: string;
}

/**
 * How the last connection ended: `stopping` (the replica said it is going away: move now),
 * `resync` (the agent's own choice: the replica is fine), `failed` (anything else).
 */
export type ReplicaOutcome = 'stopping' | 'resync' | 'failed';

export interface ReplicaChoice {
  replica: ReplicaCandidate;
  /** Whether the caller sleeps its jittered backoff before dialing. */
  wait: 'none' | 'backoff';
}

/** The candidates in this agent's own order (highest rendezvous weight first). */
export function orderReplicas(
  candidates: readonly ReplicaCandidate[],
  seed: string,
): ReplicaCandidate[] {
  const weight = (c: ReplicaCandidate) =>
    createHash('sha256').update(`${seed}\n${c.dial}`).digest('hex');
  const unique = [...new Map(candidates.map((c) => [c.dial, c])).values()];
  return unique
    .map((c) => ({ c, w: weight(c) }))
    .sort((x, y) => (x.w < y.w ? 1 : x.w > y.w ? -1 : 0))
    .map(({ c }) => c);
}

/**
 * The next replica: the first in order at start (or when the last is gone); the same one after a resync; otherwise the
 * one after the last (wrapping), so an agent whose replica went away tries every other before
 * coming back to it. A replica that said it is stopping is left at once, without the backoff.
 */
export function chooseReplica(
  ordered: readonly ReplicaCandidate[],
  last: string | undefined,
  outcome: ReplicaOutcome | undefined,
): ReplicaChoice | undefined {
  if (ordered.length === 0) return undefined;
  const wait = outcome === undefined || outcome === 'stopping' ? 'none' : 'backoff';
  const at =
    last === undefined || outcome === undefined ? -1 : ordered.findIndex((c) => c.dial === last);
  if (at === -1) return { replica: ordered[0]!, wait };
  if (outcome === 'resync') return { replica: ordered[at]!, wait };
  return { replica: ordered[(at + 1) % ordered.length]!, wait };
}

/** How a connection ended, from its stream's end and the refusal reason its status carried. */
export function replicaOutcome(
  end: { resync?: string } | undefined,
  reason: string | undefined,
  stoppingReason: string,
): ReplicaOutcome {
  if (reason === stoppingReason) return 'stopping';
  if (end?.resync !== undefined) return 'resync';
  return 'failed';
}
