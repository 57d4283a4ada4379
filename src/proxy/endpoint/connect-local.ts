// Stage "endpoint" on the receiving side: the connection to a local application, from the
// caller's address where the host allows it (the application then sees who called it), else
// from the agent's own. Each fallback reason is logged once; a failure that shows the kernel
// or the reply route will not carry it turns preserving off for good, with a warning.
import type { Socket } from 'node:net';
import { errnoCode } from '../../native/native-error.js';
import type { SocketOps } from '../../native/socket-ops.js';
import type { Logger } from '../../sys/logger.js';
import { hostAddressCheck, type LocalAddressCheck } from '../tunnel/local-addresses.js';
import {
  afterTransparentFailure,
  chooseSource,
  type Endpoint,
  type FallbackReason,
} from './client-source.js';
import { connectDirect } from './connect-direct.js';

export interface LocalConnectRequest {
  target: Endpoint;
  /** Who called: the tunnel peer's claim about its client, or a plaintext caller's address. */
  client: Endpoint | undefined;
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface LocalConnection {
  socket: Socket;
  /** True when the application sees the caller's address as its peer. */
  preserved: boolean;
}

export interface LocalConnectorOptions {
  /** capture.inbound.preserveClientAddress. */
  preserve: boolean;
  /** capture.ipv6: the IPv6 reply routing exists only then. */
  ipv6: boolean;
  /** capture.tproxy.mark: the SO_MARK the reply routing matches. */
  mark: number;
  socketOps: Pick<SocketOps, 'transparentConnect'>;
  log: Logger;
  /** Why preserving cannot work on this host (from checkReplyPath), or undefined if it can. */
  unavailable?: string;
  isLocalAddress?: LocalAddressCheck;
}

// Why each fallback happens, for the one log line that reports it.
const EXPLAIN: Record<FallbackReason, string> = {
  disabled: 'capture.inbound.preserveClientAddress is false',
  unavailable: 'preserving client addresses is off on this host',
  no_client: 'the caller did not say who its client is',
  loopback: 'a loopback address cannot be routed back to the agent',
  same_host: 'the caller is on this host',
  family: 'the caller and the application use different IP families',
  ipv6_off: 'IPv6 capture is off (capture.ipv6), and with it the IPv6 reply routing',
  link_local: 'link-local callers are not preserved',
};

export class LocalConnector {
  private available: boolean;
  private readonly logged = new Set<FallbackReason>();
  private readonly isLocalAddress: LocalAddressCheck;

  constructor(private readonly opts: LocalConnectorOptions) {
    this.available = opts.preserve && opts.unavailable === undefined;
    this.isLocalAddress = opts.isLocalAddress ?? hostAddressCheck();
    if (!opts.preserve) this.logged.add('disabled');
    else if (opts.unavailable !== undefined) {
      this.logged.add('unavailable');
      opts.log.warn(
        { reason: opts.unavailable },
        "local applications will see the agent's address, not their callers'",
      );
    }
  }

  /** Whether connections still come from callers' addresses (false once turned off). */
  get preserving(): boolean {
    return this.available;
  }

  async connect(req: LocalConnectRequest): Promise<LocalConnection> {
    const choice = chooseSource({
      enabled: this.opts.preserve,
      available: this.available,
      ipv6: this.opts.ipv6,
      client: req.client,
      target: req.target,
      isLocalAddress: this.isLocalAddress,
    });
    if (choice.kind === 'agent') {
      this.noteFallback(choice.reason);
      return { socket: await this.direct(req), preserved: false };
    }
    try {
      const socket = await this.opts.socketOps.transparentConnect({
        source: choice.address,
        avoidPort: choice.avoidPort,
        target: req.target,
        mark: this.opts.mark,
        timeoutMs: req.timeoutMs,
        ...(req.signal ? { signal: req.signal } : {}),
      });
      return { socket, preserved: true };
    } catch (err) {
      const code = req.signal?.aborted ? 'ABORT_ERR' : errnoCode(err);
      const outcome = afterTransparentFailure(code);
      if (!outcome.retry) throw err;
      if (outcome.disable) this.turnOff(`the kernel refused it: ${(err as Error).message}`);
      const socket = await this.direct(req);
      if (outcome.disableIfRetryWorks) {
        this.turnOff(
          `a connection from the caller's address got no answer (${code}) while one from the ` +
            "agent's did: the reply routing is missing; run `weft redirect install` with this config",
        );
      }
      return { socket, preserved: false };
    }
  }

  private direct(req: LocalConnectRequest): Promise<Socket> {
    return connectDirect(req.target.address, req.target.port, req.timeoutMs, req.signal);
  }

  private turnOff(reason: string): void {
    if (!this.available) return;
    this.available = false;
    this.logged.add('unavailable');
    this.opts.log.warn(
      { reason },
      "preserving client addresses turned off: local applications will see the agent's address",
    );
  }

  private noteFallback(reason: FallbackReason): void {
    if (this.logged.has(reason)) return;
    this.logged.add(reason);
    this.opts.log.info(
      { reason, detail: EXPLAIN[reason] },
      "some local applications see the agent's address, not their callers'",
    );
  }
}
