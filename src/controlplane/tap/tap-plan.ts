// Whether a tap through this replica opens, given its own agents (tapTargets) and what its
// peers answered when asked to run the same tap on theirs: it opens when any agent anywhere
// runs it; else it is refused with the reason of this replica's targets, saying how many
// replicas were asked and which could not be. Pure: tap-broker.ts does the calls.
import type { TapTargets } from './tap-targets.js';

export type PeerAnswer =
  | { kind: 'started'; replica: string }
  /** The peer has no agent for this tap (its FAILED_PRECONDITION). */
  | { kind: 'refused'; replica: string; message: string }
  /** No answer: down, unreachable, or it refused this replica's credentials. */
  | { kind: 'unreachable'; replica: string; message: string };

export type TapPlan =
  | {
      kind: 'open';
      /** This replica's agents to start the tap on (may be none: the peers' agents run it). */
      nodes: string[];
      /** Peers whose part of the tap is relayed. */
      peers: string[];
      /** Told to the admin in the stream: their agents, if any, are not tapped. */
      unreachable: Extract<PeerAnswer, { kind: 'unreachable' }>[];
    }
  | { kind: 'refuse'; reason: string; message: string };

export function planTap(local: TapTargets, answers: readonly PeerAnswer[]): TapPlan {
  const started = answers.filter((a) => a.kind === 'started').map((a) => a.replica);
  const unreachable = answers.filter(
    (a): a is Extract<PeerAnswer, { kind: 'unreachable' }> => a.kind === 'unreachable',
  );
  const nodes = local.kind === 'nodes' ? local.nodes : [];
  if (nodes.length > 0 || started.length > 0)
    return { kind: 'open', nodes, peers: started, unreachable };
  const reason = local.kind === 'none' ? local.reason : 'no_agents';
  const base = local.kind === 'none' ? local.message : 'no agent runs this tap';
  // A service with no workloads has none at any replica: the store says so for all of them.
  if (reason === 'no_workloads' || answers.length === 0)
    return { kind: 'refuse', reason, message: base };
  const asked = answers.length - unreachable.length;
  const others =
    asked === 0
      ? ''
      : asked === 1
        ? '; nor has the other replica'
        : `; nor have the ${asked} other replicas`;
  const down =
    unreachable.length === 0
      ? ''
      : `; could not ask ${unreachable.map((u) => `${u.replica} (${u.message})`).join(', ')}`;
  return { kind: 'refuse', reason, message: `${base}${others}${down}` };
}
