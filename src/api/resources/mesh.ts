// Mesh: settings for the whole mesh. There is at most one.
import { z } from 'zod';
import { TRUST_DOMAIN } from '../spiffe.js';
import { documentSchema, resourceName } from './common.js';

export const meshSpec = z
  .object({
    /** Must equal the control plane's trust domain (set in its config); defaults to it. */
    trustDomain: z
      .string()
      .regex(TRUST_DOMAIN, 'must be a trust domain: lowercase letters, digits, ".", "-", "_"')
      .optional(),
    mtls: z
      .object({
        /** strict: only mTLS between workloads; permissive: plaintext accepted from outside the mesh too. */
        mode: z.enum(['strict', 'permissive']).default('permissive'),
      })
      .strict()
      .prefault({}),
    /** What happens to connections to destinations the mesh does not know. */
    outboundPolicy: z.enum(['passthrough', 'refuse']).default('passthrough'),
  })
  .strict();

export const meshDocument = documentSchema('Mesh', resourceName, meshSpec, z.object({}).loose());

export type MeshSpec = z.infer<typeof meshSpec>;
export type Mesh = z.infer<typeof meshDocument>;
