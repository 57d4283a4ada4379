// Durations in resources and configs as zod schemas; the parsing itself is duration-text.ts's.
import { z } from 'zod';
import { DURATION_HINT, parseDuration } from './duration-text.js';

export { DURATION_HINT, formatDuration, parseDuration } from './duration-text.js';

/** A duration string that stays a string (resources keep what the user wrote). */
export const durationString = z
  .string({
    error: (iss) =>
      iss.input === undefined ? 'required' : `must be ${DURATION_HINT} (with its unit)`,
  })
  .refine((s) => (parseDuration(s) ?? 0) > 0, {
    message: `must be ${DURATION_HINT}, greater than zero`,
  });

/** A duration string turned into milliseconds (configs). */
export const durationMs = durationString.transform((s) => parseDuration(s)!);
