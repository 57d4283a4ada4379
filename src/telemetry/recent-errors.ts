// The agent's latest failed requests, for the dashboard's "recent errors": a 5xx, a gRPC status
// other than OK, or no answer at all, as the calling agent saw it (the caller's view, as the
// graph's edges are: it includes the requests that never reached an app, and a request is not
// listed twice). Checked once per finished request: one comparison when it succeeded.
import type { RequestErrorRecord } from '../api/stats-messages.js';
import type { RequestRecord } from '../proxy/records.js';
import { clipText, RecentEvents } from './recent-events.js';

export function failed(r: Pick<RequestRecord, 'status' | 'grpc_status'>): boolean {
  return r.status >= 500 || r.status === 0 || (r.grpc_status !== undefined && r.grpc_status !== 0);
}

export class RecentErrors extends RecentEvents<RequestErrorRecord> {
  /** A finished request: kept when it failed and this agent called (outbound). */
  request(r: RequestRecord): void {
    if (r.direction !== 'outbound' || !failed(r)) return;
    this.push({
      atUnixMs: this.now(),
      source: clipText(r.src_service),
      destination: clipText(r.dst_service),
      method: clipText(r.method),
      path: clipText(r.path),
      status: r.status,
      grpcStatus: r.grpc_status ?? -1,
      reason: clipText(r.close_reason),
      detail: clipText(r.error ?? ''),
      endpoint: clipText(r.endpoint ?? ''),
    });
  }
}
