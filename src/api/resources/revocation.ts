// Revocation: certificates the control plane took back (a node deleted, left, replaced by a
// re-join, or no longer allowed a service), by serial number: a service identity such as
// svc/echo is shared by every node that serves it, so only serials single out one holder.
// Written by the control plane, never applied by users; carried to every agent by the sync
// stream like any resource, and removed once its last certificate has expired.
import { z } from 'zod';
import { CANONICAL_SERIAL } from '../cert-serial.js';
import { dnsLabel, documentSchema, resourceName } from './common.js';

export const revocationReason = z.enum(['deleted', 'left', 'replaced', 'disallowed']);

const isoTime = z.string().refine((s) => !Number.isNaN(Date.parse(s)), {
  message: 'must be an ISO 8601 time',
});

export const revokedCertificate = z
  .object({
    /** Lowercase hex, no leading zeros (see canonicalSerial). */
    serial: z.string().regex(CANONICAL_SERIAL, 'must be lowercase hex without leading zeros'),
    /** When the certificate expires anyway: the entry is of no use after that. */
    notAfter: isoTime,
  })
  .strict();

export const revocationSpec = z
  .object({
    /** The node whose certificates these are. */
    node: dnsLabel,
    reason: revocationReason,
    /** For reason "disallowed": the services the node may no longer serve. */
    services: z.array(dnsLabel).optional(),
    revokedAt: isoTime,
    certificates: z.array(revokedCertificate).min(1).max(10_000),
  })
  .strict();

export const revocationDocument = documentSchema(
  'Revocation',
  resourceName,
  revocationSpec,
  z.object({}).loose(),
);

export type RevocationReason = z.infer<typeof revocationReason>;
export type RevocationSpec = z.infer<typeof revocationSpec>;
export type Revocation = z.infer<typeof revocationDocument>;
