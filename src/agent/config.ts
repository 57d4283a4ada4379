// The agent's configuration file (/etc/weft/agent.yaml): what this host is, where the control
// plane is, which local workloads it serves, and how traffic is captured. Every field is
// optional; defaults follow DESIGN.md.
import { hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseHostPort } from '../api/tls.js';
import { WeftError } from '../errors.js';
import { limitsConfigSchema } from '../proxy/limits/limits-schema.js';
import { captureConfigSchema } from '../redirect/config.js';
import { readConfigFile } from '../sys/config-file.js';
import { formatZodIssue } from '../sys/zod-format.js';
import { tapConfigSchema } from '../telemetry/tap-config.js';
import { telemetryConfigSchema } from '../telemetry/tracing-config.js';

const port = z.number().int().min(1).max(65535);
const durationMs = z.number().int().min(1);

/** host:port (or host, meaning port 15012); an IPv6 address in brackets. */
const controlPlaneAddress = z.string().superRefine((value, ctx) => {
  try {
    parseHostPort(value, 15012);
  } catch {
    ctx.addIssue({
      code: 'custom',
      message: `"${value}" is not host:port (an IPv6 address goes in brackets: [::1]:15012)`,
    });
  }
});

const threshold = z.number().int().min(1, 'must be 1-100').max(100, 'must be 1-100');

/**
 * How the agent checks a local workload (see src/controlplane-client/health-check.ts). Without
 * `check`, the service's TrafficPolicy.healthCheck decides, else the quiet default: the
 * kernel's table of listening sockets. `check` here overrides both, for this host.
 */
export const workloadHealthSchema = z
  .object({
    /** listening: is the app listening (sock_diag, nothing touches it); tcp: a connect; http: a GET. */
    check: z.enum(['listening', 'tcp', 'http']).optional(),
    /** The path an http check GETs (giving it alone means check: http). */
    httpPath: z.string().startsWith('/', 'must start with "/"').optional(),
    /** Statuses an http check accepts; default any 2xx or 3xx. */
    expectedStatuses: z.array(z.number().int().min(100).max(599)).min(1).optional(),
    /** How often, and the thresholds below: for this config's check and the default; a
     * TrafficPolicy's check brings its own. */
    intervalMs: durationMs.default(5_000),
    /** tcp and http checks only; default 1000. */
    timeoutMs: durationMs.optional(),
    unhealthyThreshold: threshold.default(1),
    healthyThreshold: threshold.default(1),
  })
  .strict()
  .superRefine((h, ctx) => {
    const check = h.check ?? (h.httpPath !== undefined ? 'http' : undefined);
    const refuse = (field: string, message: string) =>
      ctx.addIssue({ code: 'custom', path: [field], message });
    if (check === 'http' && h.httpPath === undefined)
      refuse('httpPath', 'required when check is http');
    if (check !== 'http' && h.httpPath !== undefined)
      refuse('httpPath', `only applies to check: http (check is ${check})`);
    if (check !== 'http' && h.expectedStatuses !== undefined)
      refuse('expectedStatuses', 'only applies to check: http (give httpPath)');
    if (check !== 'tcp' && check !== 'http' && h.timeoutMs !== undefined)
      refuse(
        'timeoutMs',
        "only applies to check: tcp or http (the listening check reads the kernel's table of listening sockets and cannot time out)",
      );
  })
  .prefault({});

export const workloadConfigSchema = z
  .object({
    /** The Service this workload is an endpoint of. */
    service: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a DNS label: lowercase letters, digits and -'),
    /** Unique per host; defaults to `<service>-<port>`. */
    name: z.string().optional(),
    /** The port the application listens on. */
    port,
    /** Address the application listens on; defaults to the host's first address. */
    address: z.string().optional(),
    /** Local processes of this workload, so outbound connections get its identity (issue 4). */
    user: z.string().optional(),
    unit: z.string().optional(),
    weight: z.number().int().min(1).max(65535).default(1),
    zone: z.string().optional(),
    health: workloadHealthSchema,
  })
  .strict();

export const agentConfigSchema = z
  .object({
    /** Node name: spiffe://<td>/node/<hostname>. */
    hostname: z
      .string()
      .min(1)
      .default(() => hostname()),
    /** Certificates, keys and the last-known-good snapshot live here (0700). */
    dataDir: z.string().default('/var/lib/weft/agent'),
    /** This host's addresses that peers reach it on; default: its non-loopback addresses. */
    addresses: z.array(z.string()).optional(),
    zone: z.string().optional(),
    controlPlane: z
      .object({
        /** host:port of the control plane's gRPC port (15012); a DNS name may resolve to
         * several replicas. Or `addresses`: one of the two. */
        address: controlPlaneAddress.optional(),
        /** host:port of each control plane replica (their gRPC ports): the agent spreads over
         * them and moves to another when its replica goes away. */
        addresses: z.array(controlPlaneAddress).min(1, 'list at least one host:port').optional(),
        /** One-time join token from `weft token create`; only needed until the host has joined. */
        token: z.string().optional(),
        /** sha256 of the CA's public key (printed by `weft token create`), pinned at join. */
        caPin: z
          .string()
          .regex(/^[0-9a-f]{64}$/, '64 hex digits')
          .optional(),
        /** Or: a PEM file with the CA certificate. */
        caFile: z.string().optional(),
      })
      .strict()
      .superRefine((cp, ctx) => {
        if (cp.address !== undefined && cp.addresses !== undefined)
          ctx.addIssue({
            code: 'custom',
            path: ['addresses'],
            message: 'give address (one host:port) or addresses (a list), not both',
          });
        if (cp.address === undefined && cp.addresses === undefined)
          ctx.addIssue({
            code: 'custom',
            path: ['address'],
            message:
              'required: the host:port of the control plane (or addresses: a list of replicas)',
          });
      })
      // Readers get one list: the replicas, in the order the config gives them.
      .transform(({ address, addresses, ...rest }) => ({
        ...rest,
        addresses: addresses ?? [address!],
      }))
      .optional(),
    workloads: z.array(workloadConfigSchema).default([]),
    /** The admin endpoint; its port is capture.agentPorts.admin (the rules must know it). */
    admin: z
      .object({ address: z.string().default('127.0.0.1') })
      .strict()
      .prefault({}),
    /** Prometheus /metrics; its port is capture.agentPorts.metrics. */
    metrics: z
      .object({ address: z.string().default('0.0.0.0') })
      .strict()
      .prefault({}),
    /** Traffic capture (iptables): the schema and its defaults live with src/redirect. */
    capture: captureConfigSchema,
    /** Connection limits and timeouts per listener: schema and defaults in src/proxy/limits. */
    limits: limitsConfigSchema,
    /** How often the agent tells the control plane its workloads are alive. */
    heartbeatIntervalMs: durationMs.default(5_000),
    /** SIGTERM: stop accepting, let open connections finish for this long, then exit. */
    drainMs: durationMs.default(10_000),
    /** Worker processes serving connections; default one per CPU in the agent's affinity. */
    workers: z
      .number()
      .int('must be a whole number')
      .min(1, 'must be 1-256')
      .max(256, 'must be 1-256')
      .optional(),
    /** Reload (SIGHUP): how long the previous workers may keep their open connections. */
    drain: z
      .object({ maxMs: durationMs.default(900_000) })
      .strict()
      .prefault({}),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info'),
    /** Tracing: W3C trace context is always propagated; spans are exported with
     * telemetry.tracing.otlpEndpoint (schema in src/telemetry/tracing-config.ts). */
    telemetry: telemetryConfigSchema,
    /** `weft tap`: the local tap socket and headers to redact (src/telemetry/tap-config.ts). */
    tap: tapConfigSchema,
  })
  .strict()
  // Each port is configured once, under capture.agentPorts, because the capture rules
  // must exclude exactly the ports the agent listens on; here they are copied for readers.
  .transform((c) => ({
    ...c,
    admin: { ...c.admin, port: c.capture.agentPorts.admin },
    metrics: { ...c.metrics, port: c.capture.agentPorts.metrics },
  }));

export type AgentConfig = z.output<typeof agentConfigSchema>;
export type WorkloadConfig = z.output<typeof workloadConfigSchema>;

/** Parses and validates agent config text; errors name the source and the field path. */
export function parseAgentConfig(text: string, source: string): AgentConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text) ?? {};
  } catch (err) {
    throw new WeftError(
      'WEFT_E_CONFIG',
      `${source}: not valid YAML: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  const result = agentConfigSchema.safeParse(doc);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new WeftError('WEFT_E_CONFIG', `${source}: ${formatZodIssue(issue)}`);
  }
  return result.data;
}

/** Reads the agent config; no file means all defaults. */
export function loadAgentConfig(file?: string): AgentConfig {
  if (file === undefined) return parseAgentConfig('{}', '(defaults)');
  const text = readConfigFile(file);
  return parseAgentConfig(text, file);
}
