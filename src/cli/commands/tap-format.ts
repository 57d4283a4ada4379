// How `weft tap` prints: one JSON object per line (-o json), or one readable line per request.
// Dropped-record notices are lines too: {"dropped": N, "node": ...} in JSON, "# ..." in lines.
import type { TapRecord } from '../../telemetry/tap-record.js';

export type TapOutput = 'line' | 'json';

/** One request as a line a person scans: when, where, who called whom, what, how it went. */
export function tapLine(r: TapRecord): string {
  const dir = r.direction === 'inbound' ? 'in ' : 'out';
  const grpc = r.grpc_status === undefined ? '' : ` grpc=${r.grpc_status}`;
  const status = r.status === 0 ? `- (${r.close_reason})` : String(r.status);
  const parts = [
    r.time.slice(11, 23),
    r.node,
    dir,
    `${r.src_service} -> ${r.dst_service}`,
    `${r.method} ${r.authority}${r.path}`,
    `${status}${grpc}`,
    `${r.duration_ms}ms`,
    r.endpoint ?? '-',
    r.trace_id ? `trace=${r.trace_id}` : '',
  ];
  let line = parts.filter((p) => p !== '').join(' ');
  if (r.headers)
    for (const [name, value] of Object.entries(r.headers)) line += `\n    ${name}: ${value}`;
  return line;
}

export function droppedLine(output: TapOutput, node: string, dropped: number): string {
  return output === 'json'
    ? JSON.stringify({ node, dropped })
    : `# ${node}: ${dropped} records dropped so far (over the tap's rate limit, or a full queue)`;
}

export function recordLine(output: TapOutput, r: TapRecord): string {
  return output === 'json' ? JSON.stringify(r) : tapLine(r);
}
