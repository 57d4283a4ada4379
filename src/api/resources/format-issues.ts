// zod's issues as weft's messages, "spec.ports[0].port: must be 1-65535". Apart from
// validate.ts (which imports every kind's schema) so that the agent's workers, which check only
// TrafficPolicies (traffic-policy-scopes.ts), load no other schema.
import type { z } from 'zod';
import { formatZodIssue } from '../../sys/zod-format.js';

/** One "path: message" line per problem; an unknown key is reported at its own path. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  const out: string[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys)
        out.push(
          formatZodIssue({ ...issue, path: [...issue.path, key], message: 'unknown field' }),
        );
    } else {
      out.push(formatZodIssue(issue));
    }
  }
  return out;
}
