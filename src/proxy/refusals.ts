// Connections refused at accept, before a connection record exists: one vocabulary of reasons
// for every listener, one counter (weft_connections_refused_total{listener, reason}) and the
// rate-limited log. Refusals later on the path (denied, no endpoint, ...) are close reasons of
// a connection record instead (telemetry.ts: weft_tcp_close_total{reason}).
import type { Registry } from 'prom-client';
import type { Logger } from '../sys/logger.js';
import { Counter } from '../telemetry/prom.js';
import { type Clock, RefusalLog } from './limits/refusal-log.js';

export const REFUSAL_REASONS = [
  'total_limit', // the listener holds maxConnections already
  'per_source_limit', // the source address holds maxConnectionsPerSource already
  'fd_exhausted', // accept failed: the process is out of file descriptors (EMFILE, ENFILE)
  'not_captured', // 15001/15006: no original destination (someone connected to the port itself)
  'loop', // 15001/15006: the destination is the agent's own port on this host
  'handshake_timeout', // 15008: TLS not done within handshakeTimeoutMs
  'no_certificate', // 15008: the client presented no certificate
  'untrusted', // 15008: its chain does not lead to the mesh's trust bundle
  'bad_identity', // 15008: not one canonical node/<name> or svc/<name> of the trust domain
  'revoked', // 15008: the certificate's serial is on the control plane's deny list
  'handshake', // 15008: any other TLS failure (protocol version, no h2 in ALPN, a reset)
] as const;

export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** 15001, 15006 and 15008, by what they carry. */
export type ListenerKind = 'outbound' | 'inbound' | 'tunnel';

export interface RefusalsOptions {
  log: Logger;
  /** Where weft_connections_refused_total is registered; none: counted in counts() only. */
  registry?: Registry;
  logIntervalMs?: number;
  clock?: Clock;
}

export class Refusals {
  private readonly counter: Counter<'listener' | 'reason'> | undefined;
  private readonly log: RefusalLog;
  private readonly totals = new Map<string, number>();

  constructor(opts: RefusalsOptions) {
    this.counter = opts.registry
      ? new Counter({
          name: 'weft_connections_refused_total',
          help: 'Connections closed right after accept, before any work, by listener and reason (limits, TLS failures, bad identities, not captured, loops)',
          labelNames: ['listener', 'reason'],
          registers: [opts.registry],
        })
      : undefined;
    this.log = new RefusalLog(opts.log, opts.logIntervalMs ?? 10_000, opts.clock);
  }

  /** Counts one refusal; `source` is the client's address (or address:port) when known. */
  refuse(listener: ListenerKind, reason: RefusalReason, source?: string, detail?: string): void {
    this.counter?.inc({ listener, reason });
    const key = `${listener} ${reason}`;
    this.totals.set(key, (this.totals.get(key) ?? 0) + 1);
    this.log.note(listener, reason, source, detail);
  }

  /** Refusals so far of `listener` for `reason`. */
  count(listener: ListenerKind, reason: RefusalReason): number {
    return this.totals.get(`${listener} ${reason}`) ?? 0;
  }
}
