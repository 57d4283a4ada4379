// The defaults of the TrafficPolicy fields that apply to a service without a policy (its circuit
// breaker and outlier detection). The schema (traffic-policy.ts) takes them from here, and so
// does the data path: a worker of the agent reads them without loading zod (issue #15).

/** circuitBreaker's limits (Envoy's 1024 each). */
export const CIRCUIT_BREAKER_DEFAULTS = {
  maxConnections: 1024,
  maxPendingRequests: 1024,
  maxRequests: 1024,
} as const;

/** outlierDetection's settings. */
export const OUTLIER_DETECTION_DEFAULTS = {
  consecutiveFailures: 5,
  interval: '10s',
  baseEjectionTime: '5s',
  maxEjectionPercent: 10,
} as const;
