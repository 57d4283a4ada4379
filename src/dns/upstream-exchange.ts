// One query sent to one upstream nameserver and its reply, over UDP or TCP. Each UDP
// exchange uses its own connected socket: the kernel picks a fresh source port (the
// entropy that protects a forwarder relaying the client's id unchanged against spoofed
// replies, RFC 5452), accepts datagrams from the upstream only, and reports an ICMP
// "port unreachable" as ECONNREFUSED so that a dead upstream fails at once, not on timeout.
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { frame, frameReader } from './tcp-framing.js';
import type { UpstreamAddress } from './upstream-address.js';

export type Exchange =
  | { outcome: 'answer'; reply: Buffer }
  | { outcome: 'timeout' }
  | { outcome: 'error'; error: Error };

export interface ExchangeOptions {
  timeoutMs: number;
  /** Ends the exchange at once (server closing). */
  signal: AbortSignal;
  /** Told the UDP source port while the exchange is open, and undefined when it ends. */
  onSourcePort?: (port: number | undefined) => void;
}

/** A reply to `id`: the same id with QR set. Anything else on the socket is ignored. */
function isReplyTo(message: Buffer, id: number): boolean {
  return message.length >= 12 && message.readUInt16BE(0) === id && (message[2]! & 0x80) !== 0;
}

/** Runs `body` with a `finish` that settles once, clears the timer and runs `cleanup`. */
function exchange(
  opts: ExchangeOptions,
  body: (finish: (result: Exchange) => void) => () => void,
): Promise<Exchange> {
  return new Promise((resolve) => {
    let settled = false;
    let cleanup = () => {};
    const finish = (result: Exchange) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal.removeEventListener('abort', onAbort);
      cleanup();
      resolve(result);
    };
    const onAbort = () => finish({ outcome: 'error', error: new Error('DNS server closing') });
    const timer = setTimeout(() => finish({ outcome: 'timeout' }), opts.timeoutMs);
    if (opts.signal.aborted) return onAbort();
    opts.signal.addEventListener('abort', onAbort);
    cleanup = body(finish);
    if (settled) cleanup();
  });
}

export function exchangeUdp(
  upstream: UpstreamAddress,
  query: Buffer,
  opts: ExchangeOptions,
): Promise<Exchange> {
  const id = query.readUInt16BE(0);
  return exchange(opts, (finish) => {
    const socket = createSocket(upstream.family === 6 ? 'udp6' : 'udp4');
    socket.on('error', (error) => finish({ outcome: 'error', error }));
    socket.on('message', (message) => {
      if (isReplyTo(message, id)) finish({ outcome: 'answer', reply: message });
    });
    socket.connect(upstream.port, upstream.host, (err?: Error) => {
      if (err) return finish({ outcome: 'error', error: err });
      opts.onSourcePort?.(socket.address().port);
      socket.send(query, (sendErr) => {
        if (sendErr) finish({ outcome: 'error', error: sendErr });
      });
    });
    return () => {
      opts.onSourcePort?.(undefined);
      try {
        socket.close();
      } catch {
        // already closed by an error
      }
    };
  });
}

export function exchangeTcp(
  upstream: UpstreamAddress,
  query: Buffer,
  opts: ExchangeOptions,
): Promise<Exchange> {
  const id = query.readUInt16BE(0);
  return exchange(opts, (finish) => {
    const socket = connect({ host: upstream.host, port: upstream.port, noDelay: true });
    socket.on('connect', () => socket.write(frame(query)));
    socket.on(
      'data',
      frameReader((message) => {
        if (isReplyTo(message, id)) finish({ outcome: 'answer', reply: message });
      }),
    );
    socket.on('error', (error) => finish({ outcome: 'error', error }));
    socket.on('close', () =>
      finish({ outcome: 'error', error: new Error('connection closed before a reply') }),
    );
    return () => socket.destroy();
  });
}
