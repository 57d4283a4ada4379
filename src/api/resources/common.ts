// Building blocks shared by the resource schemas: names, ports, references, and the envelope
// (apiVersion, kind, metadata, spec, status) every kind has.
import { z } from 'zod';
import { DNS_LABEL } from '../spiffe.js';

export const API_VERSION = 'weft/v1';

/** Service names become `<name>.mesh` and spiffe://<td>/svc/<name>: a DNS label. */
export const dnsLabel = z
  .string()
  .regex(
    DNS_LABEL,
    'must be a DNS label: lowercase letters, digits and "-", at most 63, starting and ending alphanumeric',
  );

/** Other resource names: lowercase letters, digits, "-" and ".", at most 253. */
export const resourceName = z
  .string()
  .max(253, 'must be at most 253 characters')
  .regex(
    /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/,
    'must be lowercase letters, digits, "-" and ".", starting and ending alphanumeric',
  );

export const port = z
  .number({
    error: (iss) => (iss.input === undefined ? 'required' : 'must be a port number 1-65535'),
  })
  .int('must be a port number 1-65535')
  .min(1, 'must be 1-65535')
  .max(65535, 'must be 1-65535');

export const labels = z.record(z.string(), z.string());

export const metadataSchema = (name: z.ZodType<string>) =>
  z
    .object({
      name,
      labels: labels.optional(),
      annotations: labels.optional(),
      /** The version `weft get` printed: applying it again over a newer one is a conflict.
       * Never stored: a stored document's version is its store revision. */
      resourceVersion: z
        .string()
        .regex(/^[1-9]\d*$/, 'must be the version weft get printed (a positive number)')
        .optional(),
    })
    .strict();

/** A reference to the Service a policy or route applies to. */
export const serviceRef = z
  .object({
    kind: z.literal('Service', { error: 'must be Service' }).default('Service'),
    name: dnsLabel,
  })
  .strict();

export const httpMethod = z.enum([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
]);

/** A regular expression given as text: it must compile. */
export const regexText = z.string().refine(
  (s) => {
    try {
      new RegExp(s);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'is not a valid regular expression' },
);

/** The envelope of one kind: its metadata name rule, spec and (server-written) status. */
export function documentSchema<K extends string, S extends z.ZodType, T extends z.ZodType>(
  kind: K,
  name: z.ZodType<string>,
  spec: S,
  status: T,
) {
  return z
    .object({
      apiVersion: z.literal(API_VERSION, { error: `must be ${API_VERSION}` }),
      kind: z.literal(kind),
      metadata: metadataSchema(name),
      spec,
      // Written by the control plane; accepted (and ignored) on apply so that the output of
      // `weft get -o yaml` can be applied again.
      status: status.optional(),
    })
    .strict();
}
