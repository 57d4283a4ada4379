// agent.yaml's `limits:` section as a zod schema (the agent's config parses it in the master);
// what the limits resolve to is limits-config.ts's, which a worker loads without zod.
import { z } from 'zod';

const count = z.number().int().min(1);
const durationMs = z.number().int().min(1);

const connectionLimits = {
  /** Open connections accepted on this listener at once; beyond, new ones are refused. */
  maxConnections: count.optional(),
  /** Of those, from one source address. */
  maxConnectionsPerSource: count.optional(),
};

function perSourceWithinTotal(
  l: { maxConnections?: number | undefined; maxConnectionsPerSource?: number | undefined },
  ctx: z.RefinementCtx,
): void {
  if (
    l.maxConnections !== undefined &&
    l.maxConnectionsPerSource !== undefined &&
    l.maxConnectionsPerSource > l.maxConnections
  ) {
    ctx.addIssue({
      code: 'custom',
      path: ['maxConnectionsPerSource'],
      message: `must not exceed maxConnections (${l.maxConnections})`,
    });
  }
}

export const limitsConfigSchema = z
  .strictObject({
    /** 15001: local applications' outbound connections. */
    outbound: z
      .strictObject({
        ...connectionLimits,
        /** No byte either way for this long closes the connection (Envoy's tcp_proxy: 1 h). */
        idleTimeoutMs: durationMs.default(3_600_000),
      })
      .superRefine(perSourceWithinTotal)
      .prefault({}),
    /** 15006: plaintext from outside the mesh. */
    inbound: z
      .strictObject({
        ...connectionLimits,
        idleTimeoutMs: durationMs.default(3_600_000),
        /** A connection on which no byte has moved either way this long after accept is closed. */
        silentTimeoutMs: durationMs.default(60_000),
      })
      .superRefine(perSourceWithinTotal)
      .prefault({}),
    /** 15008: peer agents' mTLS tunnels. */
    tunnel: z
      .strictObject({
        ...connectionLimits,
        /** The TLS handshake must be done within this. */
        handshakeTimeoutMs: durationMs.default(10_000),
        /** A session with no stream for this long is closed (GOAWAY); peers' pools close first. */
        idleTimeoutMs: durationMs.default(600_000),
      })
      .superRefine(perSourceWithinTotal)
      .prefault({}),
    /** Refusals are logged at most once per listener and reason per interval, with a count. */
    refusalLogIntervalMs: durationMs.default(10_000),
  })
  .prefault({});
