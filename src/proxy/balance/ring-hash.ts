// Consistent hashing on a ring (Karger et al.; Envoy's ring_hash, ketama): each endpoint owns
// points on a 32-bit ring, a request's key goes to the first point at or after its hash.
// Adding or removing one of N endpoints moves about 1/N of the keys, and only to or from it.
// The ring is built once per endpoint set (reset), a pick is a binary search.
import type { Balancer, PickContext, Random } from './balancer.js';
import type { EndpointState } from './endpoint-state.js';

// Points of the lightest endpoint (ketama's 160): the share of each endpoint then varies by
// about 1/sqrt(160) = 8 % around its weight's share. Others get points in proportion to their
// weight, so an endpoint's points depend on its own weight (and the lightest), not on N:
// a change of the set moves no point of the endpoints that stay.
const POINTS_PER_WEIGHT = 160;
// A bound on the ring's memory when weights are very uneven (1 next to 65535).
const MAX_POINTS = 1 << 20;
// Room for an owner's rank below a point's hash in one double (32 + 21 bits = 53).
const RANK_SPAN = 2 ** 21;

export class RingHash implements Balancer {
  private endpoints: readonly EndpointState[] = [];
  private hashes = new Uint32Array(0);
  /** Per point, the index in `endpoints` of its owner. */
  private owners = new Uint32Array(0);
  private signature = '';

  constructor(private readonly random: Random) {}

  reset(all: readonly EndpointState[]): void {
    this.endpoints = all;
    // The pool keeps its endpoints in a stable order, so the same keys and weights in the
    // same order index the same ring: a snapshot that changed only health rebuilds nothing.
    const signature = all.map((s) => `${s.key}\u0000${s.weight}`).join('\u0001');
    if (signature === this.signature) return;
    this.signature = signature;
    this.build(all);
  }

  pick(candidates: readonly EndpointState[], ctx: PickContext): EndpointState {
    const key = ctx.hashKey;
    const size = this.hashes.length;
    if (!key || size === 0) return this.any(candidates);
    let at = lowerBound(this.hashes, hash32(key));
    if (at === size) at = 0;
    // Every endpoint usable (the common case): the first point is the answer.
    if (candidates.length === this.endpoints.length) return this.endpoints[this.owners[at]!]!;
    // Excluded, ejected or unhealthy: the next point of a usable endpoint, so that only the
    // keys of the unusable ones move, and each always to the same place.
    const usable = new Set(candidates);
    for (let step = 0; step < size; step++) {
      const owner = this.endpoints[this.owners[(at + step) % size]!]!;
      if (usable.has(owner)) return owner;
    }
    return this.any(candidates); // not reached: every candidate has points
  }

  private any(candidates: readonly EndpointState[]): EndpointState {
    return candidates[
      Math.min(candidates.length - 1, Math.floor(this.random() * candidates.length))
    ]!;
  }

  private build(all: readonly EndpointState[]): void {
    const lightest = all.reduce((min, s) => Math.min(min, s.weight), Number.POSITIVE_INFINITY);
    let counts = all.map((s) => Math.max(1, Math.round((POINTS_PER_WEIGHT * s.weight) / lightest)));
    const wanted = counts.reduce((a, b) => a + b, 0);
    if (wanted > MAX_POINTS) {
      counts = counts.map((c) => Math.max(1, Math.floor((c * MAX_POINTS) / wanted)));
    }
    // Each point packed as hash x 2^21 + its owner's rank by key (exact in a double), sorted
    // natively: a ring of 160,000 points (1,000 endpoints) builds in tens of milliseconds.
    // Ties (two points on one hash) thus go by key, so every agent builds the same ring
    // whatever order its endpoints came in.
    const byKey = all.map((_, i) => i).sort((x, y) => compare(all[x]!.key, all[y]!.key));
    const total = counts.reduce((a, b) => a + b, 0);
    const packed = new Float64Array(total);
    let n = 0;
    byKey.forEach((owner, rank) => {
      const key = all[owner]!.key;
      for (let i = 0; i < counts[owner]!; i++)
        packed[n++] = hash32(`${key}#${i}`) * RANK_SPAN + rank;
    });
    packed.sort();
    this.hashes = new Uint32Array(total);
    this.owners = new Uint32Array(total);
    for (let i = 0; i < total; i++) {
      const rank = packed[i]! % RANK_SPAN;
      this.hashes[i] = (packed[i]! - rank) / RANK_SPAN;
      this.owners[i] = byKey[rank]!;
    }
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The first index whose hash is >= h (hashes.length when none is). */
function lowerBound(hashes: Uint32Array, h: number): number {
  let lo = 0;
  let hi = hashes.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (hashes[mid]! < h) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * FNV-1a over the string's UTF-16 code units, then murmur3's finalizer: FNV alone spreads
 * similar strings ("ep-1#0", "ep-1#1") poorly over the ring. Fixed, so every agent (and every
 * version) puts a key on the same endpoint.
 */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
