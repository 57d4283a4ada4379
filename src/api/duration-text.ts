// Durations as people write them in YAML: "500ms", "90s", "5m", "24h", "1h30m", "7d". Without
// zod: the agent's workers read durations but load no schema library (issue #15).

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;

export const DURATION_HINT = 'a duration like "500ms", "90s", "5m" or "24h"';

/** Milliseconds in `text`, or undefined when it is not a duration. */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (!DURATION.test(trimmed)) return undefined;
  let ms = 0;
  for (const [, value, unit] of trimmed.matchAll(PART)) ms += Number(value) * UNIT_MS[unit!]!;
  return Math.round(ms);
}

/** "1h30m" style text for a number of milliseconds (for output). */
export function formatDuration(ms: number): string {
  if (ms % 1_000 !== 0 || ms === 0) return `${ms}ms`;
  let rest = ms / 1_000;
  let out = '';
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return out;
}
