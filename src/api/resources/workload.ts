// Workload: one endpoint of a Service on one host. Agents register them (RegisterWorkloads);
// users cannot apply them. Named <node>-<workload name>.
import { isIP } from 'node:net';
import { z } from 'zod';
import { dnsLabel, documentSchema, resourceName } from './common.js';

export const workloadHealth = z.enum(['healthy', 'unhealthy', 'unknown']);

export const workloadSpec = z
  .object({
    service: dnsLabel,
    /** The host (node name) the workload runs on. */
    node: dnsLabel,
    address: z
      .string()
      .refine((a) => isIP(a) !== 0, { message: 'must be an IPv4 or IPv6 address' }),
    port: z.number().int().min(1, 'must be 1-65535').max(65535, 'must be 1-65535'),
    health: workloadHealth.default('unknown'),
    /** Relative share of traffic; 0 drains the endpoint. */
    weight: z.number().int().min(0).max(65535).default(1),
    zone: z.string().optional(),
  })
  .strict();

export const workloadStatus = z
  .object({
    /** The node has not been heard from since lastSeen: spec.health is its last report. */
    stale: z.boolean().optional(),
    /** Why the control plane marked the workload (NodeSilent). */
    reason: z.string().optional(),
    /** When the control plane last heard from the node (ISO 8601). */
    lastSeen: z.string().optional(),
    /** Written by earlier versions, which overrode spec.health for silent nodes. */
    reportedHealth: workloadHealth.optional(),
  })
  .loose();

export const workloadDocument = documentSchema(
  'Workload',
  resourceName,
  workloadSpec,
  workloadStatus,
);

export type WorkloadSpec = z.infer<typeof workloadSpec>;
export type Workload = z.infer<typeof workloadDocument>;
