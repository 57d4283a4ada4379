// Which health check a local workload gets, and what a check result does to its health. Pure
// decisions (test/unit/workload-health-check.test.ts); workload-health.ts runs the checks.
//
// The default check touches nothing: the kernel's table of listening sockets (sock_diag) says
// whether the application listens on the workload's address and port. A TCP connect or an
// HTTP GET, which server-speaks-first applications (MySQL, SMTP) log as aborted sessions, is
// opt-in: by the service's TrafficPolicy.healthCheck for every node, or by the agent config's
// workload `health.check` for one host (which wins: the operator of the host said so).
import type { WorkloadConfig } from '../agent/config.js';
import { parseDuration } from '../api/duration.js';
import type { TrafficPolicySpec } from '../api/resources/index.js';
import {
  type EffectivePolicy,
  effectivePolicies,
  policiesSetting,
  policyScopes,
} from '../api/resources/traffic-policy-scopes.js';
import type { Health } from './local-workloads.js';

export type { Health };

interface Thresholds {
  intervalMs: number;
  /** Consecutive failures that make a healthy workload unhealthy. */
  unhealthyThreshold: number;
  /** Consecutive passes that make an unhealthy workload healthy. */
  healthyThreshold: number;
}

export type HealthCheck = Thresholds & {
  /** Where the check comes from, for status: "default", "agent config", "TrafficPolicy/NAME". */
  source: string;
} & (
    | { kind: 'listening' }
    | { kind: 'tcp'; timeoutMs: number }
    | {
        kind: 'http';
        timeoutMs: number;
        path: string;
        expectedStatuses: readonly number[] | undefined;
      }
  );

/** A service's effective health check, with the policies that set it (the Service's first). */
export interface PolicyHealthCheck {
  policies: string[];
  spec: NonNullable<TrafficPolicySpec['healthCheck']>;
}

/** The health check per service, as its effective TrafficPolicy sets it. */
export interface PolicyHealthChecks {
  get(service: string): PolicyHealthCheck | undefined;
}

export const DEFAULT_TIMEOUT_MS = 1_000;

/** The check for a workload: its agent config's, else its service's TrafficPolicy's, else the default. */
export function resolveHealthCheck(
  config: WorkloadConfig['health'],
  policy: PolicyHealthCheck | undefined,
): HealthCheck {
  const local: Thresholds = {
    intervalMs: config.intervalMs,
    unhealthyThreshold: config.unhealthyThreshold,
    healthyThreshold: config.healthyThreshold,
  };
  const chosen = config.check ?? (config.httpPath !== undefined ? 'http' : undefined);
  if (chosen === 'listening') return { ...local, source: 'agent config', kind: 'listening' };
  if (chosen === 'tcp')
    return {
      ...local,
      source: 'agent config',
      kind: 'tcp',
      timeoutMs: config.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    };
  if (chosen === 'http')
    return {
      ...local,
      source: 'agent config',
      kind: 'http',
      timeoutMs: config.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      path: config.httpPath!,
      expectedStatuses: config.expectedStatuses,
    };
  if (policy !== undefined) return fromPolicy(policy);
  return { ...local, source: 'default', kind: 'listening' };
}

function fromPolicy({ policies, spec }: PolicyHealthCheck): HealthCheck {
  const common = {
    source: policies.map((p) => `TrafficPolicy/${p}`).join(' over '),
    intervalMs: parseDuration(spec.interval)!,
    timeoutMs: parseDuration(spec.timeout)!,
    unhealthyThreshold: spec.unhealthyThreshold,
    healthyThreshold: spec.healthyThreshold,
  };
  return spec.http === undefined
    ? { ...common, kind: 'tcp' }
    : {
        ...common,
        kind: 'http',
        path: spec.http.path,
        expectedStatuses: spec.http.expectedStatuses,
      };
}

/**
 * The health check of each service as its effective TrafficPolicy sets it (the Service's over
 * the Mesh's, defaults filled in; see api/resources/traffic-policy-scopes.ts).
 */
export function policyHealthChecks(
  policies: readonly { name: string; doc: unknown }[],
): PolicyHealthChecks {
  const effective = effectivePolicies(policyScopes(policies));
  const mesh = effective.mesh && healthCheckOf(effective.mesh);
  const services = new Map<string, PolicyHealthCheck | undefined>();
  for (const [service, p] of effective.services) services.set(service, healthCheckOf(p));
  return { get: (service) => (services.has(service) ? services.get(service) : mesh) };
}

function healthCheckOf(policy: EffectivePolicy): PolicyHealthCheck | undefined {
  const spec = policy.spec.healthCheck;
  return spec && { policies: policiesSetting(policy, 'healthCheck.'), spec };
}

/** "listening", "tcp", "http GET /healthz": how status and metrics name a check. */
export function describeCheck(check: HealthCheck): string {
  return check.kind === 'http' ? `http GET ${check.path}` : check.kind;
}

/** True when an HTTP status passes: the expected ones, or any 2xx and 3xx by default. */
export function statusPasses(status: number, expected: readonly number[] | undefined): boolean {
  return expected === undefined ? status >= 200 && status < 400 : expected.includes(status);
}

export interface CheckState {
  health: Health;
  passes: number;
  failures: number;
}

export const INITIAL_STATE: CheckState = { health: 'unknown', passes: 0, failures: 0 };

/**
 * The state after one check result. `undefined` (the check could not be run: the agent's
 * problem, not the workload's) makes the health unknown. From unknown, the first result
 * decides, so that a workload is judged at once when the agent starts; afterwards the
 * thresholds keep one odd result from flipping it.
 */
export function nextState(
  state: CheckState,
  passed: boolean | undefined,
  check: Pick<HealthCheck, 'unhealthyThreshold' | 'healthyThreshold'>,
): CheckState {
  if (passed === undefined) return INITIAL_STATE;
  const passes = passed ? state.passes + 1 : 0;
  const failures = passed ? 0 : state.failures + 1;
  let health = state.health;
  if (health === 'unknown') health = passed ? 'healthy' : 'unhealthy';
  else if (passed && health === 'unhealthy' && passes >= check.healthyThreshold) health = 'healthy';
  else if (!passed && health === 'healthy' && failures >= check.unhealthyThreshold)
    health = 'unhealthy';
  return { health, passes, failures };
}
