// agent.yaml's `telemetry.stats`: how often the agent reports its numbers to the control plane.
// 10 s by default: the mesh-wide view (`weft top`, `weft get services`) is at most that old,
// and a fleet of 1,000 agents sends the control plane 100 small reports a second.
import { z } from 'zod';

export const statsConfigSchema = z
  .object({
    /** Milliseconds between two reports (1 s to 5 min). */
    intervalMs: z
      .number()
      .int('must be a whole number of milliseconds')
      .min(1_000, 'must be at least 1000 (1 s): each report costs the control plane a message')
      .max(300_000, 'must be at most 300000 (5 min): the control plane keeps a 1 min window')
      .default(10_000),
  })
  .strict();

export type StatsConfig = z.output<typeof statsConfigSchema>;
