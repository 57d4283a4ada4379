// Splices two TCP sockets together both ways, counts bytes and reports one summary when both
// are done. Half-close is honoured: when one side ends (FIN) the other side's write end is
// closed too, so request/response protocols that signal "done" with FIN still work.
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { RelayEnd } from './close-reason.js';

export interface RelaySummary {
  bytesFromClient: number;
  bytesToClient: number;
  reason: RelayEnd;
  error?: string;
}

/**
 * Pipes `client` <-> `upstream` (a socket, or a tunnel stream) and calls `onDone` exactly
 * once. Byte counts come from the client socket: what it read and what it was sent.
 */
export function relay(
  client: Socket,
  upstream: Duplex,
  onDone: (summary: RelaySummary) => void,
): void {
  let reason: RelayEnd = 'done';
  let error: string | undefined;
  let open = 2;

  const finish = (): void => {
    open -= 1;
    if (open > 0) return;
    onDone({
      bytesFromClient: client.bytesRead,
      bytesToClient: client.bytesWritten,
      reason,
      ...(error ? { error } : {}),
    });
  };

  const fail = (side: 'client_reset' | 'upstream_reset') => (err: Error) => {
    if (reason === 'done') {
      reason = side;
      error = (err as NodeJS.ErrnoException).code ?? err.message;
    }
    // One side broke: the other cannot complete meaningfully, so reset it too.
    client.destroy();
    upstream.destroy();
  };

  client.on('error', fail('client_reset'));
  upstream.on('error', fail('upstream_reset'));
  client.once('close', finish);
  upstream.once('close', finish);
  client.pipe(upstream);
  upstream.pipe(client);
}
