// The pause before a retry: exponential backoff with full jitter (AWS Architecture Blog,
// "Exponential Backoff And Jitter"): a uniform draw in [0, min(max, base * 2^(n-1))), so that
// callers retrying together spread out instead of arriving again at once. Envoy's defaults
// are base 25 ms and max 250 ms. The random source is injected (tests seed it).

/**
 * Milliseconds to wait before retry number `retry` (1 for the first retry); `random` returns
 * a number in [0, 1), as Math.random does.
 */
export function backoffMs(
  retry: number,
  baseMs: number,
  maxMs: number,
  random: () => number,
): number {
  // 2^30 already dwarfs any max: cap the exponent so the product never overflows to Infinity.
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(retry - 1, 30));
  return Math.floor(random() * ceiling);
}
