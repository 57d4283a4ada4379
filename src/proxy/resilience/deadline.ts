// Deadline arithmetic of one request: gRPC's `grpc-timeout` (PROTOCOL-HTTP2.md: "TimeoutValue
// TimeoutUnit", at most 8 digits and one of H M S m u n), and the budget of each try given the
// request's deadline and the per-try timeout. Pure: times are milliseconds from one clock.

/** Milliseconds per unit of grpc-timeout. */
const UNIT_MS: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
  m: 1,
  u: 0.001,
  n: 0.000_001,
};

const GRPC_TIMEOUT = /^(\d{1,8})([HMSmun])$/;

/**
 * The timeout a gRPC client sent, in milliseconds; undefined when the value is not what the
 * spec allows (gRPC servers then ignore it too, as grpc-go and grpc-js do).
 */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined) return undefined;
  const m = GRPC_TIMEOUT.exec(text);
  if (m === null) return undefined;
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

/** Finest unit first: the most precise value that fits in 8 digits (grpc-go's encodeTimeout). */
const FORMAT_UNITS = ['n', 'u', 'm', 'S', 'M', 'H'] as const;
const MAX_VALUE = 99_999_999;

/**
 * `ms` as a grpc-timeout value, rounded up in the finest unit whose value fits in 8 digits; a
 * deadline already past is "0n" (the next hop fails it at once, as the caller's would).
 */
export function formatGrpcTimeout(ms: number): string {
  if (!(ms > 0)) return '0n';
  for (const unit of FORMAT_UNITS) {
    const value = Math.ceil(ms / UNIT_MS[unit]! - 1e-9);
    if (value <= MAX_VALUE) return `${value}${unit}`;
  }
  return `${MAX_VALUE}H`;
}

/** The smaller of two optional limits; undefined when neither is set. */
export function earliest(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a < b ? a : b;
}

/** What bounds one try, and which limit it is (the answer names the timeout that fired). */
export interface TryLimit {
  ms: number;
  kind: 'request_timeout' | 'per_try_timeout';
}

/**
 * The time one try may take: the per-try timeout, cut to what is left of the request's
 * deadline (absolute, on the same clock as `now`); undefined when neither is set. A limit of
 * 0 or less means the deadline has passed: no try may start.
 */
export function tryLimit(
  now: number,
  deadlineAt: number | undefined,
  perTryMs: number | undefined,
): TryLimit | undefined {
  if (deadlineAt === undefined) {
    return perTryMs === undefined ? undefined : { ms: perTryMs, kind: 'per_try_timeout' };
  }
  const left = deadlineAt - now;
  if (perTryMs !== undefined && perTryMs < left) return { ms: perTryMs, kind: 'per_try_timeout' };
  return { ms: left, kind: 'request_timeout' };
}
