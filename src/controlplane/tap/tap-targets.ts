// Which agents a tap through the control plane asks: one node when named, else the nodes with a
// workload of the tapped service, else every node with a sync stream here. Pure: the broker
// gives it the connected nodes (those whose agent runs taps) and the workloads.
export type TapTargets =
  | { kind: 'nodes'; nodes: string[] }
  | { kind: 'none'; reason: 'node_not_connected' | 'no_workloads' | 'no_agents'; message: string };

export function tapTargets(
  request: { node?: string; service?: string },
  connected: readonly string[],
  workloads: readonly { node: string; service: string }[],
): TapTargets {
  const live = new Set(connected);
  if (request.node) {
    return live.has(request.node)
      ? { kind: 'nodes', nodes: [request.node] }
      : {
          kind: 'none',
          reason: 'node_not_connected',
          message: `node ${request.node} has no sync stream to this control plane from an agent that runs taps: check \`weft get nodes\` (an older agent cannot be tapped)`,
        };
  }
  if (request.service) {
    const serving = [
      ...new Set(workloads.filter((w) => w.service === request.service).map((w) => w.node)),
    ].sort();
    if (serving.length === 0)
      return {
        kind: 'none',
        reason: 'no_workloads',
        message: `service ${request.service} has no workloads: no agent serves it (see \`weft get workloads\`)`,
      };
    const nodes = serving.filter((n) => live.has(n));
    return nodes.length > 0
      ? { kind: 'nodes', nodes }
      : {
          kind: 'none',
          reason: 'node_not_connected',
          message: `the nodes serving ${request.service} (${serving.join(', ')}) have no sync stream to this control plane from an agent that runs taps`,
        };
  }
  return connected.length > 0
    ? { kind: 'nodes', nodes: [...connected].sort() }
    : { kind: 'none', reason: 'no_agents', message: 'no agent is connected to this control plane' };
}
