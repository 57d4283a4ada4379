// `weft top`'s screen as plain lines (rows in, lines out; no terminal here): the services, or
// one service's routes and callers, busiest first, each line cut to the terminal's width and
// the list to its height. Names are shortened in the middle, so both ends stay readable.
import type { GetStatsResponse, StatsRow } from '../../api/stats-messages.js';
import { formatLatency, formatRate, formatSuccess } from './stats-format.js';

export interface TopView {
  /** The stats to show; undefined before the first answer. */
  stats: GetStatsResponse | undefined;
  /** With a service: its routes and callers. */
  service?: string;
  server: string;
  /** The last failure to get stats (shown; the numbers shown are the last ones got). */
  error?: string;
  /** Wall clock of the screen, "15:04:05". */
  clock: string;
}

const NUMBERS = [
  { title: 'RATE', width: 9 },
  { title: 'SUCCESS', width: 8 },
  { title: 'P50', width: 7 },
  { title: 'P99', width: 7 },
  { title: 'FLIGHT', width: 6 },
] as const;
const NAME_MIN = 12;

export function renderTop(view: TopView, width: number, height: number): string[] {
  const lines: string[] = [];
  const s = view.stats;
  const what = view.service ? `service ${view.service}` : 'services';
  const nodes = s ? `, ${s.reportingNodes} node${s.reportingNodes === 1 ? '' : 's'}` : '';
  lines.push(`weft top: ${what} (window ${s?.window ?? '-'}${nodes})  ${view.clock}`);
  lines.push(view.error ? `! ${view.error}` : `control plane ${view.server}   q: quit`);
  const tables: Array<{ title: string; rows: StatsRow[]; name: (r: StatsRow) => string }> = [];
  if (view.service) {
    const own = s?.services.filter((r) => r.dstService === view.service) ?? [];
    tables.push({ title: 'SERVICE', rows: own, name: (r) => r.dstService });
    tables.push({ title: 'ROUTE', rows: s?.routes ?? [], name: (r) => r.route });
    tables.push({ title: 'CALLER', rows: s?.edges ?? [], name: (r) => r.srcService });
  } else {
    tables.push({ title: 'SERVICE', rows: s?.services ?? [], name: (r) => r.dstService });
  }
  for (const t of tables) {
    lines.push('');
    lines.push(
      row(
        t.title,
        NUMBERS.map((n) => n.title),
        width,
      ),
    );
    const rows = [...t.rows].sort(
      (a, b) => b.requestsPerSecond - a.requestsPerSecond || t.name(a).localeCompare(t.name(b)),
    );
    if (rows.length === 0) lines.push(s ? '(no traffic in the window)' : '(waiting for numbers)');
    for (const r of rows) lines.push(row(t.name(r), numbers(r), width));
  }
  return fitScreen(lines, width, height);
}

function numbers(r: StatsRow): string[] {
  return [
    formatRate(r),
    formatSuccess(r),
    formatLatency(r, r.p50Ms),
    formatLatency(r, r.p99Ms),
    String(r.inFlight),
  ];
}

/** One line: the name padded (or shortened) to what the numbers leave, numbers right-aligned. */
function row(name: string, values: string[], width: number): string {
  const fixed = NUMBERS.reduce((sum, n) => sum + n.width + 1, 0);
  const nameWidth = Math.max(NAME_MIN, width - fixed);
  const cells = values.map((v, i) => v.padStart(NUMBERS[i]!.width)).join(' ');
  return `${shorten(name, nameWidth).padEnd(nameWidth)} ${cells}`;
}

/** "orders-backend-…-east" style: the head and the tail of a name kept, the middle cut. */
export function shorten(name: string, width: number): string {
  const chars = [...name];
  if (chars.length <= width) return name;
  if (width <= 1) return chars.slice(0, width).join('');
  const tail = Math.floor((width - 1) / 3);
  const head = width - 1 - tail;
  return `${chars.slice(0, head).join('')}…${tail > 0 ? chars.slice(-tail).join('') : ''}`;
}

/** Lines cut to the width; past the height the last line says how many were left out. */
function fitScreen(lines: string[], width: number, height: number): string[] {
  const cut = lines.map((l) => ([...l].length > width ? [...l].slice(0, width).join('') : l));
  if (cut.length <= height) return cut;
  const shown = cut.slice(0, Math.max(0, height - 1));
  shown.push(
    `… ${cut.length - shown.length} more lines (a taller terminal shows them)`.slice(0, width),
  );
  return shown;
}
