// What the store keeps about a joined host (/nodes/<name>).
export interface NodeRecord {
  name: string;
  spiffeId: string;
  addresses: string[];
  zone: string;
  joinedAtMs: number;
  /** The token it joined with (last join). */
  tokenId: string;
  /** The lease its Workloads hang on: they go when the node stops heart-beating. */
  lease?: string;
  certNotAfterMs: number;
}
