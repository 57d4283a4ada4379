// The agent config's `tap` section (`weft tap`): where the local tap socket is, and which
// request headers are redacted besides the ones always redacted (tap-record.ts).
import { z } from 'zod';

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export const tapConfigSchema = z
  .object({
    /** The unix socket `weft tap --local` reads: default <dataDir>/tap/tap.sock. */
    socket: z.string().min(1).optional(),
    /** More request headers to redact (authorization, cookie, set-cookie and
     * proxy-authorization always are). */
    redactHeaders: z
      .array(z.string().regex(HEADER_NAME, 'an HTTP header name, such as x-api-key'))
      .default([]),
  })
  .strict()
  .prefault({});

export type TapConfig = z.output<typeof tapConfigSchema>;

/** The local tap socket's path for an agent config. */
export function tapSocketPath(config: { dataDir: string; tap: TapConfig }): string {
  return config.tap.socket ?? `${config.dataDir}/tap/tap.sock`;
}
