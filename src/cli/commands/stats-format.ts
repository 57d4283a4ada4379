// How the CLI writes the mesh's numbers (`weft get services`, `weft top`): short, fixed forms
// that line up in narrow columns.
import type { StatsRow } from '../../api/stats-messages.js';

/** "12.3/s", "0.05/s", "1.2k/s"; "-" without requests. */
export function formatRate(row: StatsRow | undefined): string {
  if (row === undefined || row.requests === 0) return '-';
  const r = row.requestsPerSecond;
  if (r >= 1000) return `${(r / 1000).toFixed(1)}k/s`;
  if (r >= 10) return `${r.toFixed(1)}/s`;
  return `${r.toFixed(2)}/s`;
}

/** "100.00%", "75.00%"; "-" without requests. */
export function formatSuccess(row: StatsRow | undefined): string {
  if (row === undefined || row.requests === 0) return '-';
  return `${(row.successRate * 100).toFixed(2)}%`;
}

/** "0.3ms", "12ms", "1.5s"; "-" without requests. */
export function formatLatency(row: StatsRow | undefined, ms: number): string {
  if (row === undefined || row.requests === 0) return '-';
  if (ms >= 1000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms >= 10) return `${Math.round(ms)}ms`;
  return `${ms.toFixed(1)}ms`;
}

/** "2.0 GiB", "512 MiB"; "-" when unknown. */
export function formatBytes(bytes: number): string {
  if (bytes <= 0) return '-';
  const gib = bytes / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(1)} GiB` : `${Math.round(bytes / 2 ** 20)} MiB`;
}
