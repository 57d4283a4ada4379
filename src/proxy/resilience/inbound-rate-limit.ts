// The rate limit stage of every inbound path (HTTP requests, tunnel CONNECTs, plaintext on
// 15006, same-host opaque connections): one token of the local service's bucket per request or
// connection, or the refusal with its wait. Nothing is done for a service without a rateLimit.
import type { MeshState } from '../mesh-state.js';
import { retryAfterSeconds } from './rate-limit.js';

export interface RateLimited {
  /** Whole seconds until a token (retry-after). */
  retryAfter: number;
  detail: string;
}

/** Undefined when admitted (or the service has no rate limit). */
export function rateLimited(state: MeshState, service: string): RateLimited | undefined {
  const bucket = state.rateLimit(service);
  if (bucket === undefined) return undefined;
  const wait = bucket.take(state.now());
  if (wait === 0) return undefined;
  const { maxTokens, tokensPerFill, fillIntervalMs } = bucket.spec;
  return {
    retryAfter: retryAfterSeconds(wait),
    detail: `rate limit of ${service} reached (${tokensPerFill} per ${fillIntervalMs} ms, burst ${maxTokens}): retry in ${wait.toFixed(0)} ms`,
  };
}
