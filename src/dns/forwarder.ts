// Forwards queries for names outside the mesh to the upstream nameservers, the bytes
// unchanged, and returns the upstream's reply as it came. Upstreams are tried in turn:
// on a timeout or an error the next one is asked, and the last one that answered is asked
// first next time, so a dead first nameserver costs one timeout, not one per query.
// Like glibc's res_send, a SERVFAIL, NOTIMP or REFUSED reply also moves on to the next
// upstream; when all give one, the first such reply is relayed.
import type { Logger } from '../sys/logger.js';
import type { DnsMetrics } from './metrics.js';
import type { UpstreamAddress } from './upstream-address.js';
import { type Exchange, exchangeTcp, exchangeUdp } from './upstream-exchange.js';
import { RCODE } from './wire.js';

export interface ForwarderOptions {
  upstreams: readonly UpstreamAddress[];
  /** Per attempt: with n upstreams a query waits at most n times this. */
  timeoutMs: number;
  /** Queries being forwarded at once; above it the caller answers SERVFAIL at once. */
  maxInflight: number;
  metrics: DnsMetrics;
  log: Logger;
}

/** The upstream's reply, or why there is none. */
export type ForwardResult =
  | { kind: 'reply'; reply: Buffer }
  | { kind: 'failed' }
  | { kind: 'overloaded' };

const NEXT_UPSTREAM_RCODES = new Set<number>([RCODE.SERVFAIL, RCODE.NOTIMP, RCODE.REFUSED]);

export class Forwarder {
  private inflight = 0;
  private preferred = 0;
  private readonly closing = new AbortController();
  /** UDP source port -> query id of open exchanges: how a query looping back is told. */
  private readonly sourcePorts = new Map<number, number>();
  /** Upstreams whose last attempt failed: failures and recoveries are logged once each. */
  private readonly failing = new Set<string>();

  constructor(private readonly opts: ForwarderOptions) {}

  get inflightCount(): number {
    return this.inflight;
  }

  /**
   * True when a UDP query from local port `port` with `id` is one this forwarder sent:
   * the agent's own upstream traffic was captured and sent back to it (a loop).
   */
  isOwnQuery(port: number, id: number): boolean {
    return this.sourcePorts.get(port) === id;
  }

  async forward(query: Buffer, transport: 'udp' | 'tcp'): Promise<ForwardResult> {
    if (this.inflight >= this.opts.maxInflight) return { kind: 'overloaded' };
    this.inflight++;
    try {
      return await this.tryUpstreams(query, transport);
    } finally {
      this.inflight--;
    }
  }

  /** Ends every exchange in progress; their queries fail. */
  close(): void {
    this.closing.abort();
  }

  private async tryUpstreams(query: Buffer, transport: 'udp' | 'tcp'): Promise<ForwardResult> {
    const { upstreams } = this.opts;
    const first = this.preferred;
    let refusal: Buffer | undefined;
    for (let i = 0; i < upstreams.length && !this.closing.signal.aborted; i++) {
      const index = (first + i) % upstreams.length;
      const upstream = upstreams[index]!;
      const result = await this.attempt(upstream, query, transport);
      if (result.outcome !== 'answer') {
        this.noteFailure(upstream, result);
        continue;
      }
      this.noteAnswer(upstream);
      if (NEXT_UPSTREAM_RCODES.has(result.reply[3]! & 0xf)) {
        refusal ??= result.reply;
        continue;
      }
      this.preferred = index;
      return { kind: 'reply', reply: result.reply };
    }
    return refusal ? { kind: 'reply', reply: refusal } : { kind: 'failed' };
  }

  private async attempt(
    upstream: UpstreamAddress,
    query: Buffer,
    transport: 'udp' | 'tcp',
  ): Promise<Exchange> {
    const started = performance.now();
    const id = query.readUInt16BE(0);
    let port: number | undefined;
    const result =
      transport === 'udp'
        ? await exchangeUdp(upstream, query, {
            timeoutMs: this.opts.timeoutMs,
            signal: this.closing.signal,
            onSourcePort: (p) => {
              if (port !== undefined) this.sourcePorts.delete(port);
              port = p;
              if (port !== undefined) this.sourcePorts.set(port, id);
            },
          })
        : await exchangeTcp(upstream, query, {
            timeoutMs: this.opts.timeoutMs,
            signal: this.closing.signal,
          });
    this.opts.metrics.upstream(
      upstream.label,
      result.outcome,
      (performance.now() - started) / 1000,
    );
    return result;
  }

  private noteFailure(upstream: UpstreamAddress, result: Exchange): void {
    if (this.closing.signal.aborted) return;
    const reason =
      result.outcome === 'timeout'
        ? `no reply within ${this.opts.timeoutMs} ms`
        : result.outcome === 'error'
          ? result.error.message
          : '';
    if (this.failing.has(upstream.label)) {
      this.opts.log.debug({ upstream: upstream.label, reason }, 'dns upstream failed');
      return;
    }
    this.failing.add(upstream.label);
    this.opts.log.warn(
      { upstream: upstream.label, reason },
      'dns upstream is not answering; trying the other upstreams, SERVFAIL when none answers',
    );
  }

  private noteAnswer(upstream: UpstreamAddress): void {
    if (this.failing.delete(upstream.label)) {
      this.opts.log.info({ upstream: upstream.label }, 'dns upstream is answering again');
    }
  }
}
