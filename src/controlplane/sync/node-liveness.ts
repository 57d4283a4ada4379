// What the control plane knows about each agent right now: when it was last heard from, how
// many sync streams it has open, the version it acknowledged and its last rejection. Kept in
// memory: after a restart every node counts as heard from at start, because the control plane
// cannot tell a node's silence from its own absence; agents reconnect within their backoff cap
// (10 s, jittered), well before workloadStaleAfter. With replicas sharing a store, a node
// heard by another replica counts as heard (see NodeHealth.sweep: its lease tells).
export interface NodeState {
  lastSeenMs: number;
  lastHeartbeatMs: number;
  connections: number;
  ackedVersion: number;
  lastNack: string;
}

export class NodeLiveness {
  readonly startedAtMs = Date.now();
  private readonly nodes = new Map<string, NodeState>();

  private state(node: string): NodeState {
    let s = this.nodes.get(node);
    if (s === undefined) {
      s = {
        lastSeenMs: this.startedAtMs,
        lastHeartbeatMs: 0,
        connections: 0,
        ackedVersion: 0,
        lastNack: '',
      };
      this.nodes.set(node, s);
    }
    return s;
  }

  get(node: string): Readonly<NodeState> | undefined {
    return this.nodes.get(node);
  }

  /** When the node was last heard from (start time for nodes not heard from since). */
  lastSeen(node: string): number {
    return this.nodes.get(node)?.lastSeenMs ?? this.startedAtMs;
  }

  seen(node: string, heartbeat = false): void {
    const s = this.state(node);
    s.lastSeenMs = Date.now();
    if (heartbeat) s.lastHeartbeatMs = s.lastSeenMs;
  }

  /** Another replica heard from the node at atMs (its lease was kept alive then). */
  heardElsewhere(node: string, atMs: number): void {
    const s = this.state(node);
    if (atMs > s.lastSeenMs) s.lastSeenMs = atMs;
  }

  connected(node: string): void {
    this.state(node).connections++;
    this.seen(node);
  }

  disconnected(node: string): void {
    const s = this.state(node);
    s.connections = Math.max(0, s.connections - 1);
  }

  ack(node: string, version: number): void {
    const s = this.state(node);
    if (version > s.ackedVersion) s.ackedVersion = version;
  }

  nack(node: string, version: number, reason: string): void {
    this.state(node).lastNack = `version ${version}: ${reason}`;
  }

  connectedCount(): number {
    let n = 0;
    for (const s of this.nodes.values()) if (s.connections > 0) n++;
    return n;
  }

  ackedVersions(): number[] {
    return [...this.nodes.values()].map((s) => s.ackedVersion);
  }
}
