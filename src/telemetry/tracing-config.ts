// agent.yaml's `telemetry:` section: where spans go (OTLP/HTTP) and how many. Without
// `tracing.otlpEndpoint` the agent still propagates W3C trace context, and exports nothing.
import { z } from 'zod';
import { statsConfigSchema } from './stats-config.js';

const EXAMPLE = 'e.g. http://127.0.0.1:4318/v1/traces';

/** Why an OTLP/HTTP traces URL is unusable, or undefined when it is fine. */
export function otlpEndpointProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `not a URL: give the collector's OTLP/HTTP traces URL, ${EXAMPLE}`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return `must be http:// or https:// (OTLP over HTTP; gRPC is not supported), ${EXAMPLE}`;
  if (url.username !== '' || url.password !== '')
    return 'must not carry credentials (the URL is logged); use a collector on this host or a trusted network';
  if (url.hash !== '') return `must not have a #fragment, ${EXAMPLE}`;
  // The URL is used as given (OTel's OTEL_EXPORTER_OTLP_TRACES_ENDPOINT rule): a bare
  // host:port would POST to "/", which a collector answers 404, and every span would be lost.
  if (url.pathname === '/')
    return `needs the traces path: ${url.origin}/v1/traces is the collector's default`;
  return undefined;
}

export const tracingConfigSchema = z
  .object({
    /** OTLP/HTTP (protobuf) traces URL of a collector; spans are exported only when set. */
    otlpEndpoint: z
      .string()
      .superRefine((value, ctx) => {
        const problem = otlpEndpointProblem(value);
        if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
      })
      .optional(),
    /**
     * The share of traces that start at this agent that are recorded (0-1, default 1). A
     * request that arrives with a traceparent follows its caller's sampled flag instead.
     */
    sampleRatio: z.number().min(0, 'must be 0-1').max(1, 'must be 0-1').optional(),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.sampleRatio !== undefined && t.otlpEndpoint === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['sampleRatio'],
        message: 'only applies with otlpEndpoint (without it no span is recorded)',
      });
  });

export const telemetryConfigSchema = z
  .object({ tracing: tracingConfigSchema.prefault({}), stats: statsConfigSchema.prefault({}) })
  .strict()
  .prefault({});

export type TracingConfig = z.output<typeof tracingConfigSchema>;
